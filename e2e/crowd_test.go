package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/procs"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestThousandViewers: 1,000 viewers on one process watch one answer; a
// tenth read slowly (1 KiB every 20 ms) and a tenth drop their stream every
// three frames and come back with their Last-Event-ID. Every viewer ends with
// exactly the stored page; the server's heap (read from its /metrics, so the
// clients' pages in this process do not count) stays under a bound; and when
// the viewers leave its goroutines are back to where they were.
//
// On loopback the kernel buffers about a megabyte per connection, more than
// a whole answer's frames, so slow readers here never make the server's
// writes block; a viewer that does, and is fast-forwarded, is the subject of
// live's TestSlowViewerDoesNotDelayOthers.
//
// It runs alone, before the parallel tests: a thousand viewers in this
// process take both cores of a small machine and a thousand descriptors, and
// in CI two tests beside it then could not reach the Redis servers they had
// just started within 10 s.
func TestThousandViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 viewers")
	}
	const (
		viewers = 1000
		// heapBound bounds the server's heap in use, garbage included:
		// about 100 KiB per viewer (47 MiB was measured).
		heapBound = 96 << 20
	)
	d := harness.Speed{TPS: 200, Tokens: 400}
	srv := testredis.Start(t)
	// A thousand viewers from one address: a crowd behind one proxy.
	p := startAll(t, env(srv.URL(), d, "PARLEY_LOG_LEVEL", "warn", "PARLEY_MAX_VIEWERS_PER_ADDRESS", "0"), "A")[0]
	st := redisStore(t, srv)
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	conv, err := viewer.Create(ctx, client, p.URL, "first question")
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitUntil(t, "the first answer", 20*time.Second, func() bool { return stored(t, st, conv, 1).Status == store.StatusDone })
	idle := settledMetric(t, p, "go_goroutines")

	// Viewers load their page before the next message, then follow its
	// answer to the end.
	vs := make([]*viewer.Viewer, viewers)
	var wg sync.WaitGroup
	var loadErrs atomic.Int64
	sem := make(chan struct{}, 32)
	for i := range vs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			v, err := viewer.Load(ctx, client, p.URL, conv)
			if err != nil {
				loadErrs.Add(1)
				t.Errorf("viewer %d: %v", i, err)
				return
			}
			vs[i] = v
		})
	}
	wg.Wait()
	if loadErrs.Load() > 0 {
		return
	}
	kind := func(i int) string {
		switch i % 10 {
		case 0:
			return "slow"
		case 1:
			return "flaky"
		}
		return "steady"
	}
	errs := make(chan error, viewers)
	for i, v := range vs {
		opt := viewer.Options{}
		switch kind(i) {
		case "slow":
			opt.SlowRead = 20 * time.Millisecond
		case "flaky":
			opt.DropEvery = 3
		}
		wg.Go(func() {
			if err := v.Follow(ctx, viewer.HasEnded(3), opt); err != nil {
				errs <- fmt.Errorf("%s viewer %d: %w", kind(i), i, err)
			}
		})
	}
	// The flaky ones come and go; the others stay.
	harness.WaitUntil(t, "the viewers to stream", 30*time.Second, func() bool {
		return metric(t, p, "parley_viewers_connected") >= viewers-viewers/10
	})

	var peakHeap, peakGoroutines atomic.Int64
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			m, _ := readMetrics(p) // a missed sample is no failure
			peakHeap.Store(max(peakHeap.Load(), int64(m["go_memstats_heap_inuse_bytes"])))
			peakGoroutines.Store(max(peakGoroutines.Load(), int64(m["go_goroutines"])))
			select {
			case <-sampling.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	if res, err := viewer.Post(ctx, client, p.URL, conv, "second question"); err != nil || res.Status != http.StatusOK {
		t.Fatalf("post: %v %+v", err, res)
	}
	wg.Wait()
	stopSampling()
	<-sampled
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	first := stored(t, st, conv, 1)
	answer := stored(t, st, conv, 3)
	reply := llm.NewDemo(llm.DemoConfig{TokensPerSecond: d.TPS, Tokens: d.Tokens}).Reply([]llm.Message{
		{Role: llm.RoleUser, Content: "first question"},
		{Role: llm.RoleAssistant, Content: first.Text},
		{Role: llm.RoleUser, Content: "second question"},
	})
	if answer.Status != store.StatusDone || answer.Text != reply {
		t.Fatalf("stored answer: %s, %s", answer.Status, viewer.Diff(reply, answer.Text))
	}
	sameAsFresh(t, client, p.URL, conv, vs)
	reconnects := map[string]int{}
	for i, v := range vs {
		reconnects[kind(i)] += v.Reconnects()
	}
	m := metrics(t, p)
	t.Logf("%d viewers on one process: peak heap in use %d MiB, peak goroutines %d (%d idle); %d KiB sent per viewer; %d fast-forwards; reconnects by kind %v",
		viewers, peakHeap.Load()>>20, peakGoroutines.Load(), int(idle),
		int(m["parley_written_bytes_total"])/viewers>>10, int(m["parley_viewers_fast_forwarded_total"]), reconnects)
	if reconnects["flaky"] < viewers/10 {
		t.Errorf("the flaky viewers reconnected only %d times", reconnects["flaky"])
	}
	if peakHeap.Load() > heapBound {
		t.Errorf("the server's heap reached %d MiB, over the %d MiB bound", peakHeap.Load()>>20, heapBound>>20)
	}

	// Everyone leaves: streams, rooms and their goroutines go away.
	client.CloseIdleConnections()
	harness.WaitUntil(t, "the server's goroutines to go back to idle", 20*time.Second, func() bool {
		m := metrics(t, p)
		return m["parley_viewers_connected"] == 0 && m["go_goroutines"] <= idle+5
	})
	t.Logf("goroutines after the viewers left: %d", int(metric(t, p, "go_goroutines")))
}

// metrics reads the process's unlabelled Prometheus series.
func metrics(t *testing.T, p *procs.Proc) map[string]float64 {
	t.Helper()
	m, err := readMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readMetrics(p *procs.Proc) (map[string]float64, error) {
	if p.MetricsURL == "" {
		return nil, fmt.Errorf("%s serves no metrics", p.Name)
	}
	res, err := http.Get(p.MetricsURL)
	if err != nil {
		return nil, fmt.Errorf("read %s's metrics: %w", p.Name, err)
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// metric reads one unlabelled series; a missing one fails the test.
func metric(t *testing.T, p *procs.Proc, name string) float64 {
	t.Helper()
	v, ok := metrics(t, p)[name]
	if !ok {
		t.Fatalf("%s has no metric %s", p.Name, name)
	}
	return v
}

// settledMetric reads a gauge until it stops moving.
func settledMetric(t *testing.T, p *procs.Proc, name string) float64 {
	t.Helper()
	v := metric(t, p, name)
	for range 50 {
		time.Sleep(50 * time.Millisecond)
		w := metric(t, p, name)
		if w == v {
			return v
		}
		v = w
	}
	return v
}
