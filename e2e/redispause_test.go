package e2e_test

// Redis that answers nothing for longer than a lease (CLIENT PAUSE): answers
// go on and end whole, with
// one process or two; open streams are cut (the page shows "Reconnecting…")
// and resume exact; and a shutdown with Redis away keeps its bound.

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// pauseRedis makes Redis answer no client for d: connections stay up, and
// commands wait (CLIENT PAUSE ... ALL). It cannot be undone early.
func pauseRedis(t *testing.T, rdb *redis.Client, d time.Duration) time.Time {
	t.Helper()
	if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", d.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// checkAnswer checks that conv's answer is stored done and equal to what
// the model says to question, and that every viewer shows the stored page.
func checkAnswer(t *testing.T, st *store.Store, client *http.Client, base, conv, question string, sp harness.Speed, vs ...*viewer.Viewer) {
	t.Helper()
	snap, err := st.Snapshot(context.Background(), conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	want := llm.NewDemo(llm.DemoConfig{TokensPerSecond: sp.TPS, Tokens: sp.Tokens}).Reply([]llm.Message{{Role: llm.RoleUser, Content: question}})
	m := snap.Messages[1]
	if m.Status != store.StatusDone || m.Text != want {
		t.Errorf("answer to %q after the pause: %s %q; %s", question, m.Status, m.Error, viewer.Diff(want, m.Text))
	}
	fresh := mustPage(t, client, base, conv)
	for i, v := range vs {
		if got, want := v.Messages(), fresh.Messages(); got != want {
			t.Errorf("viewer %d of %q differs from a fresh page:\n%s", i, question, viewer.Diff(want, got))
		}
	}
}

// TestRedisPauseLongerThanLease: Redis answers nothing for 5 s, more than
// twice the 2 s lease, while two answers are written: one whose model goes
// on after the pause, and one whose model ends during it (its text and end
// wait in memory). The process is alive, so neither is ended as if it had
// gone away: both end done, equal to the model's reply, on every page.
func TestRedisPauseLongerThanLease(t *testing.T) {
	t.Parallel()
	const lease, pause = 2 * time.Second, 5 * time.Second
	srv := testredis.Start(t)
	sp := harness.Speed{TPS: 20, Tokens: 240} // 12 s
	_, base, shutdown := launch(t, sp, srv.URL(), "-lease-ttl", lease.String(), "-sweep-interval", "200ms",
		"-redis-timeout", "1s", "-request-timeout", "2s")
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb, store.Config{})

	const long = "Does a paused Redis cut my answer?"
	// 50 pieces at 20 a second: its model is done during the pause.
	short := "[[echo]]" + strings.TrimSpace(strings.Repeat("word ", 50)) // a message ends with no white space
	var convs []string
	var vs []*viewer.Viewer
	for _, q := range []string{long, short} {
		conv, err := viewer.Create(ctx, client, base, q)
		if err != nil {
			t.Fatal(err)
		}
		v, err := viewer.Load(ctx, client, base, conv)
		if err != nil {
			t.Fatal(err)
		}
		convs, vs = append(convs, conv), append(vs, v)
	}
	errs := follow(ctx, vs, viewer.HasEnded(1), nil)
	harness.WaitUntil(t, "both answers to reach their viewers", 20*time.Second, func() bool {
		return vs[0].Text(1) != "" && vs[1].Text(1) != ""
	})
	if vs[1].Status(1) != store.StatusStreaming {
		t.Fatal("the short answer ended before the pause: the test proves nothing")
	}
	paused := pauseRedis(t, rdb, pause)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("both answers ended %v after the pause began", time.Since(paused).Round(time.Millisecond))
	if t.Failed() {
		return
	}
	checkAnswer(t, st, client, base, convs[0], long, sp, vs[0])
	snap, err := st.Snapshot(ctx, convs[1], store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if m, want := snap.Messages[1], strings.TrimPrefix(short, "[[echo]]"); m.Status != store.StatusDone || m.Text != want {
		t.Errorf("the answer whose model ended during the pause: %s %q, %d of %d bytes", m.Status, m.Error, len(m.Text), len(want))
	}
	shutdown()
}

// TestRedisPauseWithTwoProcesses: A writes an answer that B's viewers
// watch; B sweeps every 100 ms. Redis answers nothing for 5 s (lease: 2 s),
// then, for a second answer, it is stopped for 4 s and restarted with its
// data (both processes reconnect in no set order). B's sweeper must not end
// A's answers, which go on: both end done and whole on B's pages.
func TestRedisPauseWithTwoProcesses(t *testing.T) {
	t.Parallel()
	const lease = 2 * time.Second
	srv := testredis.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	sp := harness.Speed{TPS: 20, Tokens: 240}
	common := []string{"-lease-ttl", lease.String(), "-redis-timeout", "1s", "-request-timeout", "2s"}
	_, a, shutdownA := launch(t, sp, srv.URL(), append(common, "-sweep-interval", "200ms")...)
	_, b, shutdownB := launch(t, sp, srv.URL(), append(common, "-sweep-interval", "100ms")...)
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb, store.Config{})

	for _, outage := range []string{"pause", "restart"} {
		question := "Does B end my answer after a " + outage + "?"
		conv, err := viewer.Create(ctx, client, a, question)
		if err != nil {
			t.Fatal(err)
		}
		v, err := viewer.Load(ctx, client, b, conv)
		if err != nil {
			t.Fatal(err)
		}
		errs := follow(ctx, []*viewer.Viewer{v}, viewer.HasEnded(1), nil)
		harness.WaitUntil(t, "the answer to reach B's viewer", 20*time.Second, func() bool { return v.Text(1) != "" })
		start := time.Now()
		if outage == "pause" {
			pauseRedis(t, rdb, 5*time.Second)
		} else {
			srv.Stop()
			time.Sleep(4 * time.Second) // the outage itself
			srv.Restart(t)
		}
		for err := range errs {
			t.Error(err)
		}
		t.Logf("%s: the answer ended %v after the outage began", outage, time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			return
		}
		checkAnswer(t, st, client, b, conv, question, sp, v)
	}
	shutdownA()
	shutdownB()
}

// TestRedisPauseCutsStreams: Redis answers nothing for 15 s. The server's
// subscription stays connected and receives nothing, so its probe (every
// 10 s, as deployed) must find that out and cut the open streams: the page
// shows "Reconnecting…" within the probe interval plus Redis's timeout, and
// retries, failing fast. When Redis answers again the stream resumes from its
// Last-Event-ID and the page ends equal to the stored conversation. (The
// 10 s lease runs out meanwhile too: the answer still ends whole.)
func TestRedisPauseCutsStreams(t *testing.T) {
	t.Parallel()
	// The pause outlasts the bound below by seconds, so that a cut just
	// inside the bound is still seen during the pause on a busy machine.
	const pause, probe, redisTimeout = 15 * time.Second, 10 * time.Second, time.Second
	srv := testredis.Start(t)
	sp := harness.Speed{TPS: 20, Tokens: 200}
	_, base, shutdown := launch(t, sp, srv.URL(), "-redis-timeout", redisTimeout.String(), "-request-timeout", "2s")
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()

	const question = "Does my page know when Redis stalls?"
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
	if v.Reconnects() != 0 {
		t.Fatal("the stream was cut before the pause")
	}
	paused := pauseRedis(t, rdb, pause)
	var cut atomic.Int64 // after the pause began, in ns; 0 while not cut
	go func() {
		for time.Since(paused) < pause && cut.Load() == 0 {
			if v.Reconnects() > 0 {
				cut.Store(int64(time.Since(paused)))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for err := range errs {
		t.Error(err)
	}
	took := time.Duration(cut.Load())
	t.Logf("the stream was cut %v after Redis stopped answering (probe every %v, Redis timeout %v); %s",
		took.Round(time.Millisecond), probe, redisTimeout, v.Summary())
	if took == 0 {
		t.Fatalf("the stream was not cut during a %v pause: the page never showed that it was reconnecting", pause)
	}
	if bound := probe + redisTimeout + time.Second; took > bound {
		t.Errorf("the stream was cut %v into the pause, later than %v", took, bound)
	}
	if t.Failed() {
		return
	}
	checkAnswer(t, store.New(rdb, store.Config{}), client, base, conv, question, sp, v)
	shutdown()
}

// TestShutdownWithRedisAway: a shutdown while an answer is written and a
// page streams, with Redis stopped or paused, keeps its bound (5 s here):
// every step gives up on Redis in time, and the process exits within the
// bound plus a second.
//
// Not beside the other tests of the package (it runs before them): its bound
// is a second of wall time, which a loaded machine's scheduler can eat.
func TestShutdownWithRedisAway(t *testing.T) {
	const bound = harness.ShutdownTimeout
	for _, away := range []string{"stopped", "paused"} {
		t.Run(away, func(t *testing.T) {
			t.Parallel()
			srv := testredis.Start(t)
			_, base, shutdown := launch(t, harness.Speed{TPS: 40, Tokens: 120}, srv.URL(), "-shutdown-timeout", bound.String())
			client := viewer.NewClient()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// [[slow]]: 2 tokens a second, far longer than the bound.
			conv, err := viewer.Create(ctx, client, base, "a long one [[slow]]")
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/c/"+conv+"/events", nil)
			req.Header.Set("Datastar-Request", "true")
			stream, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Body.Close()
			go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(stream.Body)) }()
			st := redisStore(t, srv)
			harness.WaitUntil(t, "some text to be written", 20*time.Second, func() bool { return stored(t, st, conv, 1).Text != "" })

			if away == "stopped" {
				srv.Stop()
			} else {
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
				defer rdb.Close()
				pauseRedis(t, rdb, 3*bound)
			}
			start := time.Now()
			shutdown()
			took := time.Since(start)
			t.Logf("shutdown with Redis %s took %v (bound %v)", away, took.Round(time.Millisecond), bound)
			if took > bound+time.Second {
				t.Errorf("shutdown with Redis %s took %v, over its bound %v plus a second", away, took, bound)
			}
		})
	}
}
