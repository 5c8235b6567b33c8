package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/store"
)

// TestLeaseIsTakenAgainAfterAnOutage: a generation whose lease ran out while
// Redis did not answer it takes the lease again with its next renewal or
// append, as long as nobody ended its answer; once a sweeper (or a post, or a
// stop) has ended it, the generation is stale for good.
func TestLeaseIsTakenAgainAfterAnOutage(t *testing.T) {
	t.Parallel()
	const lease = 200 * time.Millisecond
	st, rdb := newStore(t, store.Config{LeaseTTL: lease})
	ctx := context.Background()
	post := func() (conv, gen string) {
		conv = store.NewID()
		res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: store.NewID(), Gen: store.NewID(), Create: true})
		if err != nil {
			t.Fatal(err)
		}
		return conv, res.Gen
	}
	leased := func(conv string) string {
		v, _ := rdb.Get(ctx, "{c:"+conv+"}:lease").Result()
		return v
	}
	runOut := func(conv string) {
		t.Helper()
		deadline := time.Now().Add(10 * lease)
		for leased(conv) != "" {
			if time.Now().After(deadline) {
				t.Fatal("the lease did not run out")
			}
			time.Sleep(lease / 10)
		}
	}

	conv, gen := post()
	runOut(conv)
	if stop, err := st.Renew(ctx, conv, gen); err != nil || stop {
		t.Fatalf("renew after the lease ran out: %v %v", stop, err)
	}
	if leased(conv) != gen {
		t.Fatal("the renewal did not take the lease again")
	}
	if ended, err := st.Expire(ctx, conv); err != nil || ended {
		t.Fatalf("a sweeper ended an answer whose lease was taken again: %v %v", ended, err)
	}

	runOut(conv)
	if r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: "more"}); err != nil || r.Result != store.Appended {
		t.Fatalf("append after the lease ran out: %v %v", r.Result, err)
	}
	if leased(conv) != gen {
		t.Fatal("the append did not take the lease again")
	}

	// Ended by a sweeper first: stale, whatever comes after.
	runOut(conv)
	if ended, err := st.Expire(ctx, conv); err != nil || !ended {
		t.Fatalf("expire: %v %v", ended, err)
	}
	if _, err := st.Renew(ctx, conv, gen); !errors.Is(err, store.ErrStale) {
		t.Fatalf("renew after a sweeper ended the answer: %v", err)
	}
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: "late", Offset: len("more")}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("append after a sweeper ended the answer: %v", err)
	}
	if leased(conv) != "" {
		t.Fatal("a stale generation took a lease")
	}
	snap, err := st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if m := snap.Messages[1]; m.Status != store.StatusInterrupted || m.Text != "more" {
		t.Fatalf("the answer after its end: %s %q", m.Status, m.Text)
	}
}

// TestSweepsHoldAfterAGap: sweeps find expired leases while some process
// sweeps at least every gap; when none did for longer (no process reached
// Redis), they find nothing for a lease, so that living generations can take
// their leases again first.
func TestSweepsHoldAfterAGap(t *testing.T) {
	t.Parallel()
	const lease, gap = 600 * time.Millisecond, 200 * time.Millisecond
	st, _ := newStore(t, store.Config{LeaseTTL: lease})
	ctx := context.Background()
	conv := store.NewID()
	if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: store.NewID(), Gen: store.NewID(), Create: true}); err != nil {
		t.Fatal(err)
	}
	sweep := func() ([]string, time.Duration) {
		t.Helper()
		ids, hold, err := st.SweepLeases(ctx, time.Now().Add(time.Hour), 100, gap)
		if err != nil {
			t.Fatal(err)
		}
		return ids, hold
	}
	// Nobody ever swept: a gap.
	if ids, hold := sweep(); len(ids) != 0 || hold <= lease/2 || hold > lease {
		t.Fatalf("first sweep: %v, hold %v; want nothing and a hold of about %v", ids, hold, lease)
	}
	// Sweeping often, the hold runs out.
	start := time.Now()
	for {
		ids, hold := sweep()
		if hold == 0 {
			if !slices.Contains(ids, conv) {
				t.Fatalf("after the hold: %v, want %s", ids, conv)
			}
			break
		}
		if len(ids) != 0 {
			t.Fatalf("held sweep found %v", ids)
		}
		if time.Since(start) > 2*lease {
			t.Fatal("the hold never ended")
		}
		time.Sleep(gap / 4)
	}
	// No sweep for longer than the gap: a hold again. The sleep is the
	// silence under test.
	time.Sleep(gap + 100*time.Millisecond)
	if ids, hold := sweep(); len(ids) != 0 || hold <= lease/2 {
		t.Fatalf("sweep after a gap: %v, hold %v; want nothing and a hold", ids, hold)
	}
}
