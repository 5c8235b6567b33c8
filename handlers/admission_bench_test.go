package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkCreateAdmission measures what the shared limits add to starting a
// conversation (the most-checked post: tokens, posts and conversations per
// browser and per address, answers at once for both): a new browser posts
// the home form, with every limit off and then on. It reports the p50 and
// p99 of the request as a client sees it, against a private redis-server on
// the same machine.
func BenchmarkCreateAdmission(b *testing.B) {
	for _, limits := range []string{"off", "on"} {
		b.Run("limits="+limits, func(b *testing.B) {
			a := newApp(b, func(c *appConfig) {
				c.gen.MaxConcurrent = 1 << 10
				if limits == "off" {
					c.gen.Limits.PostsPerMinute = 0
					return
				}
				c.gen.Limits.PostsPerMinute = 1 << 20
				c.gen.Limits.AddressPostsPerMinute = 1 << 20
				c.gen.Limits.ConversationsPerHour = 1 << 20
				c.gen.Limits.AddressConversationsPerHour = 1 << 20
				c.gen.Limits.OwnerAnswers = 1 << 20
				c.gen.Limits.AddressAnswers = 1 << 20
				c.gen.MaxDuration = time.Minute
				c.gen.Limits.DailyTokens = 1 << 40
			})
			trips := &roundTrips{}
			a.UDB.AddHook(trips)
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				res, err := a.NewBrowser().PostForm(a.URL+"/c", url.Values{"text": {"[[echo]]hi"}})
				if err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
				took = append(took, time.Since(start))
				if i == 0 {
					trips.n.Store(0) // from here: steady state
				}
				if res.StatusCode != http.StatusSeeOther {
					b.Fatalf("create: %d", res.StatusCode)
				}
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
			// The answers' own appends and ends are counted too: compare
			// the two runs, not the absolute figure.
			b.ReportMetric(float64(trips.n.Load())/float64(max(1, b.N-1)), "round-trips/op")
		})
	}
}

// roundTrips counts the Redis round trips of a client: each command alone,
// and each pipeline as one.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}
