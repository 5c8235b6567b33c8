package e2e_test

// Redis faults, with the server's goroutines counted from its metrics:
// Redis restarting under live streams, and Redis answering too slowly.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/procs"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestRedisRestartMidStream: Redis stops while an answer streams to viewers
// and comes back 1.5 s later with its data (append-only file). The server
// does not crash; /readyz reports the outage and the recovery; the viewers'
// streams are cut (the page shows "reconnecting") and they reconnect with
// their Last-Event-ID; the answer goes on, or ends as failed or interrupted,
// but is never cut silently: what every viewer shows is what is stored, and a
// "done" answer is the model's whole reply. Goroutines return to where they
// were.
func TestRedisRestartMidStream(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	// 15 s of answer: the outage must begin while every viewer still waits
	// for its end, however slowly a busy machine brings the first words.
	sp := harness.Speed{TPS: 40, Tokens: 600}
	app, base, shutdown := launch(t, sp, srv.URL(), "-sweep-interval", "500ms", "-metrics-addr", "127.0.0.1:0")
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	idle := settledMetric(t, app.Proc, "go_goroutines")

	const question = "What happens when Redis restarts?"
	conv, err := viewer.Create(ctx, client, base, question)
	if err != nil {
		t.Fatal(err)
	}
	var vs []*viewer.Viewer
	for range 6 {
		v, err := viewer.Load(ctx, client, base, conv)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	errs := follow(ctx, vs, viewer.HasEnded(1), nil)
	harness.WaitUntil(t, "the answer to reach the viewers", 20*time.Second, func() bool { return vs[0].Text(1) != "" })
	if got := readyStatus(client, base); got != http.StatusOK {
		t.Fatalf("/readyz before the outage: %d", got)
	}

	srv.Stop()
	harness.WaitUntil(t, "/readyz to report the outage", 10*time.Second, func() bool {
		return readyStatus(client, base) == http.StatusServiceUnavailable
	})
	time.Sleep(1500 * time.Millisecond) // the outage itself: it lasts a while
	srv.Restart(t)
	harness.WaitUntil(t, "/readyz to recover", 10*time.Second, func() bool { return readyStatus(client, base) == http.StatusOK })

	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	snap, err := store.New(rdb, store.Config{}).Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	msg := snap.Messages[1]
	t.Logf("after the outage the answer is %s (%d bytes)", msg.Status, len(msg.Text))
	switch msg.Status {
	case store.StatusDone:
		want := llm.NewDemo(llm.DemoConfig{TokensPerSecond: sp.TPS, Tokens: sp.Tokens}).Reply([]llm.Message{{Role: llm.RoleUser, Content: question}})
		if msg.Text != want {
			t.Fatalf("the answer is marked done but differs from the model's reply:\n%s", viewer.Diff(want, msg.Text))
		}
	case store.StatusFailed, store.StatusInterrupted:
		if msg.Error == "" {
			t.Fatalf("the answer ended %s without saying why", msg.Status)
		}
	default:
		t.Fatalf("the answer is %q after the outage", msg.Status)
	}
	fresh, err := viewer.Page(ctx, client, base, conv)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if got, want := v.Messages(), fresh.Messages(); got != want {
			t.Errorf("viewer %d differs from a fresh page:\n%s", i, viewer.Diff(want, got))
		}
		if v.Reconnects() == 0 {
			t.Errorf("viewer %d was never cut: its page would not show that it was reconnecting", i)
		}
	}

	client.CloseIdleConnections()
	waitGoroutines(t, app.Proc, idle)
	shutdown()
}

