package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
)

// pageBench is a server with one long conversation, loaded by its owner.
type pageBench struct {
	deps    handlers.Deps
	handler http.Handler
	conv    string
	cookie  *http.Cookie
}

// newPageBench starts a private redis-server and writes a conversation of
// msgs messages (msgs/2 posts, each answered with the clock model's
// Markdown), shaped as the load tool's page-200 scenario (150 tokens, prose=8).
func newPageBench(tb testing.TB, msgs int) *pageBench {
	tb.Helper()
	srv := testredis.Start(tb)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	tb.Cleanup(func() { _ = rdb.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := store.New(rdb, store.Config{LogMaxLen: 10000, LeaseTTL: time.Minute, MaxAnswerBytes: 256 << 10, IdempotencyTTL: time.Hour})
	md := markdown.NewRenderer()
	hub := live.NewHub(rdb, st, md, log, live.Config{ViewerQueue: 64, MaxViewers: 100, Heartbeat: 15 * time.Second,
		SubscribeTimeout: 5 * time.Second, ProbeInterval: 2 * time.Second})
	model := llm.NewClock(llm.ClockConfig{TokensPerSecond: 1_000_000})
	gens := generation.New(st, hub, model, log, generation.Config{FlushInterval: 20 * time.Millisecond,
		MaxConcurrent: 1, LeaseTTL: time.Minute, SweepInterval: time.Minute, MaxDuration: time.Minute, MaxAnswerBytes: 256 << 10})
	static, assets, err := handlers.Static(os.DirFS("../static"))
	if err != nil {
		tb.Fatal(err)
	}
	sessions, err := session.New(time.Hour, []byte("test-session-key-of-at-least-32-bytes"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	conv := store.NewID()
	prompt := "next tokens=150 tps=1000000 prose=8"
	for i := range msgs / 2 {
		gen := store.NewID()
		if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: prompt, Key: store.NewID(), Gen: gen, Create: i == 0}); err != nil {
			tb.Fatal(err)
		}
		var answer strings.Builder
		_, err := model.Stream(ctx, llm.Request{Messages: []llm.Message{{Role: "user", Content: prompt}}}, func(s string) error {
			answer.WriteString(s)
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: answer.String()}); err != nil {
			tb.Fatal(err)
		}
		if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: gen, Status: store.StatusDone}); err != nil {
			tb.Fatal(err)
		}
	}
	deps := handlers.Deps{
		Log: log, Store: st, Hub: hub, Gen: gens, MD: md, Assets: assets, Static: static,
		Limits: handlers.Limits{MaxMessageBytes: 4 << 10, MaxBodyBytes: 8 << 10}, Ready: st.Ping, Sessions: sessions, Models: testModels{"demo"},
	}
	return &pageBench{deps: deps, handler: handlers.NewServer(deps), conv: conv,
		cookie: &http.Cookie{Name: session.CookieName, Value: sessions.Sign(testOwner, time.Now())}}
}

// discard is a ResponseWriter that keeps nothing but the size of the body.
type discard struct {
	h      http.Header
	status int
	n      int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(status int)      { d.status = status }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkConversationPage loads a 200-message conversation as its owner:
// "handler" calls the handler directly (server work only: Redis reads and
// rendering), "http" goes through a loopback HTTP server and client as a
// browser would (write syscalls included, and the client's reading). Both
// load the page again and again, as people do, so they measure a process
// that has rendered it before; "cold" is "handler" with a new server (an
// empty message cache) for every load: a process's first load of the page.
func BenchmarkConversationPage(b *testing.B) {
	pb := newPageBench(b, 200)
	path := "/c/" + pb.conv
	load := func(b *testing.B, h http.Handler) int {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(pb.cookie)
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
		return w.n
	}

	b.Run("handler", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			size = load(b, pb.handler)
		}
		b.ReportMetric(float64(size), "B/page")
	})

	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			load(b, handlers.NewServer(pb.deps))
		}
	})

	b.Run("http", func(b *testing.B) {
		ts := httptest.NewServer(pb.handler)
		defer ts.Close()
		client := ts.Client()
		b.ReportAllocs()
		var size int64
		for b.Loop() {
			req, _ := http.NewRequest("GET", ts.URL+path, nil)
			req.AddCookie(pb.cookie)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			size, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK {
				b.Fatalf("status %d, %v", res.StatusCode, err)
			}
		}
		b.ReportMetric(float64(size), "B/page")
	})
}

// TestPageBenchIsOwner is a quick check that the benchmark loads the page as
// its owner, as the load tool does (the composer is the owner's).
func TestPageBenchIsOwner(t *testing.T) {
	t.Parallel()
	pb := newPageBench(t, 4)
	req := httptest.NewRequest("GET", "/c/"+pb.conv, nil)
	req.AddCookie(pb.cookie)
	w := httptest.NewRecorder()
	pb.handler.ServeHTTP(w, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="composer"`) {
		t.Fatalf("status %d, composer shown: %v", w.Code, strings.Contains(w.Body.String(), `id="composer"`))
	}
	if n := strings.Count(w.Body.String(), `class="msg msg-assistant"`); n != 2 {
		t.Fatalf("page has %d answers, want 2", n)
	}
}
