package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

// pipelineCounter counts the pipelines of appends a client sends (not the
// ones go-redis sends to set up a connection), and can make the next ones
// lose their replies after Redis ran them.
type pipelineCounter struct {
	n    atomic.Int64
	lose atomic.Int64
}

func (p *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "evalsha" {
			return next(ctx, cmds)
		}
		p.n.Add(1)
		err := next(ctx, cmds)
		if p.lose.Add(-1) >= 0 {
			err = errors.New("injected: the reply was lost")
			for _, c := range cmds {
				c.SetErr(err)
			}
		}
		return err
	}
}

// post starts n conversations and returns the first append of each.
func postN(t testing.TB, st *store.Store, n int) []store.AppendCall {
	t.Helper()
	calls := make([]store.AppendCall, n)
	for i := range calls {
		conv := store.NewID()
		res, err := st.Post(context.Background(), store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
		if err != nil {
			t.Fatal(err)
		}
		calls[i] = store.AppendCall{Conv: conv, Gen: res.Gen, Offset: 0}
	}
	return calls
}

// TestAppendBatch: one round trip appends for many generations, each
// getting its own reply; a stale or stopped generation in the batch is
// refused alone; a batch whose replies were lost is sent again and lands
// once; a script Redis forgot is loaded and the batch goes through. It is
// long because each step carries on from the state the one before left.
func TestAppendBatch(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{MaxAnswerBytes: 40})
	ctx := context.Background()
	pc := &pipelineCounter{}
	rdb.AddHook(pc)
	calls := postN(t, st, 5)
	const stale, stopped, full = 1, 2, 3
	if err := st.Finish(ctx, store.Ending{Conv: calls[stale].Conv, Gen: calls[stale].Gen, Status: store.StatusDone}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Stop(ctx, calls[stopped].Conv); err != nil || r != store.StopSent {
		t.Fatalf("stop: %v %v", r, err)
	}

	texts := []string{"Hello ", "world", "!"}
	want := make([]string, len(calls))
	for round, text := range texts {
		for i := range calls {
			calls[i].Text = fmt.Sprintf("%s%d ", text, i)
			if i == full && round == 2 {
				calls[i].Text = strings.Repeat("x", 40)
			}
			calls[i].Got = time.Now()
		}
		switch round {
		case 1:
			pc.lose.Store(1) // the first try runs, but its replies are lost
		case 2:
			// Redis forgets the script: it is loaded and the batch sent again.
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		pc.n.Store(0)
		replies := st.AppendBatch(ctx, calls, nil)
		switch round {
		case 1:
			for i, r := range replies {
				if r.Err == nil {
					t.Fatalf("round %d, append %d: no error for a lost reply", round, i)
				}
			}
			replies = st.AppendBatch(ctx, calls, replies[:0]) // as the appender retries
		case 2:
			if n := pc.n.Load(); n != 2 {
				t.Errorf("a batch refused for a missing script took %d pipelines, want 2", n)
			}
		}
		if len(replies) != len(calls) {
			t.Fatalf("round %d: %d replies to %d appends", round, len(replies), len(calls))
		}
		for i, r := range replies {
			switch {
			case i == stale:
				if !errors.Is(r.Err, store.ErrStale) {
					t.Errorf("round %d: stale generation's append: %+v, want ErrStale", round, r)
				}
			case i == stopped:
				if r.Err != nil || r.Result != store.StopRequested {
					t.Errorf("round %d: stopped generation's append: %+v, want StopRequested", round, r)
				}
			case i == full && round == 2:
				if r.Err != nil || r.Result != store.Full {
					t.Errorf("round %d: oversized append: %+v, want Full", round, r)
				}
			default:
				want[i] += calls[i].Text
				if r.Err != nil || r.Result != store.Appended || r.Length != len(want[i]) || r.ID == "" {
					t.Errorf("round %d: append %d: %+v, want length %d", round, i, r, len(want[i]))
				}
				calls[i].Offset = r.Length
			}
		}
	}
	for i, c := range calls {
		snap, err := st.Snapshot(ctx, c.Conv, store.ID{})
		if err != nil {
			t.Fatal(err)
		}
		if got := snap.Messages[1].Text; got != want[i] {
			t.Errorf("answer %d: %q, want %q", i, got, want[i])
		}
	}
}

// TestAppendBatchRoundTrips: a batch is one round trip, whatever its size,
// and an empty one is none.
func TestAppendBatchRoundTrips(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{})
	pc := &pipelineCounter{}
	rdb.AddHook(pc)
	calls := postN(t, st, 100)
	for i := range calls {
		calls[i].Text = "a few words"
	}
	// The append script is already loaded, as after a process's first batch.
	st.AppendBatch(context.Background(), calls[:1], nil)
	calls[0].Offset = len(calls[0].Text)
	pc.n.Store(0)
	if r := st.AppendBatch(context.Background(), nil, nil); len(r) != 0 || pc.n.Load() != 0 {
		t.Fatalf("empty batch: %d replies, %d round trips", len(r), pc.n.Load())
	}
	for _, r := range st.AppendBatch(context.Background(), calls, nil) {
		if r.Err != nil || r.Result != store.Appended {
			t.Fatalf("append: %+v", r)
		}
	}
	if n := pc.n.Load(); n != 1 {
		t.Fatalf("100 appends took %d round trips, want 1", n)
	}
}

// BenchmarkAppendBatch is one flush tick of a process running n answers:
// their appends in one pipeline. Per append, it costs the client a fraction
// of a round trip (compare BenchmarkAppend), and Redis the same script.
func BenchmarkAppendBatch(b *testing.B) {
	srv := testredis.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb, store.Config{LogMaxLen: 1000, LeaseTTL: time.Minute, MaxAnswerBytes: 1 << 30, IdempotencyTTL: time.Hour})
	ctx := context.Background()
	for _, n := range []int{1, 20, 200} {
		b.Run(fmt.Sprintf("answers=%d", n), func(b *testing.B) {
			calls := postN(b, st, n)
			for i := range calls {
				calls[i].Text, calls[i].Offset, calls[i].Got = "twenty bytes of text", -1, time.Now()
			}
			var replies []store.AppendReply
			b.ReportAllocs()
			calls0, usec0 := evalshaStats(b, rdb)
			start := time.Now()
			for b.Loop() {
				replies = st.AppendBatch(ctx, calls, replies[:0])
				if replies[n-1].Err != nil {
					b.Fatal(replies[n-1].Err)
				}
			}
			calls1, usec1 := evalshaStats(b, rdb)
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*n), "ns/append")
			b.ReportMetric(float64(usec1-usec0)/float64(calls1-calls0), "redis-µs/append")
		})
	}
}