// TestSlowRedis: Redis accepts connections but answers nothing for 6 s
// (CLIENT PAUSE). Every request made meanwhile gets a clear error within the
// request timeout (a 503 with a message, not a hang), goroutines do not pile
// up, a running answer carries on afterwards, and the posts Redis ran late,
// after the server had given up on them, are not left "streaming".
func TestSlowRedis(t *testing.T) {
	t.Parallel()
	const pause, requestTimeout = 6 * time.Second, 2 * time.Second
	srv := testredis.Start(t)
	sp := harness.Speed{TPS: 40, Tokens: 200}
	app, base, shutdown := launch(t, sp, srv.URL(), "-redis-timeout", "1s", "-request-timeout", requestTimeout.String(),
		"-lease-ttl", "10s", "-sweep-interval", "200ms", "-metrics-addr", "127.0.0.1:0")
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	idle := settledMetric(t, app.Proc, "go_goroutines")

	const question = "Is a slow Redis a problem?"
	conv, err := viewer.Create(ctx, client, base, question)
	if err != nil {
		t.Fatal(err)
	}
	v, err := viewer.Load(ctx, client, base, conv)
	if err != nil {
		t.Fatal(err)
	}
	errs := follow(ctx, []*viewer.Viewer{v}, viewer.HasEnded(1), nil)
	harness.WaitUntil(t, "the answer to reach the viewer", 20*time.Second, func() bool { return v.Text(1) != "" })

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatal(err)
	}

	// Everything a browser may ask for, many at once.
	type result struct {
		what   string
		status int
		body   string
		took   time.Duration
	}
	requests := []struct {
		what, method, path, body string
		datastar                 bool
	}{
		{"page", "GET", "/c/" + conv, "", false},
		{"events", "GET", "/c/" + conv + "/events", "", false},
		{"new conversation", "POST", "/c", "text=hello", false},
		{"post", "POST", "/c/" + conv + "/messages", "text=more&key=" + store.NewID(), true},
		{"stop", "POST", "/c/" + conv + "/stop", "", true},
		{"readyz", "GET", "/readyz", "", false},
	}
	const each = 8
	results := make(chan result, each*len(requests))
	var wg sync.WaitGroup
	for i := range each {
		for _, r := range requests {
			wg.Go(func() {
				body := r.body
				if r.what == "new conversation" {
					body = fmt.Sprintf("text=hello+%d", i)
				}
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, r.method, base+r.path, strings.NewReader(body))
				if body != "" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if r.datastar {
					req.Header.Set("Datastar-Request", "true")
				}
				res, err := client.Do(req)
				if err != nil {
					results <- result{what: r.what, body: err.Error(), took: time.Since(start)}
					return
				}
				b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
				res.Body.Close()
				results <- result{r.what, res.StatusCode, string(b), time.Since(start)}
			})
		}
	}
	peak := int(metric(t, app.Proc, "go_goroutines"))
	wg.Wait()
	close(results)
	slowest := map[string]time.Duration{}
	for r := range results {
		slowest[r.what] = max(slowest[r.what], r.took)
		// A 503 that says what happened: a page, a patch of the composer
		// for the Datastar client, or /readyz's reason.
		if r.status != http.StatusServiceUnavailable || !saysWhy(r.body) {
			t.Errorf("%s while Redis is paused: status %d after %v, want 503 with a message: %.300s", r.what, r.status, r.took, r.body)
		}
		// They time out; they do not wait for the pause to end.
		if r.took >= pause-time.Second {
			t.Errorf("%s took %v: it waited for Redis instead of timing out", r.what, r.took)
		}
	}
	t.Logf("%d requests during a %v pause, slowest by kind: %v; %d goroutines at the peak", each*len(requests), pause, slowest, peak)

	// The answer carries on after the pause and ends whole.
	for err := range errs {
		t.Error(err)
	}
	st := store.New(rdb, store.Config{})
	snap, err := st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	want := llm.NewDemo(llm.DemoConfig{TokensPerSecond: sp.TPS, Tokens: sp.Tokens}).Reply([]llm.Message{{Role: llm.RoleUser, Content: question}})
	if m := snap.Messages[1]; m.Status != store.StatusDone || m.Text != want {
		t.Errorf("the answer after the pause: status %q, %s", m.Status, viewer.Diff(want, m.Text))
	}
	if got, want := v.Messages(), mustPage(t, client, base, conv).Messages(); got != want {
		t.Errorf("the viewer differs from a fresh page:\n%s", viewer.Diff(want, got))
	}
	// Redis ran the posts it had queued once the pause ended, after the
	// server had given up on them and started no answer: the sweeper must
	// end those answers once their lease runs out.
	var orphans int
	harness.WaitUntil(t, "every answer to end", 20*time.Second, func() bool {
		keys, err := rdb.Keys(ctx, "{c:*}:meta").Result()
		if err != nil {
			return false
		}
		streaming := 0
		for _, k := range keys {
			id, _ := strings.CutPrefix(strings.TrimSuffix(k, "}:meta"), "{c:")
			snap, err := st.Snapshot(ctx, id, store.ID{})
			if err != nil || snap.Active != "" {
				streaming++
			}
		}
		orphans = max(orphans, streaming)
		return streaming == 0
	})
	t.Logf("most answers left streaming at once by posts Redis ran after their timeout: %d", orphans)

	client.CloseIdleConnections()
	waitGoroutines(t, app.Proc, idle)
	shutdown()
}

// saysWhy reports whether an error answer tells a person what to do.
func saysWhy(body string) bool {
	for _, s := range []string{"Try again", "try again", "Reload the page", "not ready"} {
		if strings.Contains(body, s) {
			return true
		}
	}
	return false
}

func mustPage(t *testing.T, client *http.Client, base, conv string) *viewer.DOM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := viewer.Page(ctx, client, base, conv)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readyStatus(client *http.Client, base string) int {
	res, err := client.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// waitGoroutines waits until the server's goroutine count is back near
// idle: a few more for connections it keeps alive and timers about to fire.
func waitGoroutines(t *testing.T, p *procs.Proc, idle float64) {
	t.Helper()
	const slack = 10
	harness.WaitUntil(t, "the server's goroutines to go back to idle", 15*time.Second, func() bool {
		return metric(t, p, "go_goroutines") <= idle+slack
	})
	t.Logf("goroutines: %v when idle, %v after", idle, metric(t, p, "go_goroutines"))
}
