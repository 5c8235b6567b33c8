package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// better says which way a metric improves, for the ratio column.
type better int

const (
	lower  better = iota // a smaller value is better: ratio naive/parley
	higher               // a larger value is better: ratio parley/naive
	info                 // no ratio
)

type metric struct {
	Key    string
	Label  string
	Unit   string
	Value  float64
	Better better
}

// result is one scenario run against one server.
type result struct {
	Scenario string
	Variant  string
	Title    string
	Target   string
	Metrics  []metric
	Redis    map[string]int64 // round trips by command during the answer phase
	Notes    []string
	Kind     string  // the scenario's kind: stream, idle, page
	Viewers  int     // viewers planned in all (every conversation's)
	Pinning  pinning // where the server and the load generator ran
}

func newResult(s scenario, variant string) *result {
	return &result{Scenario: s.Name, Variant: variant, Title: s.Title, Target: s.Target}
}

func (r *result) add(key, label, unit string, v float64, b better) {
	r.Metrics = append(r.Metrics, metric{Key: key, Label: label, Unit: unit, Value: v, Better: b})
}

// get returns the value of metric key, NaN when the run did not measure it.
func (r *result) get(key string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Key == key {
			return m.Value, true
		}
	}
	return math.NaN(), false
}

func (r *result) addLatency(key, label string, micros []int32, censored int) {
	p := percentiles(micros, censored)
	r.add(key+"_p50_ms", label+" p50", "ms", p.P50, lower)
	r.add(key+"_p90_ms", label+" p90", "ms", p.P90, lower)
	r.add(key+"_p99_ms", label+" p99", "ms", p.P99, lower)
	r.add(key+"_max_ms", label+" max", "ms", p.Max, lower)
	r.add(key+"_samples", label+": samples", "", float64(p.N), info)
	if censored > 0 {
		r.add(key+"_undelivered", label+": tokens never delivered (counted as +Inf)", "", float64(censored), lower)
	}
}

func (r *result) addExactness(vs []verdict, unfinished, breaks int) {
	var exact, gaps, dups, errs int
	var firstErr string
	for _, v := range vs {
		if v.Exact && v.Gaps == 0 && v.Dups == 0 && v.Err == "" {
			exact++
		}
		gaps += v.Gaps
		dups += v.Dups
		if v.Err != "" {
			errs++
			if firstErr == "" {
				firstErr = v.Err
			}
		}
	}
	r.add("viewers_exact", "viewers whose answer equals the stored one", "", float64(exact), higher)
	r.add("viewers_inexact", "viewers whose answer differs", "", float64(len(vs)-exact), lower)
	r.add("token_gaps", "missing tokens, all viewers", "", float64(gaps), lower)
	r.add("token_dups", "duplicated tokens, all viewers", "", float64(dups), lower)
	r.add("viewers_unfinished", "viewers who never saw the end", "", float64(unfinished), lower)
	if breaks > 0 {
		r.add("stream_breaks", "streams that broke unasked (then reconnected)", "", float64(breaks), lower)
	}
	if errs > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d viewers failed; first: %s", errs, firstErr))
	}
}

func (r *result) addJoins(js []joinResult) {
	var first, page []int32
	var bytes []float64
	full, failed := 0, 0
	for _, j := range js {
		if j.err != nil && j.firstFrame == 0 {
			failed++
			continue
		}
		first = append(first, int32(j.firstFrame.Microseconds()))
		if j.page > 0 {
			page = append(page, int32(j.page.Microseconds()))
		}
		bytes = append(bytes, float64(j.frameBytes))
		if j.full {
			full++
		}
	}
	p := percentiles(first, failed)
	r.add("join_first_frame_p50_ms", "late join: first full frame p50", "ms", p.P50, lower)
	r.add("join_first_frame_p99_ms", "late join: first full frame p99", "ms", p.P99, lower)
	r.add("join_first_frame_max_ms", "late join: first full frame max", "ms", p.Max, lower)
	r.add("join_frame_bytes", "late join: first frame size", "B", mean(bytes), info)
	r.add("join_full_frames", "late joiners whose first frame held the answer", "", float64(full), higher)
	pp := percentiles(page, 0)
	r.add("join_page_p50_ms", "late join: page load p50", "ms", pp.P50, lower)
	r.add("join_page_p99_ms", "late join: page load p99", "ms", pp.P99, lower)
}

func (r *result) addSamples(s *sampler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peakRSS > 0 {
		r.add("peak_rss_mb", "server peak RSS", "MiB", s.peakRSS/(1<<20), lower)
	}
	if s.peakGo > 0 {
		r.add("peak_goroutines", "server peak goroutines", "", s.peakGo, lower)
	}
	if s.peakThread > 0 {
		r.add("peak_threads", "server peak threads", "", float64(s.peakThread), info)
	}
}

