package main

import (
	"context"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeFamilies reads the metric families served at u, nil when it cannot.
func scrapeFamilies(ctx context.Context, u string, timeout time.Duration) map[string]*dto.MetricFamily {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		return nil
	}
	return fams
}

// promSample is what the tool reads from a Prometheus endpoint.
type promSample struct {
	CPU        float64
	RSS        float64
	Goroutines float64
	Stack      float64 // go_memstats_stack_inuse_bytes
	Heap       float64 // go_memstats_heap_inuse_bytes
}

// scrape reads the standard process and Go collectors' values; nil when
// the endpoint has none of CPU, RSS and goroutines.
func scrape(ctx context.Context, u string) *promSample {
	fams := scrapeFamilies(ctx, u, 2*time.Second)
	var p promSample
	found := false
	for name, dst := range map[string]*float64{
		"process_cpu_seconds_total":     &p.CPU,
		"process_resident_memory_bytes": &p.RSS,
		"go_goroutines":                 &p.Goroutines,
	} {
		if v, ok := firstValue(fams[name]); ok {
			*dst, found = v, true
		}
	}
	p.Stack, _ = firstValue(fams["go_memstats_stack_inuse_bytes"])
	p.Heap, _ = firstValue(fams["go_memstats_heap_inuse_bytes"])
	if !found {
		return nil
	}
	return &p
}

// firstValue is the value of a counter, gauge or untyped family's first
// series.
func firstValue(f *dto.MetricFamily) (float64, bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	m := f.GetMetric()[0]
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// histograms are cumulative Prometheus bucket counts by series and bound:
// series is the metric name, plus "/command" for the Redis histogram.
type histograms map[string]map[float64]float64

// scrapeHistograms reads Parley's own latency histograms: token to frame,
// and Redis round trips by command. They split the latency a viewer sees
// into the server's part and the rest.
func scrapeHistograms(ctx context.Context, u string) histograms {
	if u == "" {
		return nil
	}
	fams := scrapeFamilies(ctx, u, 5*time.Second)
	out := histograms{}
	for _, name := range []string{"parley_token_to_frame_seconds", "parley_redis_duration_seconds"} {
		for _, m := range fams[name].GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			series := name
			for _, l := range m.GetLabel() {
				if l.GetName() == "command" {
					series += "/" + l.GetValue()
				}
			}
			buckets := map[float64]float64{math.Inf(1): float64(h.GetSampleCount())}
			for _, b := range h.GetBucket() {
				buckets[b.GetUpperBound()] = float64(b.GetCumulativeCount())
			}
			out[series] = buckets
		}
	}
	return out
}

// quantile is the upper bound of the bucket holding quantile q of the
// observations made between before and after (NaN when none).
func (after histograms) quantile(before histograms, series string, q float64) (float64, float64) {
	a, b := after[series], before[series]
	bounds := make([]float64, 0, len(a))
	for le := range a {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return math.NaN(), 0
	}
	total := a[bounds[len(bounds)-1]] - b[bounds[len(bounds)-1]]
	if total <= 0 {
		return math.NaN(), 0
	}
	for _, le := range bounds {
		if a[le]-b[le] >= q*total {
			return le, total
		}
	}
	return math.Inf(1), total
}
