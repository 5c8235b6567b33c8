package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// composerKey is the one part of a page that differs on every load.
var composerKey = regexp.MustCompile(`name="key" value="[a-z2-7]+"`)

// TestPageCacheNeverStale loads pages from a server whose message cache is
// warm and from a fresh server (empty cache, its own Markdown renderer) over
// the same Redis: they must be byte-identical after every kind of change to
// a message that a cache keyed wrongly would miss.
func TestPageCacheNeverStale(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	static, assets, err := handlers.Static(os.DirFS("../static"))
	if err != nil {
		t.Fatal(err)
	}
	deps := handlers.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: a.Store, Hub: a.Hub, Gen: a.Gen, Assets: assets, Static: static,
		Limits: handlers.Limits{MaxMessageBytes: 4 << 10, MaxBodyBytes: 8 << 10}, Ready: a.Store.Ping, Sessions: a.Sessions, Models: testModels{"demo"}}
	warmDeps := deps
	warmDeps.MD = markdown.NewRenderer()
	warm := httptest.NewServer(handlers.NewServer(warmDeps))
	defer warm.Close()
	fresh := func() *httptest.Server {
		d := deps
		d.MD = markdown.NewRenderer()
		return httptest.NewServer(handlers.NewServer(d))
	}
	page := func(base, conv string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/c/"+conv, nil)
		// Uncompressed, to see the Content-Length of the page itself.
		req.Header.Set("Accept-Encoding", "identity")
		res, err := a.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("page: status %d", res.StatusCode)
		}
		if cl := res.Header.Get("Content-Length"); cl == "" || res.ContentLength != int64(len(body)) {
			t.Fatalf("Content-Length %q for a body of %d bytes", cl, len(body))
		}
		return composerKey.ReplaceAllString(string(body), `name="key" value="*"`)
	}
	same := func(what, conv string) string {
		t.Helper()
		s := fresh()
		defer s.Close()
		want := page(s.URL, conv)
		for range 2 { // the first load may fill the cache, the second reads it
			if got := page(warm.URL, conv); got != want {
				t.Fatalf("%s: the page from the warm cache differs from a fresh render:\n%s", what, firstDiff(got, want))
			}
		}
		return want
	}

	conv := a.create(t, "first *question*")
	a.waitStatus(t, conv, 1, store.StatusDone)
	if res := a.post(t, conv, "second", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: status %d", res.StatusCode)
	}
	a.waitStatus(t, conv, 3, store.StatusDone)
	before := same("ended answers", conv)

	// A regenerated answer has the same text (the demo model is
	// deterministic) but a new revision, which its Regenerate form names.
	last := a.waitStatus(t, conv, 3, store.StatusDone)
	if code, body := a.action(t, a.Client, "/c/"+conv+"/regenerate", url.Values{"rev": {last.Rev}}); code != 200 {
		t.Fatalf("regenerate: %d %q", code, body)
	}
	again := a.waitStatus(t, conv, 3, store.StatusDone)
	after := same("regenerated answer", conv)
	if !strings.Contains(after, again.Rev) || strings.Contains(after, `value="`+last.Rev+`"`) || after == before {
		t.Fatalf("the regenerated page does not name the new revision %s instead of %s", again.Rev, last.Rev)
	}

	// Expired (its keys vanish, as PARLEY_CONVERSATION_TTL makes them: no
	// tombstone), then created again under the same ID with an offer its
	// browser still holds: the same indices, other texts. (A deleted ID is
	// never created again: TestDeletedConversationStaysGone.)
	keys, err := a.RDB.Keys(context.Background(), "{c:"+conv+"}*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the conversation's keys: %v %v", keys, err)
	}
	a.RDB.Del(context.Background(), keys...)
	offer := a.Sessions.SealOffer(conv, ownerOf(t, a, a.Client))
	if again := a.createWith(t, a.Client, url.Values{"conv": {offer}, "text": {"a second life"}}); again != conv {
		t.Fatalf("the offer of %s created %s", conv, again)
	}
	a.waitStatus(t, conv, 1, store.StatusDone)
	a.waitNamed(t, conv)
	reborn := same("conversation created again", conv)
	if !strings.Contains(reborn, "a second life") || strings.Contains(reborn, "first *question*") {
		t.Fatal("the page of the new conversation shows the old one's messages")
	}

	// A streaming answer is rendered as it is now, never from the cache.
	if res := a.post(t, conv, "longer please", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: status %d", res.StatusCode)
	}
	streaming := a.waitStatus(t, conv, 3, store.StatusStreaming, store.StatusDone)
	if streaming.Status == store.StatusStreaming {
		if got := page(warm.URL, conv); !strings.Contains(got, `data-status="streaming"`) {
			t.Fatal("a streaming answer shows as ended")
		}
	}
	a.waitStatus(t, conv, 3, store.StatusDone)
	same("answer ended after being streamed", conv)
}

// firstDiff shows where two pages part.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(0, i-80)
	return "got:  ..." + a[from:min(len(a), i+120)] + "\nwant: ..." + b[from:min(len(b), i+120)]
}
