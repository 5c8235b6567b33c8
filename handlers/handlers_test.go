package handlers_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 50} })
	conv := a.create(t, "hello")
	a.waitStatus(t, conv, 1, store.StatusDone)
	unknown := store.NewID()
	tests := []struct {
		name, method, path, body string
		datastar                 bool
		want                     int
		wantText                 string
	}{
		{"unknown conversation page", "GET", "/c/" + unknown, "", false, 404, "no conversation"},
		{"malformed conversation id", "GET", "/c/NOT-AN-ID", "", false, 404, "no conversation"},
		{"unknown conversation events", "GET", "/c/" + unknown + "/events", "", false, 404, "no conversation"},
		{"post to unknown conversation", "POST", "/c/" + unknown + "/messages", "text=hi&key=" + store.NewID(), true, 404, "does not exist"},
		{"empty message", "POST", "/c/" + conv + "/messages", "text=++&key=" + store.NewID(), true, 400, "Type a message"},
		{"oversized message", "POST", "/c/" + conv + "/messages", "text=" + strings.Repeat("a", 5000) + "&key=" + store.NewID(), true, 413, "limit is 4.0 KB"},
		{"oversized body", "POST", "/c/" + conv + "/messages", "text=" + strings.Repeat("a", 9000), true, 413, "larger than"},
		{"missing key", "POST", "/c/" + conv + "/messages", "text=hi", true, 400, "out of date"},
		{"empty first message", "POST", "/c", "text=", false, 400, "Type a message"},
		{"bad conversation id on create", "POST", "/c", "conv=x&text=hi", false, 400, "out of date"},
		{"bare conversation id on create", "POST", "/c", "conv=" + store.NewID() + "&text=hi", false, 400, "out of date"},
		{"empty offer on create", "POST", "/c", "conv=&text=hi", true, 400, "out of date"},
		{"wrong method on messages", "GET", "/c/" + conv + "/messages", "", false, 405, ""},
		{"wrong method on stop", "GET", "/c/" + conv + "/stop", "", false, 405, ""},
		{"wrong method on page", "DELETE", "/c/" + conv, "", false, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, a.URL+tt.path, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.datastar {
				req.Header.Set("Datastar-Request", "true")
			}
			res, err := a.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, tt.want, body)
			}
			if !strings.Contains(string(body), tt.wantText) {
				t.Fatalf("body lacks %q: %s", tt.wantText, body)
			}
			if tt.datastar && !strings.Contains(string(body), "datastar-merge-fragments") {
				t.Fatalf("a Datastar request must get its error as a page patch: %s", body)
			}
		})
	}
	// Nothing above may have added a message.
	snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
	if err != nil || snap.Count != 2 {
		t.Fatalf("conversation changed by rejected requests: count %d, err %v", snap.Count, err)
	}
}

func TestMalformedLastEventIDGetsFullState(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 50} })
	conv := a.create(t, "hello")
	a.waitStatus(t, conv, 1, store.StatusDone)
	for _, id := range []string{"garbage", "1-0", "99999999999999-0", "-", ""} {
		req, _ := http.NewRequest("GET", a.URL+"/c/"+conv+"/events", nil)
		req.Header.Set("Last-Event-ID", id)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := a.Client.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("Last-Event-ID %q: status %d %s", id, res.StatusCode, res.Header.Get("Content-Type"))
		}
		var first sseEvent
		_ = readSSE(res.Body, func(ev sseEvent) bool { first = ev; return false })
		cancel()
		res.Body.Close()
		if !strings.Contains(first.Fragments(), `id="slot-0"`) || !strings.Contains(first.Fragments(), `id="m-1"`) {
			t.Fatalf("Last-Event-ID %q: first frame is not the full state: %q", id, first.Fragments())
		}
	}
}

