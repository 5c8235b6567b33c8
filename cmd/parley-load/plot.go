package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// runPlot is the "plot" subcommand: it draws, from the -json files of
// earlier runs, p99 latency against viewers (the fanout-N runs) and memory
// per idle viewer against viewers (the idle-N runs), each server a series.
//
//	go run ./cmd/parley-load plot -in a.json,b.json -out docs/plots
func runPlot(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley-load plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "comma-separated -json files of parley-load runs")
	out := fs.String("out", ".", "directory for latency-p99.svg and idle-memory.svg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("plot: give the runs' JSON files with -in a.json,b.json")
	}
	var runs []plotRun
	for _, path := range strings.Split(*in, ",") {
		r, err := readRun(path)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	charts := map[string]*chart{
		"latency-p99.svg": latencyChart(runs, stderr),
		"idle-memory.svg": memoryChart(runs, stderr),
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	for _, name := range []string{"latency-p99.svg", "idle-memory.svg"} {
		c := charts[name]
		if len(c.Series) == 0 {
			fmt.Fprintf(stderr, "plot: no results for %s in the files given\n", name)
			continue
		}
		path := filepath.Join(*out, name)
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		err = c.writeSVG(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("plot: write %s: %w", path, err)
		}
		fmt.Fprintln(stdout, "wrote", path)
	}
	return nil
}

// plotRun is one -json file as read back.
type plotRun struct {
	Path    string
	Machine string       `json:"machine"`
	Results []jsonResult `json:"results"`
}

func readRun(path string) (plotRun, error) {
	r := plotRun{Path: path}
	b, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("plot: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("plot: %s is not a parley-load -json file: %w", path, err)
	}
	return r, nil
}

// metricOf reads a metric back: a number, "never" as +Inf, else not there.
func metricOf(j jsonResult, key string) (float64, bool) {
	switch v := j.Metrics[key].(type) {
	case float64:
		return v, true
	case string:
		if v == "never" {
			return math.Inf(1), true
		}
	}
	return 0, false
}

// collect makes one series per server and pinning of the results keep
// picks, with the value of key against viewers.
func collect(runs []plotRun, keep func(jsonResult) bool, key string, stderr io.Writer) []series {
	type seriesKey struct{ variant, pin string }
	pins := map[string]bool{}
	for _, r := range runs {
		for _, j := range r.Results {
			if keep(j) {
				pins[j.Pinning.cpus()] = true
			}
		}
	}
	byKey := map[seriesKey]map[float64]float64{}
	var order []seriesKey
	for _, r := range runs {
		for _, j := range r.Results {
			v, ok := metricOf(j, key)
			if !keep(j) || !ok || j.Viewers == 0 {
				continue
			}
			k := seriesKey{j.Variant, j.Pinning.cpus()}
			if byKey[k] == nil {
				byKey[k] = map[float64]float64{}
				order = append(order, k)
			}
			x := float64(j.Viewers)
			if _, dup := byKey[k][x]; dup {
				fmt.Fprintf(stderr, "plot: %s %s at %d viewers appears twice; %s is used\n", j.Variant, key, j.Viewers, r.Path)
			}
			byKey[k][x] = v
		}
	}
	colors := map[string]string{"parley": "#1f77b4", "naive": "#d62728"}
	dashed := map[string]bool{}
	var out []series
	for _, k := range order {
		name := map[string]string{"parley": "Parley", "naive": "naive baseline"}[k.variant]
		if len(pins) > 1 {
			name += ", " + shortPin(k.pin)
		}
		s := series{Name: name, Color: colors[k.variant], Dashed: dashed[k.variant]}
		dashed[k.variant] = true // a second pinning of the same server: dashed
		for x, y := range byKey[k] {
			s.Points = append(s.Points, point{X: x, Y: y})
		}
		slices.SortFunc(s.Points, func(p, q point) int { return cmpFloat(p.X, q.X) })
		out = append(out, s)
	}
	return out
}

// shortPin names a pinning in a legend.
func shortPin(cpus string) string {
	if strings.Contains(cpus, "server unpinned") && strings.Contains(cpus, "load generator unpinned") {
		return "unpinned"
	}
	if _, after, ok := strings.Cut(cpus, "pinned to CPU "); ok {
		cpu, _, _ := strings.Cut(after, ";")
		return "server on CPU " + cpu
	}
	return cpus
}

// note says where the figures come from: the machines and the files'
// directories (their names say which run each is).
func note(runs []plotRun) string {
	var machines, dirs []string
	for _, r := range runs {
		m, _, _ := strings.Cut(r.Machine, "; ")
		if !slices.Contains(machines, m) {
			machines = append(machines, m)
		}
		if d := filepath.Dir(r.Path); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return fmt.Sprintf("%s. One run per point; drawn by parley-load plot from %d -json files in %s.", strings.Join(machines, "; "), len(runs), strings.Join(dirs, ", "))
}

// viewerAxis spans 100 to 10,000 viewers, wider where the data are.
func viewerAxis(ss []series) axis {
	a := axis{Label: "viewers", Log: true, Min: 100, Max: 10_000}
	for _, s := range ss {
		for _, p := range s.Points {
			a.Min = min(a.Min, step125(p.X, false))
			a.Max = max(a.Max, step125(p.X, true))
		}
	}
	return a
}

func latencyChart(runs []plotRun, stderr io.Writer) *chart {
	ss := collect(runs, func(j jsonResult) bool {
		return j.Kind == "stream" && strings.HasPrefix(j.Scenario, "fanout-")
	}, "latency_p99_ms", stderr)
	return &chart{
		Title:  "Token-to-viewer latency, p99: one answer at 100 tokens/s",
		X:      viewerAxis(ss),
		Y:      axis{Label: "p99 latency (ms)", Log: true},
		Series: ss,
		Refs:   []ref{{Y: 50, Label: "target at 1,000 viewers: 50 ms"}, {Y: 150, Label: "target at 5,000 viewers: 150 ms"}},
		Note:   note(runs),
	}
}

func memoryChart(runs []plotRun, stderr io.Writer) *chart {
	ss := collect(runs, func(j jsonResult) bool { return j.Kind == "idle" }, "rss_per_viewer_kib", stderr)
	return &chart{
		Title:  "Server memory per idle viewer (RSS growth / viewers)",
		X:      viewerAxis(ss),
		Y:      axis{Label: "RSS per viewer (KiB)"},
		Series: ss,
		Refs:   []ref{{Y: 16, Label: "issue 14 target: 16 KiB"}},
		Note:   note(runs),
	}
}
