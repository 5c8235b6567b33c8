package handlers_test

// Tests of the live sidebar: a browser's conversation list follows what its
// other tabs do, on the streams its pages already have.

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
)

// tab is a page and its live stream as a browser holds them: the page's
// DOM with every frame of the stream applied by id.
type tab struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	dom      *viewer.DOM
	sides    []string // the side-list fragments received, in order
	kinds    []string // every frame: "side", "log" (with an SSE id) or "other"
	err      error    // how the stream ended (nil: cleanly, or by cancel)
	encoding string   // the response's Content-Encoding
}

// openTab loads page as client and follows stream (a path, "" for the
// page's own conversation stream), gzip-encoded when gz.
func openTab(t *testing.T, a *app, client *http.Client, name, page, stream string, gz bool) *tab {
	t.Helper()
	res, err := client.Get(a.URL + page)
	if err != nil {
		t.Fatal(err)
	}
	dom, err := viewer.ParseDOM(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s: page %s: %d %v", name, page, res.StatusCode, err)
	}
	if stream == "" {
		stream = page + "/events?after=" + dom.Cursor()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+stream, nil)
	req.Header.Set("Datastar-Request", "true")
	if gz {
		// Set by hand, so that the transport leaves the body encoded.
		req.Header.Set("Accept-Encoding", "gzip")
	}
	res, err = client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		cancel()
		res.Body.Close()
		t.Fatalf("%s: stream %s: status %d", name, stream, res.StatusCode)
	}
	tb := &tab{name: name, cancel: cancel, done: make(chan struct{}), dom: dom, encoding: res.Header.Get("Content-Encoding")}
	t.Cleanup(func() { tb.close() })
	go func() {
		defer close(tb.done)
		defer res.Body.Close()
		var body io.Reader = res.Body
		if tb.encoding == "gzip" {
			zr, err := gzip.NewReader(body)
			if err != nil {
				tb.fail(err)
				return
			}
			body = zr
		}
		err := readSSE(body, func(ev sseEvent) bool {
			if ev.Comment {
				return true
			}
			f := ev.Fragments()
			tb.mu.Lock()
			defer tb.mu.Unlock()
			switch {
			case strings.Contains(f, `<ul id="side-list"`):
				tb.sides = append(tb.sides, f)
				tb.kinds = append(tb.kinds, "side")
			case ev.ID != "":
				tb.kinds = append(tb.kinds, "log")
			default:
				tb.kinds = append(tb.kinds, "other")
			}
			if err := tb.dom.Apply(f); err != nil {
				tb.err = fmt.Errorf("frame %s: %w", ev.ID, err)
				return false
			}
			return true
		})
		if ctx.Err() == nil {
			tb.fail(err)
		}
	}()
	return tb
}

func (tb *tab) fail(err error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.err == nil {
		tb.err = err
	}
}

func (tb *tab) close() {
	tb.cancel()
	<-tb.done
}

// state returns the side list as the tab shows it, the last side-list
// frame, how many it got, and the stream's error.
func (tb *tab) state() (shown, last string, n int, err error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.sides) > 0 {
		last = tb.sides[len(tb.sides)-1]
	}
	return tb.dom.HTML("side-list"), last, len(tb.sides), tb.err
}

