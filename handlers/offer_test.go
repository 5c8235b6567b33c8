package handlers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// createPlain posts the home form without JavaScript as browser c and
// returns the status, the Location and the (unescaped) page.
func (a *app) createPlain(t *testing.T, c *http.Client, form url.Values) (int, string, string) {
	t.Helper()
	res, err := c.PostForm(a.URL+"/c", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), html.UnescapeString(string(body))
}

// sealAt makes an offer by hand, as session.SealOffer does at time at with
// the app's session key, to test expiry without the Manager's clock.
func sealAt(id, owner string, at time.Time) string {
	stamp := strconv.FormatInt(at.Unix(), 10)
	h := hmac.New(sha256.New, []byte("test-session-key-of-at-least-32-bytes"))
	h.Write([]byte("parley-offer-v1:" + id + "." + stamp + "." + owner))
	return id + "." + stamp + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// refusedKeepsText checks a plain refusal of the home form: its status and
// words, the text given back, and a fresh offer that works.
func (a *app) refusedKeepsText(t *testing.T, what string, code int, body string, wantCode int, wantWords, text, spent string) {
	t.Helper()
	if code != wantCode || !strings.Contains(body, wantWords) || !strings.Contains(body, ">"+text+"</textarea>") {
		t.Fatalf("%s: status %d (want %d), words %q and the text %q kept?\n%s", what, code, wantCode, wantWords, text, body)
	}
	m := homeOffer.FindStringSubmatch(body)
	if m == nil || m[1] == spent {
		t.Fatalf("%s: the page gives back no fresh offer (%v)", what, m)
	}
	if _, err := a.Sessions.OpenOffer(m[1], ownerOf(t, a, a.Client)); err != nil {
		t.Fatalf("%s: the page's offer %q does not open: %v", what, m[1], err)
	}
}

// nothingAt checks that no conversation was created at id.
func (a *app) nothingAt(t *testing.T, what, id string) {
	t.Helper()
	if _, err := a.Store.Meta(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: a conversation exists at %s (%v)", what, id, err)
	}
}

// TestCreateTakesOnlyOffers: the home form's ID is the server's offer,
// sealed for the browser it was given to. A bare or forged ID, another
// browser's offer and an expired one are refused with 400, the text kept
// (plain: the home page again with a fresh offer; Datastar: the composer's
// error only); without the field the server chooses a fresh ID.
func TestCreateTakesOnlyOffers(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 20} })
	offer, offered := a.offer(t, a.Client)
	owner := ownerOf(t, a, a.Client)
	const stale = "The form is out of date. Reload the page and send your message again."

	bare := store.NewID()
	code, _, body := a.createPlain(t, a.Client, url.Values{"conv": {bare}, "text": {"a bare id, kept"}})
	a.refusedKeepsText(t, "a bare ID", code, body, http.StatusBadRequest, stale, "a bare id, kept", bare)
	a.nothingAt(t, "a bare ID", bare)

	forged := offer[:len(offer)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(offer, "A")]
	code, _, body = a.createPlain(t, a.Client, url.Values{"conv": {forged}, "text": {"forged, kept"}})
	a.refusedKeepsText(t, "a forged offer", code, body, http.StatusBadRequest, stale, "forged, kept", forged)
	other := store.NewID()
	code, _, body = a.createPlain(t, a.Client, url.Values{"conv": {other + offer[len(offered):]}, "text": {"another id, kept"}})
	a.refusedKeepsText(t, "another ID under the offer's MAC", code, body, http.StatusBadRequest, stale, "another id, kept", "")
	a.nothingAt(t, "another ID under the offer's MAC", other)

	// Another browser's offer is not ours, and ours is not theirs.
	theirs, theirID := a.offer(t, a.NewBrowser())
	code, _, body = a.createPlain(t, a.Client, url.Values{"conv": {theirs}, "text": {"not my offer, kept"}})
	a.refusedKeepsText(t, "another browser's offer", code, body, http.StatusBadRequest, stale, "not my offer, kept", theirs)
	a.nothingAt(t, "another browser's offer", theirID)
	if code, _, _ := a.createPlain(t, a.NewBrowser(), url.Values{"conv": {offer}, "text": {"hi"}}); code != http.StatusBadRequest {
		t.Fatalf("our offer posted by another browser: status %d", code)
	}
	a.nothingAt(t, "our offer posted by another browser", offered)

	// Expired: a day and a bit old. (The same seal, made now, is accepted:
	// the hand-made offer is the real format.)
	old := store.NewID()
	code, _, body = a.createPlain(t, a.Client, url.Values{"conv": {sealAt(old, owner, time.Now().Add(-25*time.Hour))}, "text": {"too late, kept"}})
	a.refusedKeepsText(t, "an expired offer", code, body, http.StatusBadRequest, stale, "too late, kept", "")
	a.nothingAt(t, "an expired offer", old)
	if code, loc, _ := a.createPlain(t, a.Client, url.Values{"conv": {sealAt(old, owner, time.Now().Add(-23*time.Hour))}, "text": {"in time"}}); code != http.StatusSeeOther || loc != "/c/"+old {
		t.Fatalf("a hand-made offer of 23 hours ago: %d %q", code, loc)
	}

	// With Datastar: the composer's error only, so the text stays in the box.
	code, body = a.action(t, a.Client, "/c", url.Values{"conv": {store.NewID()}, "text": {"datastar"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `id="composer-error"`) || !strings.Contains(body, "out of date") || strings.Contains(body, "<textarea") {
		t.Fatalf("a bare ID with Datastar: %d\n%s", code, body)
	}

	// The offer itself works, once the refusals above spent nothing of it.
	if code, loc, _ := a.createPlain(t, a.Client, url.Values{"conv": {offer}, "text": {"hi"}}); code != http.StatusSeeOther || loc != "/c/"+offered {
		t.Fatalf("the home page's offer: %d %q", code, loc)
	}

	// No field at all: the server chooses a fresh ID each time, for this browser.
	first := a.createWith(t, a.Client, url.Values{"text": {"api one"}})
	second := a.createWith(t, a.Client, url.Values{"text": {"api two"}})
	if first == second || first == offered {
		t.Fatalf("posts without an offer got IDs %s and %s", first, second)
	}
	for _, id := range []string{first, second} {
		if m, err := a.Store.Meta(context.Background(), id); err != nil || m.Owner != owner {
			t.Fatalf("conversation %s: owner %q, %v", id, m.Owner, err)
		}
	}
}

// TestSameOfferTwiceIsOneConversation: the same form sent twice (plain,
// then with Datastar) goes to the conversation it created, with one answer.
func TestSameOfferTwiceIsOneConversation(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 20} })
	offer, id := a.offer(t, a.Client)
	for i := range 2 {
		code, loc, body := a.createPlain(t, a.Client, url.Values{"conv": {offer}, "text": {"only once"}})
		if code != http.StatusSeeOther || loc != "/c/"+id {
			t.Fatalf("submit %d: %d %q %s", i+1, code, loc, body)
		}
	}
	code, body := a.action(t, a.Client, "/c", url.Values{"conv": {offer}, "text": {"only once"}})
	if code != http.StatusOK || !strings.Contains(body, `{go: "/c/`+id+`"}`) {
		t.Fatalf("submit 3, with Datastar: %d %s", code, body)
	}
	a.waitStatus(t, id, 1, store.StatusDone)
	// The same form with other text (restored from the cache and edited):
	// refused with the text kept, never dropped by a redirect.
	code, loc, body := a.createPlain(t, a.Client, url.Values{"conv": {offer}, "text": {"something else"}})
	if code != http.StatusConflict || loc != "" || !strings.Contains(body, ">something else</textarea>") {
		t.Fatalf("the same offer with other text: %d %q\n%s", code, loc, body)
	}
	snap, err := a.Store.Snapshot(context.Background(), id, store.ID{})
	if err != nil || snap.Count != 2 {
		t.Fatalf("three submits of one offer made %d messages (%v), want 2", snap.Count, err)
	}
	log, _ := a.RDB.XRange(context.Background(), "{c:"+id+"}:log", "-", "+").Result()
	n := 0
	for _, e := range log {
		if e.Values["t"] == store.EventMessage {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d messages logged, want 1", n)
	}
}

