// Package e2e_test runs the real Parley binary (built once by TestMain)
// against private redis-servers, with no browser: several processes sharing
// conversations, killed, or shut down for a deploy (configured by
// environment variables, as a container is), and one process configured by
// flags under Redis faults and pauses, at shutdown, behind its metrics, on a
// Redis Cluster, and with no configuration at all. Tests run in parallel:
// each owns its Redis and processes on free ports.
//
// Viewers are Go clients that follow the live stream exactly as the page
// does (internal/viewer); every wait polls a condition with a generous
// timeout, and every viewer must end with what a fresh page shows.
package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/procs"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/store"
)

// bin is the parley binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) { os.Exit(harness.Run(m, &bin, 4)) }

// launch starts an app configured by flags (harness.Launch) and returns its
// URL and its shutdown (SIGTERM, waiting until it has exited).
func launch(t *testing.T, s harness.Speed, redisURL string, extra ...string) (*harness.App, string, func()) {
	t.Helper()
	app := harness.Launch(t, bin, s, redisURL, nil, extra...)
	return app, app.URL, app.Shutdown
}

// env is the configuration every process of a test shares, plus overrides
// given as alternating names and values.
func env(redisURL string, d harness.Speed, kv ...string) map[string]string {
	e := map[string]string{
		"REDIS_URL":          redisURL,
		"PARLEY_DEMO_TPS":    strconv.FormatFloat(d.TPS, 'f', -1, 64),
		"PARLEY_DEMO_TOKENS": strconv.Itoa(d.Tokens),
		"PARLEY_LOG_LEVEL":   "info",
		// The same key on every process: a person's session cookie from one
		// must be honoured by the others.
		"PARLEY_SESSION_KEY": "e2e-test-session-key-e2e-test-session-key",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i]] = kv[i+1]
	}
	return e
}

// startAll starts one process per name with the same configuration.
func startAll(t *testing.T, e map[string]string, names ...string) []*procs.Proc {
	t.Helper()
	ps := make([]*procs.Proc, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { ps[i] = procs.Start(t, bin, name, e) })
	}
	wg.Wait()
	for _, p := range ps {
		if p == nil {
			t.FailNow() // Start reported why
		}
	}
	return ps
}

// redisStore reads what the processes stored, straight from Redis.
func redisStore(t *testing.T, srv *testredis.Server) *store.Store {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return store.New(rdb, store.Config{})
}

// stored returns message i of conv as Redis holds it.
func stored(t *testing.T, st *store.Store, conv string, i int) store.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatalf("read %s from redis: %v", conv, err)
	}
	if i >= len(snap.Messages) {
		t.Fatalf("%s has %d messages, want message %d", conv, len(snap.Messages), i)
	}
	return snap.Messages[i]
}

// follow runs each viewer until done holds for its page, in parallel, and
// returns one error per viewer that failed.
func follow(ctx context.Context, vs []*viewer.Viewer, done func(*viewer.DOM) bool, opt func(i int) viewer.Options) <-chan error {
	errs := make(chan error, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		o := viewer.Options{}
		if opt != nil {
			o = opt(i)
		}
		wg.Go(func() {
			if err := v.Follow(ctx, done, o); err != nil {
				errs <- fmt.Errorf("viewer %d: %w", i, err)
			}
		})
	}
	go func() { wg.Wait(); close(errs) }()
	return errs
}

// sameAsFresh checks that every viewer shows what a fresh page shows.
func sameAsFresh(t *testing.T, client *http.Client, base, conv string, vs []*viewer.Viewer) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fresh, err := viewer.Page(ctx, client, base, conv)
	if err != nil {
		t.Fatal(err)
	}
	want := fresh.Messages()
	for i, v := range vs {
		if got := v.Messages(); got != want {
			t.Errorf("viewer %d (%s) differs from a fresh page:\n%s", i, v.Summary(), viewer.Diff(want, got))
		}
	}
	return want
}