// waitTab waits until ok holds for the tab's shown list and its last
// side-list frame; a stream error fails at once.
func waitTab(t *testing.T, tb *tab, what string, ok func(shown, last string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		shown, last, _, err := tb.state()
		if err != nil {
			t.Fatalf("%s: stream failed: %v", tb.name, err)
		}
		if ok(shown, last) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s; shown:\n%s\nlast frame:\n%s", tb.name, what, shown, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// entry is how the side list links conversation id under title (not the
// conversation on the page, which has fixed ids).
func entry(id, title string) string { return `<a href="/c/` + id + `">` + title + `</a>` }

// ownerOf returns the owner ID in client's session cookie.
func ownerOf(t *testing.T, a *app, client *http.Client) string {
	t.Helper()
	u, _ := url.Parse(a.URL)
	for _, c := range client.Jar.Cookies(u) {
		if c.Name == session.CookieName {
			if owner, err := a.Sessions.Verify(c.Value); err == nil {
				return owner
			}
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// createAs starts a conversation as browser client, like the home form.
func createAs(t *testing.T, a *app, client *http.Client, text string) string {
	t.Helper()
	return a.createWith(t, client, url.Values{"text": {text}})
}

// settled waits until conv's first answer has ended and it has a title.
func settled(t *testing.T, a *app, conv string) {
	t.Helper()
	a.waitStatus(t, conv, 1, store.StatusDone)
	waitFor(t, "the generated title of "+conv, func() bool {
		m, err := a.Store.Meta(context.Background(), conv)
		return err == nil && m.Title != ""
	})
}

// ownerSubscribers is how many subscriptions Redis has to owner's channel.
func ownerSubscribers(t *testing.T, a *app, owner string) int64 {
	t.Helper()
	ch := store.OwnerChannel(owner)
	n, err := a.RDB.PubSubNumSub(context.Background(), ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[ch]
}

// TestSidebarIsLivePerBrowser: a browser's tabs (a conversation stream and
// the home page's sidebar stream) show what another of its tabs does: a new
// conversation, its generated title, a rename, a deletion. Another
// browser's streams get nothing of it. The process holds one subscription
// connection, and one channel per browser however many of its tabs watch,
// released when the last one leaves.
func TestSidebarIsLivePerBrowser(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 30} })
	x := a.create(t, "First question here")
	b := a.NewBrowser()
	y := createAs(t, a, b, "Their own question")
	settled(t, a, x)
	settled(t, a, y)
	ownerA, ownerB := ownerOf(t, a, a.Client), ownerOf(t, a, b)
	xTitle, _ := a.Store.Meta(context.Background(), x)
	waitFor(t, "the answers' rooms to close", func() bool {
		s := a.Hub.Stats()
		return s.Rooms == 0 && s.Lists == 0 && s.Subscriptions == 1 // the probe
	})
	subs := func(want int64) func() bool {
		return func() bool { return a.Hub.Stats().Subscriptions == want }
	}

	aHome := openTab(t, a, a.Client, "A's home page", "/", "/sidebar/events", false)
	waitTab(t, aHome, "the list", func(_, last string) bool { return strings.Contains(last, entry(x, xTitle.Title)) })
	waitFor(t, "A's channel", subs(2))
	aConv := openTab(t, a, a.Client, "A's conversation", "/c/"+x, "", false)
	waitTab(t, aConv, "the list", func(_, last string) bool {
		return strings.Contains(last, `id="side-current-title">`+xTitle.Title+`<`)
	})
	waitFor(t, "A's channel and X's room", subs(3))
	aHome2 := openTab(t, a, a.Client, "A's second home page", "/", "/sidebar/events", false)
	waitTab(t, aHome2, "the list", func(_, last string) bool { return last != "" })
	bHome := openTab(t, a, b, "B's home page", "/", "/sidebar/events", false)
	bConv := openTab(t, a, b, "B's conversation", "/c/"+y, "", false)
	bWatch := openTab(t, a, b, "B watching A's conversation", "/c/"+x, "", false)
	for _, tb := range []*tab{bHome, bConv, bWatch} {
		waitTab(t, tb, "the list", func(_, last string) bool { return strings.Contains(last, "/c/"+y) })
	}
	waitFor(t, "two browsers' channels and two rooms", subs(5))
	if s := a.Hub.Stats(); s.Lists != 2 || s.SubscriptionConns != 1 || s.Viewers != 6 {
		t.Fatalf("6 streams of 2 browsers: %+v, want 2 lists, 1 subscription connection", s)
	}
	if na, nb := ownerSubscribers(t, a, ownerA), ownerSubscribers(t, a, ownerB); na != 1 || nb != 1 {
		t.Fatalf("Redis subscribers of the owners' channels: %d and %d, want 1 each", na, nb)
	}
	if _, last, _, _ := bWatch.state(); strings.Contains(last, "side-current") || strings.Contains(last, "/c/"+x) {
		t.Fatalf("B's list shows A's conversation it watches: %s", last)
	}
	bFrames := map[*tab]int{}
	for _, tb := range []*tab{bHome, bConv, bWatch} {
		_, _, n, _ := tb.state()
		bFrames[tb] = n
	}
	aTabs := []*tab{aHome, aConv, aHome2}
	everyA := func(what string, ok func(shown, last string) bool) {
		t.Helper()
		for _, tb := range aTabs {
			waitTab(t, tb, what, ok)
		}
	}

	// Another tab of A's starts a conversation: listed at once, then
	// titled after its first answer.
	z := a.create(t, "Tell me about otters")
	everyA("the new conversation", func(shown, last string) bool {
		return strings.Contains(last, `href="/c/`+z+`"`) && strings.Contains(shown, `href="/c/`+z+`"`)
	})
	everyA("its generated title", func(shown, last string) bool {
		return strings.Contains(last, entry(z, "Tell me about otters")) && strings.Contains(shown, entry(z, "Tell me about otters"))
	})
	if code, body := a.action(t, a.Client, "/c/"+z+"/title", url.Values{"title": {"Otter notes"}}); code != 200 {
		t.Fatalf("rename: %d %s", code, body)
	}
	everyA("the rename", func(shown, last string) bool {
		return strings.Contains(last, entry(z, "Otter notes")) && strings.Contains(shown, entry(z, "Otter notes"))
	})
	// The conversation on a page keeps its fixed ids: its title frames and
	// the list's frames both patch it.
	if code, body := a.action(t, a.Client, "/c/"+x+"/title", url.Values{"title": {"Renamed first"}}); code != 200 {
		t.Fatalf("rename: %d %s", code, body)
	}
	for _, tb := range []*tab{aHome, aHome2} {
		waitTab(t, tb, "the rename of X", func(shown, last string) bool {
			return strings.Contains(last, entry(x, "Renamed first")) && strings.Contains(shown, entry(x, "Renamed first"))
		})
	}
	waitTab(t, aConv, "the rename of the conversation on the page", func(shown, _ string) bool {
		return strings.Contains(shown, `<span id="side-current-title">Renamed first</span>`) && strings.Count(shown, "/c/"+x) == 1
	})
	if code, body := a.action(t, a.Client, "/c/"+z+"/delete", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	everyA("the deletion", func(shown, last string) bool {
		return last != "" && !strings.Contains(last, "/c/"+z) && !strings.Contains(shown, "/c/"+z) && strings.Contains(shown, "/c/"+x)
	})

	// B saw none of it.
	for _, tb := range []*tab{bHome, bConv, bWatch} {
		shown, _, n, err := tb.state()
		if err != nil || n != bFrames[tb] || strings.Contains(shown, "/c/"+z) || !strings.Contains(shown, "/c/"+y) {
			t.Errorf("%s: %d list frames (had %d), err %v, shows:\n%s", tb.name, n, bFrames[tb], err, shown)
		}
	}
	if n := a.Hub.Stats().SubscriptionConns; n != 1 {
		t.Errorf("%d subscription connections, want 1", n)
	}

	// The channel of a browser goes with its last stream.
	aHome.close()
	aConv.close()
	if n := ownerSubscribers(t, a, ownerA); n != 1 {
		t.Fatalf("A's channel has %d subscribers while a tab of A's is open, want 1", n)
	}
	aHome2.close()
	waitFor(t, "A's channel released", func() bool { return ownerSubscribers(t, a, ownerA) == 0 && a.Hub.Stats().Lists == 1 })
	for _, tb := range []*tab{bHome, bConv, bWatch} {
		tb.close()
	}
	waitFor(t, "every channel released", func() bool {
		s := a.Hub.Stats()
		return s.Lists == 0 && s.Subscriptions == 1 && ownerSubscribers(t, a, ownerB) == 0
	})
}

// TestGzipStreamCarriesTheSidebar: a gzip conversation stream gets the
// browser's list frames between the room's, each compressed for that viewer
// alone; the stream decodes to its end (compress/gzip checks the CRC and
// length in the trailer), and the page ends equal to a fresh one, messages
// and list alike.
func TestGzipStreamCarriesTheSidebar(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 150, Tokens: 300} })
	x := a.create(t, "Write something long")
	tb := openTab(t, a, a.Client, "gzip tab", "/c/"+x, "", true)
	if tb.encoding != "gzip" {
		t.Fatalf("stream Content-Encoding %q, want gzip", tb.encoding)
	}
	// Another tab posts while the answer streams.
	var others []string
	for i := range 3 {
		others = append(others, a.create(t, fmt.Sprintf("Side question %d", i)))
		waitTab(t, tb, "the new conversation in the list", func(_, last string) bool {
			return strings.Contains(last, `href="/c/`+others[i]+`"`)
		})
	}
	if code, body := a.action(t, a.Client, "/c/"+others[0]+"/title", url.Values{"title": {"Renamed side"}}); code != 200 {
		t.Fatalf("rename: %d %s", code, body)
	}
	settled(t, a, x)
	for _, o := range others {
		settled(t, a, o)
	}
	fresh, _ := a.page(t, x)
	waitTab(t, tb, "the page to equal a fresh one", func(shown, _ string) bool {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		return shown == fresh.HTML("side-list") && tb.dom.Messages() == fresh.Messages() && tb.dom.Status(1) == store.StatusDone
	})
	tb.mu.Lock()
	kinds := strings.Join(tb.kinds, " ")
	tb.mu.Unlock()
	if !strings.Contains(kinds, "side log") || strings.Count(kinds, "side") < 4 {
		t.Fatalf("want list frames between the conversation's: %s", kinds)
	}

	// Deleting it ends the stream cleanly, with the gzip trailer.
	if code, body := a.action(t, a.Client, "/c/"+x+"/delete", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	select {
	case <-tb.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the stream did not end after the deletion")
	}
	if _, _, _, err := tb.state(); err != nil {
		t.Fatalf("the gzip stream did not decode to its end: %v", err)
	}
}
