package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// ownCPU is this process's CPU seconds so far.
func ownCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// latencyStats are percentiles in milliseconds.
type latencyStats struct {
	P50, P90, P99, Max float64
	N                  int
}

// percentiles of micros (microseconds), where censored more samples are
// known to be larger than any (never delivered): they sort last, as +Inf.
func percentiles(micros []int32, censored int) latencyStats {
	s := slices.Clone(micros)
	slices.Sort(s)
	n := len(s) + censored
	at := func(q float64) float64 {
		if n == 0 {
			return math.NaN()
		}
		i := int(math.Ceil(q*float64(n))) - 1
		i = max(i, 0)
		if i >= len(s) {
			return math.Inf(1)
		}
		return float64(s[i]) / 1000
	}
	out := latencyStats{P50: at(0.50), P90: at(0.90), P99: at(0.99), N: len(s)}
	switch {
	case censored > 0:
		out.Max = math.Inf(1)
	case len(s) > 0:
		out.Max = float64(s[len(s)-1]) / 1000
	default:
		out.Max = math.NaN()
	}
	return out
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

// logLengths sums the lengths of the conversations' logs (docs/redis.md:
// "{c:ID}:log"), whose entries are the batches the generations wrote.
func logLengths(ctx context.Context, t *target, convs []*conv) int64 {
	if t.rdb == nil {
		return 0
	}
	var n int64
	for _, c := range convs {
		n += t.rdb.XLen(ctx, "{c:"+c.id+"}:log").Val()
	}
	return n
}

// roundTrips is the count of commands the server sent to Redis, by name.
func (t *target) roundTrips(ctx context.Context) map[string]int64 {
	if t.counter == nil {
		return nil
	}
	return t.counter.counts(ctx)
}

// diffCalls is after minus before, per command, with the total.
func diffCalls(after, before map[string]int64) (map[string]int64, int64) {
	d := map[string]int64{}
	var total int64
	for k, v := range after {
		if n := v - before[k]; n > 0 {
			d[k] = n
			total += n
		}
	}
	return d, total
}

func (r *runner) profilePath(s scenario, t *target) string {
	if r.profile == "" {
		return ""
	}
	return filepath.Join(r.profile, s.Name+"-"+t.name+".cpu.pprof")
}

// fetchProfile saves one of the server's profiles (heap, goroutine) to path.
func fetchProfile(ctx context.Context, u, path string) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil {
		_ = os.WriteFile(path, b, 0o644)
	}
}