// TestDeletedConversationStaysGone: after a deletion, the form that created
// the conversation (its offer is still within its day) is refused with 409
// and words, the text kept, never a silent join nor a new conversation at
// the old address, which stays 404. An offer whose ID is someone else's
// conversation is refused the same way and changes nothing.
func TestDeletedConversationStaysGone(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 20} })
	offer, id := a.offer(t, a.Client)
	if got := a.createWith(t, a.Client, url.Values{"conv": {offer}, "text": {"short lived"}}); got != id {
		t.Fatalf("the offer of %s created %s", id, got)
	}
	a.waitStatus(t, id, 1, store.StatusDone)
	if code, body := a.action(t, a.Client, "/c/"+id+"/delete", nil); code != http.StatusOK {
		t.Fatalf("delete: %d %q", code, body)
	}
	const taken = "The conversation this form started was deleted, or is not yours."
	code, loc, body := a.createPlain(t, a.Client, url.Values{"conv": {offer}, "text": {"second life, kept"}})
	if loc != "" {
		t.Fatalf("the deleted conversation's offer was sent to %q", loc)
	}
	a.refusedKeepsText(t, "the deleted conversation's offer", code, body, http.StatusConflict, taken, "second life, kept", offer)
	code, body = a.action(t, a.Client, "/c", url.Values{"conv": {offer}, "text": {"second life"}})
	if code != http.StatusConflict || !strings.Contains(body, `id="composer-error"`) || !strings.Contains(body, "was deleted") || strings.Contains(body, "go:") {
		t.Fatalf("the deleted conversation's offer with Datastar: %d %s", code, body)
	}
	a.nothingAt(t, "the deleted conversation's offer", id)
	if code, _ := a.getPage(t, a.Client, "/c/"+id); code != http.StatusNotFound {
		t.Fatalf("the deleted conversation's page: %d, want 404", code)
	}
	if code, _ := a.getPage(t, a.NewBrowser(), "/c/"+id); code != http.StatusNotFound {
		t.Fatalf("the deleted conversation's page for someone else: %d, want 404", code)
	}

	// An offer naming someone else's conversation (a bug, or the ID
	// recreated): 409, and their conversation is untouched.
	ctx := context.Background()
	theirs := store.NewID()
	res, err := a.Store.Post(ctx, store.Post{Conv: theirs, Owner: testOwner, Text: "mine", Key: "first", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store.Finish(ctx, store.Ending{Conv: theirs, Gen: res.Gen, Status: store.StatusDone}); err != nil {
		t.Fatal(err)
	}
	mine := a.Sessions.SealOffer(theirs, ownerOf(t, a, a.Client))
	code, loc, body = a.createPlain(t, a.Client, url.Values{"conv": {mine}, "text": {"hijack, kept"}})
	if loc != "" {
		t.Fatalf("an offer of someone else's conversation was sent to %q", loc)
	}
	a.refusedKeepsText(t, "an offer of someone else's conversation", code, body, http.StatusConflict, taken, "hijack, kept", mine)
	if snap, err := a.Store.Snapshot(ctx, theirs, store.ID{}); err != nil || snap.Count != 2 || snap.Owner != testOwner {
		t.Fatalf("someone else's conversation changed: %+v %v", snap, err)
	}
}
