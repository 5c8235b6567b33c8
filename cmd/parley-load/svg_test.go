package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// svgDoc is what the tests read back from a drawn chart.
type svgDoc struct {
	area            [4]float64 // x, y, width, height of the plot area
	points, nevers  [][2]float64
	xticks, yticks  []string
	legend          []string
	polylines, refs int
}

// parseSVG decodes the whole document with encoding/xml (so it must be
// well-formed) and collects the plot area, the points and the labels.
func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	var d svgDoc
	dec := xml.NewDecoder(bytes.NewReader(b))
	var inText string
	depth, roots := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, b)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if el.Name.Local != "svg" || el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element %v, want svg in the SVG namespace", el.Name)
				}
			}
			depth++
			at := map[string]string{}
			for _, a := range el.Attr {
				at[a.Name.Local] = a.Value
			}
			f := func(k string) float64 {
				v, err := strconv.ParseFloat(at[k], 64)
				if err != nil {
					t.Fatalf("<%s %s=%q>: %v", el.Name.Local, k, at[k], err)
				}
				return v
			}
			switch {
			case at["class"] == "plot-area":
				d.area = [4]float64{f("x"), f("y"), f("width"), f("height")}
			case at["class"] == "point":
				d.points = append(d.points, [2]float64{f("cx"), f("cy")})
			case at["class"] == "point never":
				d.nevers = append(d.nevers, [2]float64{f("cx"), f("cy")})
			case at["class"] == "ref":
				d.refs++
			case el.Name.Local == "polyline":
				d.polylines++
			}
			inText = at["class"]
		case xml.EndElement:
			depth--
			inText = ""
		case xml.CharData:
			switch inText {
			case "xtick":
				d.xticks = append(d.xticks, string(el))
			case "ytick":
				d.yticks = append(d.yticks, string(el))
			case "legend":
				d.legend = append(d.legend, string(el))
			}
		}
	}
	if roots != 1 || depth != 0 {
		t.Fatalf("%d root elements, depth %d at the end", roots, depth)
	}
	return d
}

func inside(area [4]float64, p [2]float64) bool {
	return p[0] >= area[0] && p[0] <= area[0]+area[2] && p[1] >= area[1] && p[1] <= area[1]+area[3]
}

func TestChartSVGIsWellFormedWithPointsInsideItsAxes(t *testing.T) {
	t.Parallel()
	c := &chart{
		Title: `p99 <latency> & "viewers"`, Note: "a note with <angle brackets> & an ampersand",
		X: axis{Label: "viewers", Log: true, Min: 100, Max: 10_000},
		Y: axis{Label: "ms", Log: true},
		Series: []series{
			{Name: "Parley", Color: "#1f77b4", Points: []point{{100, 20}, {1000, 38}, {5000, 230}, {10_000, 400}}},
			{Name: "naive <baseline>", Color: "#d62728", Points: []point{{100, 90}, {1000, math.Inf(1)}}},
		},
		Refs: []ref{{Y: 50, Label: "target"}},
	}
	var b bytes.Buffer
	if err := c.writeSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b.Bytes())
	if d.area[2] <= 0 || d.area[3] <= 0 {
		t.Fatalf("no plot area: %v", d.area)
	}
	if len(d.points) != 5 || len(d.nevers) != 1 {
		t.Fatalf("%d points and %d never-points, want 5 and 1", len(d.points), len(d.nevers))
	}
	for _, p := range append(d.points, d.nevers...) {
		if !inside(d.area, p) {
			t.Errorf("point %v outside the plot area %v", p, d.area)
		}
	}
	// A never-point is at the top of the axis, above every measured one.
	if d.nevers[0][1] != d.area[1] {
		t.Errorf("never-point at y=%v, want the top of the axis %v", d.nevers[0][1], d.area[1])
	}
	// Log x: 1,000 is halfway between 100 and 10,000.
	mid := d.area[0] + d.area[2]/2
	found := false
	for _, p := range d.points {
		if math.Abs(p[0]-mid) < 0.2 {
			found = true
		}
	}
	if !found {
		t.Errorf("no point at x=%v (1,000 viewers on a log axis from 100 to 10k): %v", mid, d.points)
	}
	// Higher latency is drawn higher (smaller y).
	if !(d.points[0][1] > d.points[1][1] && d.points[1][1] > d.points[2][1]) {
		t.Errorf("Parley's points do not rise with their values: %v", d.points[:4])
	}
	if want := []string{"100", "200", "500", "1k", "2k", "5k", "10k"}; strings.Join(d.xticks, " ") != strings.Join(want, " ") {
		t.Errorf("x ticks %v, want %v", d.xticks, want)
	}
	if len(d.yticks) < 3 {
		t.Errorf("y ticks %v: too few", d.yticks)
	}
	if len(d.legend) < 2 || d.legend[1] != "naive <baseline>" {
		t.Errorf("legend %q: want both series, text unescaped back", d.legend)
	}
	if d.polylines != 1 || d.refs != 1 {
		t.Errorf("%d lines and %d reference lines, want 1 (naive has one measured point) and 1", d.polylines, d.refs)
	}
}

