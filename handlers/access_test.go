package handlers_test

// Tests of who may use a Parley (PARLEY_ACCESS): the passphrase of code
// mode, the identity header of header mode, and read-only share links.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/store"
)

const passphrase = "correct horse battery staple"

func codeApp(t *testing.T, share bool) *app {
	return newApp(t, func(c *appConfig) {
		c.access = access.Config{Mode: access.Code, Code: passphrase, ShareLinks: share}
	})
}

// enter posts the passphrase form as browser c and returns the response
// (its body read into body).
func (a *app) enter(t *testing.T, c *http.Client, code, next string) (*http.Response, string) {
	t.Helper()
	res, err := c.PostForm(a.URL+"/access", url.Values{"code": {code}, "next": {next}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// isPassphrasePage reports whether body is the passphrase page, going to next.
func isPassphrasePage(body, next string) bool {
	return strings.Contains(body, "This Parley is private") &&
		strings.Contains(body, `action="/access"`) &&
		strings.Contains(body, `name="next" value="`+next+`"`) &&
		!strings.Contains(body, `id="composer"`)
}

// createForm starts a conversation with the home page's plain form (without
// its offer: the server chooses the ID, read from the redirect).
func (a *app) createForm(t *testing.T, c *http.Client, text string) (int, string) {
	t.Helper()
	res, err := c.PostForm(a.URL+"/c", url.Values{"text": {text}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	id := ""
	if res.StatusCode == http.StatusSeeOther {
		id = convOf(t, res.Header.Get("Location"))
	}
	return res.StatusCode, id
}

// TestAccessPassphrase: in code mode a browser without the passphrase
// gets the passphrase page (401) for every page and a 403 for every action;
// a wrong passphrase says how many tries are left; the right one sets a
// grant cookie and leads on, after which the browser chats as in open mode.
func TestAccessPassphrase(t *testing.T) {
	t.Parallel()
	a := codeApp(t, true)
	c := a.Client

	code, body := a.getPage(t, c, "/")
	if code != http.StatusUnauthorized || !isPassphrasePage(body, "/") {
		t.Fatalf("home without access: status %d, want 401 and the passphrase page:\n%s", code, body)
	}
	// The page asked for comes back after the passphrase.
	if code, body := a.getPage(t, c, "/nowhere?x=1"); code != http.StatusUnauthorized || !isPassphrasePage(body, "/nowhere?x=1") {
		t.Fatalf("another page without access: status %d", code)
	}
	// Actions: a plain form gets the page, Datastar a 403 in the composer.
	if code, _ := a.createForm(t, c, "hello"); code != http.StatusUnauthorized {
		t.Fatalf("plain create without access: status %d, want 401", code)
	}
	if code, body := a.action(t, c, "/c", url.Values{"text": {"hello"}}); code != http.StatusForbidden ||
		!strings.Contains(body, "composer-error") || !strings.Contains(body, "enter the passphrase") {
		t.Fatalf("Datastar create without access: status %d, body %q", code, body)
	}
	// What anyone needs, anyway.
	for _, p := range []string{"/healthz", "/readyz", "/favicon.ico", a.Deps.Assets.CSS} {
		// (The favicon redirects to its content-hashed name.)
		if code, _ := a.getPage(t, c, p); code != http.StatusOK && code != http.StatusMovedPermanently {
			t.Errorf("%s without access: status %d", p, code)
		}
	}

	res, body := a.enter(t, c, "wrong horse", "/")
	if res.StatusCode != http.StatusUnauthorized || !isPassphrasePage(body, "/") ||
		!strings.Contains(body, "That passphrase is not right. 4 tries left before a 10-minute wait.") {
		t.Fatalf("wrong passphrase: status %d:\n%s", res.StatusCode, body)
	}
	if strings.Contains(body, "wrong horse") {
		t.Fatal("the page gives the typed passphrase back")
	}
	if len(res.Cookies()) != 0 && hasGrant(res) {
		t.Fatal("a wrong passphrase set a grant")
	}
	res, body = a.enter(t, c, "", "/")
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "3 tries left") {
		t.Fatalf("second wrong passphrase: status %d", res.StatusCode)
	}

	// A next that leads off the site leads home.
	res, _ = a.enter(t, a.NewBrowser(), passphrase, "//evil.example/x")
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/" {
		t.Fatalf("next //evil.example/x: status %d, Location %q", res.StatusCode, loc)
	}

	res, _ = a.enter(t, c, passphrase, "/?from=test")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/?from=test" {
		t.Fatalf("right passphrase: status %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	var grant *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == "parley_access" {
			grant = ck
		}
	}
	if grant == nil || !grant.HttpOnly || grant.SameSite != http.SameSiteLaxMode || grant.Path != "/" || grant.MaxAge <= 0 || grant.Value == "" {
		t.Fatalf("grant cookie: %+v", grant)
	}
	// A right passphrase uses no try: three are still left.
	if _, body := a.enter(t, a.NewBrowser(), "wrong again", "/"); !strings.Contains(body, "2 tries left") {
		t.Fatalf("after a right passphrase the tries left are wrong:\n%s", body)
	}

	if code, body := a.getPage(t, c, "/"); code != http.StatusOK || !strings.Contains(body, `id="composer"`) {
		t.Fatalf("home with access: status %d", code)
	}
	code, conv := a.createForm(t, c, "hello there")
	if code != http.StatusSeeOther {
		t.Fatalf("create with access: status %d", code)
	}
	a.waitStatus(t, conv, 1, store.StatusDone)
	if code, body := a.action(t, c, "/c/"+conv+"/messages", url.Values{"text": {"and again"}, "key": {store.NewID()}}); code != http.StatusOK {
		t.Fatalf("post with access: status %d, body %q", code, body)
	}
	a.waitStatus(t, conv, 3, store.StatusDone)

	// The grant is bound to the browser's session: copied into another
	// browser (with its own session) it is worthless.
	thief := a.NewBrowser()
	u, _ := url.Parse(a.URL)
	thief.Jar.SetCookies(u, []*http.Cookie{{Name: "parley_access", Value: grant.Value}})
	if code, _ := a.getPage(t, thief, "/"); code != http.StatusUnauthorized {
		t.Fatalf("a grant copied to another session: status %d, want 401", code)
	}

	// Another process with the same keys and passphrase honours the
	// grant; one with a new passphrase revokes it.
	same := a.serveWith(t, access.Config{Mode: access.Code, Code: passphrase, ShareLinks: true})
	if code, _ := same.getPage(t, c, "/"); code != http.StatusOK {
		t.Fatalf("same passphrase, another server: status %d, want 200", code)
	}
	changed := a.serveWith(t, access.Config{Mode: access.Code, Code: "a new passphrase", ShareLinks: true})
	if code, body := changed.getPage(t, c, "/"); code != http.StatusUnauthorized || !isPassphrasePage(body, "/") {
		t.Fatalf("after the passphrase changed: status %d, want 401", code)
	}
	if code, _ := changed.action(t, c, "/c/"+conv+"/messages", url.Values{"text": {"still me?"}, "key": {store.NewID()}}); code != http.StatusForbidden {
		t.Fatalf("post after the passphrase changed: status %d, want 403", code)
	}
}

func hasGrant(res *http.Response) bool {
	for _, ck := range res.Cookies() {
		if strings.HasSuffix(ck.Name, "parley_access") && ck.Value != "" {
			return true
		}
	}
	return false
}

// serveWith serves the app's handlers again with other access settings (the
// same Redis and session keys: another process) and returns the app as
// seen through it. Cookie jars ignore ports: browsers keep their cookies.
func (a *app) serveWith(t *testing.T, cfg access.Config) *app {
	t.Helper()
	cfg.Key = []byte("test-access-key-of-at-least-32-bytes")
	g, err := access.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := a.Deps
	d.Access = g
	ts := httptest.NewServer(handlers.NewServer(d))
	t.Cleanup(ts.Close)
	b := *a
	b.URL = ts.URL
	return &b
}

// TestPassphraseGuessesAreLimited: the sixth wrong passphrase from one
// address in ten minutes is refused with 429 and Retry-After, whatever the
// cookies (every try here comes from a new browser), and so is the right
// one until the wait is over. The count lives in Redis.
func TestPassphraseGuessesAreLimited(t *testing.T) {
	t.Parallel()
	a := codeApp(t, true)
	for i := 1; i <= access.MaxGuesses; i++ {
		res, body := a.enter(t, a.NewBrowser(), "guess "+strconv.Itoa(i), "/")
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong passphrase %d: status %d", i, res.StatusCode)
		}
		if i == access.MaxGuesses && !strings.Contains(body, "that was the last try: wait 10 minutes") {
			t.Fatalf("the last allowed try does not say so:\n%s", body)
		}
	}
	for _, code := range []string{"guess 6", passphrase} {
		res, body := a.enter(t, a.NewBrowser(), code, "/c/abc")
		retry, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		if res.StatusCode != http.StatusTooManyRequests || retry <= 0 || retry > 600 {
			t.Fatalf("%q after %d wrong ones: status %d, Retry-After %q", code, access.MaxGuesses, res.StatusCode, res.Header.Get("Retry-After"))
		}
		if !isPassphrasePage(body, "/c/abc") || !strings.Contains(body, "Too many wrong passphrases") || !strings.Contains(body, "Wait 10 minutes") {
			t.Fatalf("the 429 page does not say what to do:\n%s", body)
		}
		if hasGrant(res) {
			t.Fatal("a try past the limit set a grant")
		}
	}
	ttl := a.RDB.PTTL(context.Background(), access.GuessKeyPrefix+"127.0.0.1").Val()
	if ttl <= 0 || ttl > access.GuessWindow {
		t.Fatalf("the guess count's TTL is %v", ttl)
	}
	// Once the window is over (here: the key expires), tries go on.
	a.RDB.Del(context.Background(), access.GuessKeyPrefix+"127.0.0.1")
	if res, _ := a.enter(t, a.NewBrowser(), passphrase, "/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right passphrase after the wait: status %d", res.StatusCode)
	}
}

