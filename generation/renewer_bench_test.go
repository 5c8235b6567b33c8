package generation_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// roundTrips counts a Redis client's round trips (a command alone or a
// pipeline: one each) by what they do.
type roundTrips struct {
	renewSHA string
	all      atomic.Int64
	renew    atomic.Int64 // lease renewals: the script, the ZADD, or a pipeline of them
	appends  atomic.Int64 // pipelines of appends
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.all.Add(1)
		if r.renews(cmd) {
			r.renew.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.all.Add(1)
		switch {
		case len(cmds) > 0 && r.renews(cmds[0]):
			r.renew.Add(1)
		case len(cmds) > 0 && cmds[0].Name() == "evalsha":
			r.appends.Add(1)
		}
		return next(ctx, cmds)
	}
}

// renews reports whether cmd renews a lease: the renew script, or the ZADD
// that registers generations with the sweepers.
func (r *roundTrips) renews(cmd redis.Cmder) bool {
	a := cmd.Args()
	return isTrack(cmd) || (cmd.Name() == "evalsha" || cmd.Name() == "eval") && len(a) > 1 && a[1] == r.renewSHA
}

// BenchmarkLeaseRenewals runs 20 answers of the demo model at once, each
// for about a minute at its default pace (30 tokens/s), with the default
// lease (10 s: renewed every 3.3 s) and flush interval (25 ms), and reports
// Redis round trips per generation-minute: all of them, the lease
// renewals', and the appends'. One iteration takes a minute (3 s with
// -short); run it with -benchtime 1x.
func BenchmarkLeaseRenewals(b *testing.B) {
	const (
		answers = 20
		tps     = 30
		lease   = 10 * time.Second
	)
	tokens := 1800 // a minute at tps
	if testing.Short() {
		tokens = 90
	}
	srv := testredis.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	rt := &roundTrips{renewSHA: renewSHA}
	rdb.AddHook(rt)
	st := store.New(rdb, store.Config{LogMaxLen: 10000, LeaseTTL: lease, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour})
	m := generation.New(st, &stopper{}, llm.NewDemo(llm.DemoConfig{TokensPerSecond: tps, Tokens: tokens}),
		slog.New(slog.NewTextHandler(io.Discard, nil)), generation.Config{
			FlushInterval: 25 * time.Millisecond, MaxConcurrent: answers, LeaseTTL: lease,
			SweepInterval: 2 * time.Second, MaxDuration: 10 * time.Minute, MaxAnswerBytes: 1 << 20,
		})
	ctx := context.Background()
	for b.Loop() {
		ended := make(chan struct{}, answers)
		convs := make([]string, answers)
		gens := make([]string, answers)
		for i := range convs {
			convs[i] = store.NewID()
			res, err := st.Post(ctx, store.Post{Conv: convs[i], Owner: testOwner, Text: fmt.Sprintf("question %d", i), Key: store.NewID(), Gen: store.NewID(), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			gens[i] = res.Gen
		}
		all0, renew0, appends0 := rt.all.Load(), rt.renew.Load(), rt.appends.Load()
		start := time.Now()
		for i := range convs {
			if err := m.RunStored(convs[i], gens[i], func() { ended <- struct{}{} }); err != nil {
				b.Fatal(err)
			}
		}
		for range answers {
			<-ended
		}
		genMinutes := time.Since(start).Minutes() * answers
		if rt.renew.Load() == renew0 && time.Since(start) > time.Second {
			// The counter finds renewals by the script's SHA: a script built
			// otherwise than scripts.go does would read as none.
			b.Fatal("no lease renewal was counted: does the SHA match store/scripts.go's renew script?")
		}
		b.ReportMetric(float64(rt.all.Load()-all0)/genMinutes, "round-trips/gen-min")
		b.ReportMetric(float64(rt.renew.Load()-renew0)/genMinutes, "renewal-round-trips/gen-min")
		b.ReportMetric(float64(rt.appends.Load()-appends0)/genMinutes, "append-round-trips/gen-min")
	}
}
