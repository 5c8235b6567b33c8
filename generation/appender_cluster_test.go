package generation_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestFailingMasterStallsOnlyItsAnswers: on a Redis Cluster each master
// gets its own batch. When one is killed, the answers it holds wait for its
// replica, and those on the other masters keep growing: a batch shared by
// all would hold every answer for as long as the failover takes.
func TestFailingMasterStallsOnlyItsAnswers(t *testing.T) {
	t.Parallel()
	c := testredis.StartCluster(t)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	st := store.New(cc, store.Config{LogMaxLen: 100000, ConversationTTL: time.Hour, LeaseTTL: 10 * time.Second,
		MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour, Sharded: true})
	model := llm.NewDemo(llm.DemoConfig{TokensPerSecond: 100, Tokens: 2000})
	m := generation.New(st, &stopper{}, model, slog.New(slog.NewTextHandler(io.Discard, nil)), generation.Config{
		FlushInterval: 25 * time.Millisecond, MaxConcurrent: 100, LeaseTTL: 10 * time.Second,
		SweepInterval: time.Second, MaxDuration: time.Minute, MaxAnswerBytes: 1 << 20})
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		m.Shutdown(sctx)
	})

	masters := c.Masters(t)
	victim := masters[0]
	type watched struct {
		conv string
		node *redis.Client // its master, read directly: no cluster client in between
	}
	var healthy []watched
	for _, master := range masters {
		node := redis.NewClient(&redis.Options{Addr: master})
		t.Cleanup(func() { _ = node.Close() })
		for range 2 {
			conv := store.NewID()
			for c.MasterFor(t, store.Channel(conv)) != master {
				conv = store.NewID()
			}
			res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "question " + conv, Key: store.NewID(), Gen: store.NewID(), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.RunStored(conv, res.Gen, nil); err != nil {
				t.Fatal(err)
			}
			if master != victim {
				healthy = append(healthy, watched{conv, node})
			}
		}
	}
	waitFor(t, "the answers on healthy masters to stream", func() bool {
		for _, w := range healthy {
			if n, err := w.node.StrLen(ctx, "{c:"+w.conv+"}:t:1").Result(); err != nil || n == 0 {
				return false
			}
		}
		return true
	})

	// The longest wait between two growths of each healthy answer, seen
	// from its own master.
	var (
		mu      sync.Mutex
		longest time.Duration
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		size := make([]int64, len(healthy))
		since := make([]time.Time, len(healthy))
		for i := range since {
			since[i] = time.Now()
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for i, w := range healthy {
				n, err := w.node.StrLen(ctx, "{c:"+w.conv+"}:t:1").Result()
				if err != nil || n == size[i] {
					continue
				}
				mu.Lock()
				longest = max(longest, time.Since(since[i]))
				mu.Unlock()
				size[i], since[i] = n, time.Now()
			}
		}
	}()
	start := time.Now()
	c.KillMaster(t, victim)
	down := time.Since(start)
	time.Sleep(500 * time.Millisecond) // the answers are watched on after the failover: the interval is the test
	close(stop)
	<-done
	t.Logf("the victim's replica took over after %v; longest pause of an answer on another master: %v", down, longest)
	if longest > down/2 {
		t.Errorf("answers on healthy masters paused for %v while a master was down for %v", longest, down)
	}
}
