package generation_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// newAdmitter returns a Manager of one place, whose answers take about a
// second, under limits, and its store.
func newAdmitter(t *testing.T, limits generation.Limits) (*generation.Manager, *store.Store) {
	t.Helper()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Config{LogMaxLen: 10000, LeaseTTL: 10 * time.Second, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour})
	m := generation.New(st, &stopper{}, llm.NewDemo(llm.DemoConfig{TokensPerSecond: 50, Tokens: 50}),
		slog.New(slog.NewTextHandler(io.Discard, nil)), generation.Config{
			FlushInterval: 25 * time.Millisecond, MaxConcurrent: 1, LeaseTTL: 10 * time.Second,
			SweepInterval: time.Second, MaxDuration: time.Minute, MaxAnswerBytes: 1 << 20, Limits: limits,
		})
	return m, st
}

// waitAnswered waits until the last answer of conv has ended.
func waitAnswered(t *testing.T, st *store.Store, conv string) {
	t.Helper()
	waitFor(t, "the answer of "+conv+" to end", func() bool {
		snap, err := st.Snapshot(context.Background(), conv, store.ID{})
		return err == nil && len(snap.Messages) > 0 && snap.Messages[len(snap.Messages)-1].Status != store.StatusStreaming
	})
}

// post is m.Post, tried again while the place of an answer that has just
// ended is not given back yet (that comes a moment after its end is
// written). A refusal by capacity takes and counts nothing.
func post(t *testing.T, m *generation.Manager, msg generation.Message) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := m.Post(context.Background(), msg)
		if !errors.Is(err, generation.ErrAtCapacity) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdmissionGivesBackWhatItTook: every refusal of Post and Regenerate
// (capacity, limits, the store's own) is typed for the handler, and leaves
// nothing taken: the next answer is admitted once the running one ends, and
// Shutdown finds no generation that never started.
func TestAdmissionGivesBackWhatItTook(t *testing.T) {
	t.Parallel()
	m, st := newAdmitter(t, generation.Limits{OwnerAnswers: 1, PostsPerMinute: 4})
	ctx := context.Background()
	me := generation.Asker{Owner: testOwner, Addr: "192.0.2.1"}
	other := generation.Asker{Owner: "BBBBBBBBBBBBBBBBBBBBBB", Addr: "192.0.2.2"}

	first := store.NewID()
	if err := m.Post(ctx, generation.Message{Asker: me, Conv: first, Text: "one", Key: "k1", Create: true}); err != nil {
		t.Fatalf("first post: %v", err)
	}
	// The one place is taken: another browser is refused by capacity.
	second := store.NewID()
	err := m.Post(ctx, generation.Message{Asker: other, Conv: second, Text: "two", Key: "k2", Create: true})
	if !errors.Is(err, generation.ErrAtCapacity) {
		t.Fatalf("post at capacity: %v, want ErrAtCapacity", err)
	}
	// Ownership is checked before anything is taken.
	if err := m.Post(ctx, generation.Message{Asker: other, Conv: first, Text: "mine?", Key: "k3"}); !errors.Is(err, store.ErrForbidden) {
		t.Fatalf("post to another's conversation: %v, want ErrForbidden", err)
	}
	if err := m.Regenerate(ctx, generation.Regeneration{Asker: me, Conv: store.NewID(), Rev: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("regenerate a conversation that does not exist: %v, want ErrNotFound", err)
	}
	waitAnswered(t, st, first)

	// The store refuses after the limits admitted: a repeat of the first
	// post (same key) starts nothing and is no error; a create of a taken
	// ID is ErrExists. Neither keeps the place or the reservation.
	if err := post(t, m, generation.Message{Asker: me, Conv: first, Text: "one", Key: "k1", Create: true}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create a taken ID: %v, want ErrExists", err)
	}
	if err := post(t, m, generation.Message{Asker: me, Conv: first, Text: "again", Key: "k4"}); err != nil {
		t.Fatalf("post after the first answer ended: %v", err)
	}
	waitAnswered(t, st, first)
	if err := post(t, m, generation.Message{Asker: me, Conv: first, Text: "again", Key: "k4"}); err != nil {
		t.Fatalf("the same post, repeated: %v", err)
	}

	// The browser's posts a minute: four were counted (the repeat too,
	// before the store found it a repeat), so the fifth is refused with
	// when to come back.
	err = post(t, m, generation.Message{Asker: me, Conv: first, Text: "five", Key: "k5"})
	var le *store.LimitError
	if !errors.As(err, &le) || le.Limit != store.LimitPosts || le.Who != "browser" || le.RetryAfter <= 0 {
		t.Fatalf("fifth post in a minute: %v, want the browser's posts limit with a wait", err)
	}
	// Refused by a limit, nothing was kept: another browser gets the place.
	if err := post(t, m, generation.Message{Asker: other, Conv: second, Text: "two", Key: "k2", Create: true}); err != nil {
		t.Fatalf("post after refusals: %v", err)
	}
	waitAnswered(t, st, second)

	// Nothing taken was left behind: Shutdown has no generation to wait for.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	m.Shutdown(sctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v: a place was taken and never given back", d)
	}
}