func TestDoubleSubmitStartsOneAnswer(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 50} })
	// The home form twice (same hidden offer).
	offer, id := a.offer(t, a.Client)
	for range 2 {
		res, err := a.Client.PostForm(a.URL+"/c", map[string][]string{"conv": {offer}, "text": {"hi"}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/c/"+id {
			t.Fatalf("create: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
	}
	a.waitStatus(t, id, 1, store.StatusDone)
	// The composer twice (same key), concurrently.
	key := store.NewID()
	codes := make(chan int, 2)
	for range 2 {
		go func() { codes <- a.post(t, id, "again", key).StatusCode }()
	}
	for range 2 {
		if c := <-codes; c != http.StatusOK {
			t.Fatalf("duplicate post: status %d", c)
		}
	}
	a.waitStatus(t, id, 3, store.StatusDone)
	snap, _ := a.Store.Snapshot(context.Background(), id, store.ID{})
	if snap.Count != 4 {
		t.Fatalf("double submits made %d messages, want 4", snap.Count)
	}
	n, _ := a.RDB.XLen(context.Background(), "{c:"+id+"}:log").Result()
	var messages int
	entries, _ := a.RDB.XRange(context.Background(), "{c:"+id+"}:log", "-", "+").Result()
	for _, e := range entries {
		if e.Values["t"] == "message" {
			messages++
		}
	}
	if messages != 2 {
		t.Fatalf("%d message events in %d log entries, want 2", messages, n)
	}
}

func TestGenerationOutlivesViewersAndStopsFromAnother(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 100, Tokens: 150} })
	conv := a.create(t, "first")
	// A viewer watches, then every viewer leaves mid-answer.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/c/"+conv+"/events", nil)
	res, err := a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	_ = readSSE(res.Body, func(sseEvent) bool { frames++; return frames < 3 })
	cancel()
	res.Body.Close()
	msg := a.waitStatus(t, conv, 1, store.StatusDone)
	if want := a.Model.Reply([]llm.Message{{Role: llm.RoleUser, Content: "first"}}); msg.Text != want {
		t.Fatalf("answer after all viewers left is incomplete:\n got %q\nwant %q", msg.Text, want)
	}

	// A second message; stop comes from a different client than the poster.
	if res := a.post(t, conv, "second [[slow]]", store.NewID()); res.StatusCode != 200 {
		t.Fatalf("post: %d", res.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		snap, _ := a.Store.Snapshot(context.Background(), conv, store.ID{})
		if len(snap.Messages) == 4 && snap.Messages[3].Text != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second answer never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop := func(c *http.Client) int {
		stopReq, _ := http.NewRequest("POST", a.URL+"/c/"+conv+"/stop", nil)
		stopReq.Header.Set("Datastar-Request", "true")
		sres, err := c.Do(stopReq)
		if err != nil {
			t.Fatal(err)
		}
		sres.Body.Close()
		return sres.StatusCode
	}
	// Someone else (another browser, watching) may not stop it...
	if code := stop(a.NewBrowser()); code != http.StatusForbidden {
		t.Fatalf("stop by a watcher: status %d, want 403", code)
	}
	// ...but the owner may, from another tab (same cookies, new connection).
	otherTab := &http.Client{Jar: a.Client.Jar}
	if code := stop(otherTab); code != http.StatusOK {
		t.Fatalf("stop: %d", code)
	}
	stopped := a.waitStatus(t, conv, 3, store.StatusStopped)
	if stopped.Text == "" {
		t.Fatal("stopped answer lost its text")
	}
	time.Sleep(200 * time.Millisecond) // the interval in which the answer must not grow
	after, _ := a.Store.Snapshot(context.Background(), conv, store.ID{})
	if after.Messages[3].Text != stopped.Text {
		t.Fatal("answer kept growing after stop")
	}
}

func TestViewersReleaseRoomsSubscriptionsAndGoroutines(t *testing.T) {
	// Not parallel: runtime.NumGoroutine counts the whole process.
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 50} })
	conv := a.create(t, "hello")
	a.waitStatus(t, conv, 1, store.StatusDone)
	// Settling, not a condition: a base taken while the answer's last
	// goroutines exit is only higher, which makes the check looser, never flaky.
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()

	var cancels []context.CancelFunc
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/c/"+conv+"/events", nil)
		res, err := a.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, res.Body); res.Body.Close() }()
	}
	waitFor(t, "50 viewers in one room", func() bool { s := a.Hub.Stats(); return s.Viewers == 50 && s.Rooms == 1 })
	chans, _ := a.RDB.PubSubChannels(context.Background(), "{c:*").Result()
	if len(chans) != 1 {
		t.Fatalf("want one subscription for the room, got %v", chans)
	}
	for _, c := range cancels {
		c()
	}
	waitFor(t, "rooms and viewers released", func() bool { s := a.Hub.Stats(); return s.Viewers == 0 && s.Rooms == 0 })
	waitFor(t, "redis subscription released", func() bool {
		chans, _ := a.RDB.PubSubChannels(context.Background(), "{c:*").Result()
		return len(chans) == 0
	})
	a.Client.CloseIdleConnections()
	waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base+2 })
}

func TestIdleStreamGetsHeartbeatsAndStaysOpen(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 50}
		c.hub.Heartbeat = 100 * time.Millisecond
	})
	conv := a.create(t, "hello")
	a.waitStatus(t, conv, 1, store.StatusDone)
	// The title comes after the first answer's end: wait for it too, so
	// that the page is the last word.
	waitFor(t, "the title", func() bool {
		m, err := a.Store.Meta(context.Background(), conv)
		return err == nil && m.Title != ""
	})
	_, cursor := a.page(t, conv)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/c/"+conv+"/events?after="+cursor, nil)
	res, err := a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "no-transform") || res.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("stream headers let proxies buffer: Cache-Control %q", cc)
	}
	beats, frames := 0, 0
	err = readSSE(res.Body, func(ev sseEvent) bool {
		if ev.Comment {
			beats++
		} else if ev.ID != "" {
			frames++ // presence frames have no ID and are welcome
		}
		return true
	})
	// The stream must still be open when our own deadline ends it: the
	// beta.11 client would not reconnect after a clean close.
	if ctx.Err() == nil {
		t.Fatalf("server ended an idle stream (err %v)", err)
	}
	if beats < 10 || frames != 0 {
		t.Fatalf("in 3s at a 100ms heartbeat: %d heartbeats, %d frames (a page at the end needs none)", beats, frames)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