// pair is a scenario's results for Parley and the naive baseline.
type pair struct {
	Scenario string
	Parley   *result
	Naive    *result
}

// printTable writes one table per scenario: Parley, naive, and the ratio.
func printTable(w io.Writer, pairs []pair, machine string) {
	for _, p := range pairs {
		first := p.Parley
		if first == nil {
			first = p.Naive
		}
		if first == nil {
			continue
		}
		fmt.Fprintf(w, "\n== %s: %s\n   target: %s\n   %s\n", first.Scenario, first.Title, first.Target, machine)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "metric\tparley\tnaive\tratio\t")
		for _, m := range first.Metrics {
			pv, nv := math.NaN(), math.NaN()
			if p.Parley != nil {
				pv, _ = p.Parley.get(m.Key)
			}
			if p.Naive != nil {
				nv, _ = p.Naive.get(m.Key)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", m.Label+unitSuffix(m.Unit), num(pv), num(nv), ratio(pv, nv, m.Better))
		}
		if p.Naive != nil && p.Parley != nil {
			for _, m := range p.Naive.Metrics {
				if _, ok := p.Parley.get(m.Key); !ok {
					fmt.Fprintf(tw, "%s\t%s\t%s\t\t\n", m.Label+unitSuffix(m.Unit), "", num(m.Value))
				}
			}
		}
		_ = tw.Flush()
		for _, r := range []*result{p.Parley, p.Naive} {
			if r == nil {
				continue
			}
			for _, n := range r.Notes {
				fmt.Fprintf(w, "   note (%s): %s\n", r.Variant, n)
			}
			if len(r.Redis) > 0 {
				fmt.Fprintf(w, "   redis round trips (%s): %s\n", r.Variant, redisLine(r.Redis))
			}
		}
	}
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " (" + u + ")"
}

func redisLine(m map[string]int64) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return "never"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// ratio is how many times better Parley is than naive ("12x"), or "-".
func ratio(parley, naive float64, b better) string {
	if b == info || math.IsNaN(parley) || math.IsNaN(naive) {
		return ""
	}
	var r float64
	switch b {
	case lower:
		if parley == 0 && naive == 0 {
			return "="
		}
		if math.IsInf(naive, 1) && !math.IsInf(parley, 1) {
			return "inf"
		}
		r = naive / parley
	case higher:
		if parley == 0 && naive == 0 {
			return "="
		}
		r = parley / naive
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return ""
	}
	return fmt.Sprintf("%.3gx", r)
}

// jsonResult is a result as written to the -json file.
type jsonResult struct {
	Scenario string             `json:"scenario"`
	Variant  string             `json:"variant"`
	Kind     string             `json:"kind"`
	Viewers  int                `json:"viewers"`
	Pinning  pinning            `json:"pinning"`
	Title    string             `json:"title"`
	Target   string             `json:"target"`
	Metrics  map[string]any     `json:"metrics"`
	Units    map[string]string  `json:"units"`
	Redis    map[string]int64   `json:"redis_round_trips,omitempty"`
	Notes    []string           `json:"notes,omitempty"`
	Ratios   map[string]float64 `json:"naive_over_parley,omitempty"`
}

func writeJSON(path string, pairs []pair, machine, command string) error {
	var out struct {
		Machine string       `json:"machine"`
		Command string       `json:"command"`
		Results []jsonResult `json:"results"`
	}
	out.Machine, out.Command = machine, command
	for _, p := range pairs {
		for _, r := range []*result{p.Parley, p.Naive} {
			if r == nil {
				continue
			}
			j := jsonResult{Scenario: r.Scenario, Variant: r.Variant, Kind: r.Kind, Viewers: r.Viewers, Pinning: r.Pinning,
				Title: r.Title, Target: r.Target,
				Metrics: map[string]any{}, Units: map[string]string{}, Redis: r.Redis, Notes: r.Notes}
			for _, m := range r.Metrics {
				j.Metrics[m.Key] = jsonNumber(m.Value)
				if m.Unit != "" {
					j.Units[m.Key] = m.Unit
				}
			}
			if r == p.Parley && p.Naive != nil {
				j.Ratios = map[string]float64{}
				for _, m := range r.Metrics {
					if nv, ok := p.Naive.get(m.Key); ok && m.Value != 0 && !math.IsInf(nv, 0) && !math.IsNaN(nv) && !math.IsNaN(m.Value) && !math.IsInf(m.Value, 0) {
						j.Ratios[m.Key] = nv / m.Value
					}
				}
			}
			out.Results = append(out.Results, j)
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// jsonNumber keeps JSON valid: +Inf (never delivered) and NaN (not measured)
// become strings.
func jsonNumber(v float64) any {
	switch {
	case math.IsInf(v, 1):
		return "never"
	case math.IsNaN(v):
		return nil
	}
	return v
}
