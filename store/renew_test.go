package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/store"
)

// TestRenewBatch: one round trip renews many leases, each getting its own
// reply (a stale or stopped generation is told alone), and registers every
// conversation with the sweepers at its new deadline; a script Redis does
// not have is loaded and the renewals it refused sent again; an empty batch
// is no round trip.
func TestRenewBatch(t *testing.T) {
	t.Parallel()
	const lease = 10 * time.Second
	st, rdb := newStore(t, store.Config{LeaseTTL: lease})
	ctx := context.Background()
	pc := &pipelineCounter{}
	rdb.AddHook(pc)
	var calls []store.RenewCall
	for _, a := range postN(t, st, 5) {
		calls = append(calls, store.RenewCall{Conv: a.Conv, Gen: a.Gen})
	}
	const stale, stopped = 1, 3
	if err := st.Finish(ctx, store.Ending{Conv: calls[stale].Conv, Gen: calls[stale].Gen, Status: store.StatusDone}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Stop(ctx, calls[stopped].Conv); err != nil || r != store.StopSent {
		t.Fatalf("stop: %v %v", r, err)
	}
	// The leases a post took run out sooner than the renewals' will.
	for _, c := range calls {
		if err := rdb.PExpire(ctx, "{c:"+c.Conv+"}:lease", time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}

	if r := st.RenewBatch(ctx, nil, nil); len(r) != 0 || pc.n.Load() != 0 {
		t.Fatalf("empty batch: %d replies, %d round trips", len(r), pc.n.Load())
	}
	// First Redis does not have the script (a fresh Redis, as after a
	// restart or SCRIPT FLUSH), then it does.
	for round, what := range []string{"script missing", "script loaded"} {
		pc.n.Store(0)
		before := time.Now()
		replies := st.RenewBatch(ctx, calls, nil)
		if want := int64(2 - round); pc.n.Load() != want {
			t.Errorf("%s: %d renewals took %d round trips, want %d", what, len(calls), pc.n.Load(), want)
		}
		if len(replies) != len(calls) {
			t.Fatalf("%s: %d replies to %d renewals", what, len(replies), len(calls))
		}
		for i, r := range replies {
			switch i {
			case stale:
				if !errors.Is(r.Err, store.ErrStale) {
					t.Errorf("%s: stale generation's renewal: %+v, want ErrStale", what, r)
				}
				continue
			case stopped:
				if r.Err != nil || !r.Stop {
					t.Errorf("%s: stopped generation's renewal: %+v, want Stop", what, r)
				}
			default:
				if r.Err != nil || r.Stop {
					t.Errorf("%s: renewal %d: %+v, want renewed", what, i, r)
				}
			}
			if ttl := rdb.PTTL(ctx, "{c:"+calls[i].Conv+"}:lease").Val(); ttl < lease-time.Minute/10 {
				t.Errorf("%s: renewal %d left its lease %v", what, i, ttl)
			}
		}
		// Every conversation is registered at its new deadline, the stale
		// one too: a sweeper drops it (store.Expire) as before.
		for i, c := range calls {
			score, err := rdb.ZScore(ctx, "parley:gens", c.Conv).Result()
			if err != nil {
				t.Fatalf("%s: conversation %d is not registered with the sweepers: %v", what, i, err)
			}
			if d := time.UnixMilli(int64(score)).Sub(before); d < lease-time.Second || d > lease+time.Second {
				t.Errorf("%s: conversation %d registered %v from now, want the lease, %v", what, i, d, lease)
			}
		}
	}
}