// TestShareLinksWithoutAccess: a conversation's link reads without access
// (page, stream, Markdown), read-only, and every change from it is refused;
// with PARLEY_SHARE_LINKS=off the link needs access too.
func TestShareLinksWithoutAccess(t *testing.T) {
	t.Parallel()
	for _, share := range []bool{true, false} {
		t.Run("share="+strconv.FormatBool(share), func(t *testing.T) {
			t.Parallel()
			a := codeApp(t, share)
			if res, _ := a.enter(t, a.Client, passphrase, "/"); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("enter: status %d", res.StatusCode)
			}
			conv := a.create(t, "a shared question")
			done := a.waitStatus(t, conv, 1, store.StatusDone)
			_, cursor := a.page(t, conv)
			stranger := a.NewBrowser()

			code, body := a.getPage(t, stranger, "/c/"+conv)
			mdCode, md := a.getPage(t, stranger, "/c/"+conv+"/markdown/1")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/c/"+conv+"/events?after="+cursor, nil)
			req.Header.Set("Datastar-Request", "true")
			ev, err := stranger.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			ev.Body.Close()

			if !share {
				if code != http.StatusUnauthorized || !isPassphrasePage(body, "/c/"+conv) {
					t.Fatalf("link with share links off: status %d, want 401 and the passphrase page", code)
				}
				if mdCode != http.StatusUnauthorized || ev.StatusCode != http.StatusForbidden {
					t.Fatalf("Markdown / stream with share links off: status %d / %d, want 401 / 403", mdCode, ev.StatusCode)
				}
				if code, _ := a.getPage(t, stranger, "/healthz"); code != http.StatusOK {
					t.Fatalf("/healthz with share links off: status %d", code)
				}
				// With access the link works as ever.
				if code, _ := a.getPage(t, a.Client, "/c/"+conv); code != http.StatusOK {
					t.Fatalf("the owner's link with share links off: status %d", code)
				}
				return
			}
			if code != http.StatusOK || !strings.Contains(body, "You are watching this conversation") ||
				!strings.Contains(body, "Enter the passphrase to start your own") || strings.Contains(body, `id="composer"`) {
				t.Fatalf("shared link without access: status %d, not the read-only page", code)
			}
			if mdCode != http.StatusOK || md == "" {
				t.Fatalf("Markdown of a shared link: status %d", mdCode)
			}
			if ev.StatusCode != http.StatusOK || !strings.HasPrefix(ev.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("stream of a shared link: status %d, %s", ev.StatusCode, ev.Header.Get("Content-Type"))
			}
			for _, tc := range []struct {
				path string
				form url.Values
			}{
				{"/c/" + conv + "/messages", url.Values{"text": {"let me in"}, "key": {store.NewID()}}},
				{"/c/" + conv + "/stop", nil},
				{"/c/" + conv + "/regenerate", url.Values{"rev": {done.Rev}}},
				{"/c/" + conv + "/title", url.Values{"title": {"mine now"}}},
				{"/c/" + conv + "/delete", nil},
			} {
				code, body := a.action(t, stranger, tc.path, tc.form)
				if code != http.StatusForbidden || !strings.Contains(body, "This Parley is private") {
					t.Errorf("%s from a shared link: status %d, body %q", tc.path, code, body)
				}
			}
			// A plain form is sent to the passphrase, and back to the conversation.
			res, err := stranger.PostForm(a.URL+"/c/"+conv+"/messages", url.Values{"text": {"hi"}, "key": {store.NewID()}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized || !isPassphrasePage(string(b), "/c/"+conv) {
				t.Fatalf("plain post from a shared link: status %d", res.StatusCode)
			}
			if code, _ := a.getPage(t, stranger, "/sidebar/events"); code != http.StatusUnauthorized {
				t.Fatalf("/sidebar/events without access: status %d", code)
			}
			snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
			if err != nil || snap.Count != 2 || snap.Title == "mine now" {
				t.Fatalf("a visitor without access changed the conversation: %+v, %v", snap, err)
			}
		})
	}
}

// userTransport names a user in the identity header, as the proxy would.
type userTransport struct {
	base  http.RoundTripper
	value []string // nil: no header
}

func (u userTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for _, v := range u.value {
		r.Header.Add("X-Forwarded-User", v)
	}
	return u.base.RoundTrip(r)
}

// asUser is a new browser (its own cookies) behind the identity proxy,
// signed in with the header values given.
func (a *app) asUser(values ...string) *http.Client {
	c := a.NewBrowser()
	c.Transport = userTransport{base: a.Client.Transport, value: values}
	return c
}

// TestAccessHeader: in header mode a request without the user header gets
// 403; with it, the owner is the user's, whatever the cookies: one person
// in two browsers is one owner, another person is not.
func TestAccessHeader(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.access = access.Config{Mode: access.Header, ShareLinks: true}
	})
	nobody := a.NewBrowser()
	code, body := a.getPage(t, nobody, "/")
	if code != http.StatusForbidden || !strings.Contains(body, "Sign-in required") || strings.Contains(body, `id="composer"`) {
		t.Fatalf("home without the header: status %d, want 403 and the sign-in page", code)
	}
	if code, _ := a.getPage(t, a.asUser("  "), "/"); code != http.StatusForbidden {
		t.Fatalf("an empty header: status %d, want 403", code)
	}
	if code, _ := a.getPage(t, a.asUser("alice@example.com", "bob"), "/"); code != http.StatusForbidden {
		t.Fatalf("a header sent twice: status %d, want 403", code)
	}
	if code, body := a.action(t, nobody, "/c", url.Values{"text": {"hi"}}); code != http.StatusForbidden || !strings.Contains(body, "Sign in again") {
		t.Fatalf("Datastar create without the header: status %d, body %q", code, body)
	}
	if res, _ := a.enter(t, a.asUser("alice@example.com"), passphrase, "/"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("the passphrase form in header mode: status %d, want 404", res.StatusCode)
	}

	laptop, phone := a.asUser("alice@example.com"), a.asUser(" Alice@Example.COM")
	code, conv := a.createForm(t, laptop, "from my laptop")
	if code != http.StatusSeeOther {
		t.Fatalf("create as alice: status %d", code)
	}
	a.waitStatus(t, conv, 1, store.StatusDone)
	// Alice's phone lists it and may write to it.
	if code, body := a.getPage(t, phone, "/"); code != http.StatusOK || !strings.Contains(body, `href="/c/`+conv+`"`) {
		t.Fatalf("alice's other browser does not list her conversation (status %d)", code)
	}
	if code, page := a.getPage(t, phone, "/c/"+conv); code != http.StatusOK || !strings.Contains(page, `id="composer"`) {
		t.Fatalf("alice's other browser is not the owner (status %d)", code)
	}
	if code, body := a.action(t, phone, "/c/"+conv+"/messages", url.Values{"text": {"from my phone"}, "key": {store.NewID()}}); code != http.StatusOK {
		t.Fatalf("alice's post from another browser: status %d, body %q", code, body)
	}
	a.waitStatus(t, conv, 3, store.StatusDone)

	// Bob is someone else, even in alice's browser (its cookies do not matter).
	bob := a.asUser("bob")
	bob.Jar = laptop.Jar
	if code, body := a.action(t, bob, "/c/"+conv+"/messages", url.Values{"text": {"bob here"}, "key": {store.NewID()}}); code != http.StatusForbidden ||
		!strings.Contains(body, "Only the person who started this conversation") {
		t.Fatalf("bob's post to alice's conversation: status %d, body %q", code, body)
	}
	if _, body := a.getPage(t, bob, "/"); strings.Contains(body, conv) {
		t.Fatal("bob's list shows alice's conversation")
	}
	// Without the header the link reads, read-only.
	if code, page := a.getPage(t, nobody, "/c/"+conv); code != http.StatusOK || strings.Contains(page, `id="composer"`) ||
		!strings.Contains(page, "Sign in to start your own") {
		t.Fatalf("the link without the header: status %d", code)
	}
	if code, _ := a.action(t, nobody, "/c/"+conv+"/messages", url.Values{"text": {"anon"}, "key": {store.NewID()}}); code != http.StatusForbidden {
		t.Fatalf("a post without the header: status %d, want 403", code)
	}
	snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
	if err != nil || snap.Count != 4 {
		t.Fatalf("the conversation has %d messages, want 4 (%v)", snap.Count, err)
	}
}