func TestLinearAxisStartsAtZeroAndHoldsTheLargest(t *testing.T) {
	t.Parallel()
	a := axis{}
	a.fitTo([]float64{16, 45.6, 59.4})
	if a.Min != 0 || a.Max < 59.4 {
		t.Fatalf("axis %v..%v does not hold 0..59.4", a.Min, a.Max)
	}
	ticks := a.ticks()
	if ticks[0] != 0 || ticks[len(ticks)-1] > a.Max || len(ticks) < 4 || len(ticks) > 12 {
		t.Fatalf("ticks %v for %v..%v", ticks, a.Min, a.Max)
	}
}

// TestPlotDrawsRunsFromTheirJSON goes the whole way: results written as
// -json files, read back by the plot subcommand, one series per server.
func TestPlotDrawsRunsFromTheirJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(scen, variant, kind string, viewers int, key string, v float64) pair {
		r := &result{Scenario: scen, Variant: variant, Kind: kind, Viewers: viewers,
			Pinning: pinning{ServerCPUs: "1", LoadCPUs: "0", LoadGOMAXPROCS: 1}}
		r.add(key, key, "", v, lower)
		if variant == "parley" {
			return pair{Scenario: scen, Parley: r}
		}
		return pair{Scenario: scen, Naive: r}
	}
	a := filepath.Join(dir, "a.json")
	if err := writeJSON(a, []pair{
		mk("fanout-100", "parley", "stream", 100, "latency_p99_ms", 30),
		mk("fanout-1k", "parley", "stream", 1000, "latency_p99_ms", 40),
		mk("fanout-1k", "naive", "stream", 1000, "latency_p99_ms", math.Inf(1)),
		mk("answers-200", "parley", "stream", 1000, "latency_p99_ms", 70), // not a crowd in one room: left out
	}, "2 cores; test", "test"); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "b.json")
	if err := writeJSON(b, []pair{
		mk("idle-1k", "parley", "idle", 1000, "rss_per_viewer_kib", 40),
		mk("idle-10k", "parley", "idle", 10000, "rss_per_viewer_kib", 45.6),
		mk("idle-10k", "naive", "idle", 10000, "rss_per_viewer_kib", 59.4),
	}, "2 cores; test", "test"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "plots")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"plot", "-in", a + "," + b, "-out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("plot: %v\n%s", err, stderr.String())
	}
	lat, err := os.ReadFile(filepath.Join(out, "latency-p99.svg"))
	if err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, lat)
	if len(d.points) != 2 || len(d.nevers) != 1 {
		t.Errorf("latency chart: %d points, %d never, want 2 (answers-200 left out) and 1", len(d.points), len(d.nevers))
	}
	mem, err := os.ReadFile(filepath.Join(out, "idle-memory.svg"))
	if err != nil {
		t.Fatal(err)
	}
	d = parseSVG(t, mem)
	if len(d.points) != 3 || strings.Join(d.legend, "|") != "Parley|naive baseline" {
		t.Errorf("memory chart: %d points, legend %q; want 3 and Parley|naive baseline", len(d.points), d.legend)
	}
	for _, p := range d.points {
		if !inside(d.area, p) {
			t.Errorf("point %v outside the plot area %v", p, d.area)
		}
	}
}

func TestPlotSaysWhatIsMissing(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"plot"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-in") {
		t.Fatalf("plot without -in: %v, want a word about -in", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"plot", "-in", bad}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "not a parley-load -json file") {
		t.Fatalf("plot of a bad file: %v", err)
	}
}
