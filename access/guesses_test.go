package access

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
)

// TestAccessGuessCounter: tries are counted in a window that starts at the
// first, a refund gives one back, and the key never outlives its window.
func TestAccessGuessCounter(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	g := NewGuesses(rdb)

	const window = 300 * time.Millisecond
	for i := int64(1); i <= 3; i++ {
		n, left, err := g.Add(ctx, "192.0.2.1", window)
		if err != nil || n != i || left <= 0 || left > window {
			t.Fatalf("try %d: n=%d left=%v err=%v", i, n, left, err)
		}
	}
	if n, _, _ := g.Add(ctx, "192.0.2.2", window); n != 1 {
		t.Fatalf("another address starts at %d", n)
	}
	if err := g.Refund(ctx, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := g.Add(ctx, "192.0.2.1", window); n != 3 {
		t.Fatalf("after a refund the count is %d, want 3", n)
	}
	if ttl := rdb.PTTL(ctx, GuessKeyPrefix+"192.0.2.1").Val(); ttl <= 0 || ttl > window {
		t.Fatalf("the key's TTL is %v", ttl)
	}
	// A refund once the window ended makes no key.
	for deadline := time.Now().Add(window + 5*time.Second); rdb.Exists(ctx, GuessKeyPrefix+"192.0.2.1").Val() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the key outlived its window")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := g.Refund(ctx, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, GuessKeyPrefix+"192.0.2.1").Val(); n != 0 {
		t.Fatal("a late refund left a key behind")
	}
	if n, _, _ := g.Add(ctx, "192.0.2.1", window); n != 1 {
		t.Fatalf("a new window starts at %d", n)
	}
	// A key that lost its expiry somehow gets one on the next try.
	rdb.Persist(ctx, GuessKeyPrefix+"192.0.2.1")
	if _, left, _ := g.Add(ctx, "192.0.2.1", window); left <= 0 || left > window {
		t.Fatalf("a key without expiry kept none: %v", left)
	}
}
