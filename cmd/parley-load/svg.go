package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// chart is a line chart of a few series, written as a standalone SVG with
// no dependency: axes with ticks, a legend, log or linear scales.
type chart struct {
	Title  string
	Note   string // a line under the plot: where the figures come from
	X, Y   axis
	Series []series
	Refs   []ref // horizontal reference lines (targets)
}

type axis struct {
	Label string
	Log   bool
	Min   float64 // the range drawn; set by fit when zero
	Max   float64
}

type series struct {
	Name   string
	Color  string
	Dashed bool
	Points []point
}

// point is one measurement. Y +Inf is a measurement that never came (no
// viewer had the answer in time): drawn at the top of the axis, hollow, and
// labelled, never as a made-up value.
type point struct {
	X, Y float64
}

type ref struct {
	Y     float64
	Label string
}

// The drawing's geometry, in SVG user units.
const (
	svgW, svgH   = 840.0, 480.0
	plotL, plotT = 78.0, 48.0
	plotW, plotH = 480.0, 330.0
)

// fit sets the axes' ranges from the points (and the reference lines) where
// they are not set: log axes to whole 1-2-5 steps, linear ones from 0.
func (c *chart) fit() {
	var xs, ys []float64
	for _, s := range c.Series {
		for _, p := range s.Points {
			xs = append(xs, p.X)
			if !math.IsInf(p.Y, 0) && !math.IsNaN(p.Y) {
				ys = append(ys, p.Y)
			}
		}
	}
	for _, r := range c.Refs {
		ys = append(ys, r.Y)
	}
	fitted := c.Y.Min == 0 && c.Y.Max == 0
	c.X.fitTo(xs)
	c.Y.fitTo(ys)
	if fitted && c.Y.Log && c.hasNever() {
		// Room at the top for the points that never came, apart from the
		// highest measured one.
		c.Y.Max = step125(c.Y.Max*1.01, true)
	}
}

func (a *axis) fitTo(vs []float64) {
	if a.Min != 0 || a.Max != 0 {
		return
	}
	if len(vs) == 0 {
		a.Min, a.Max = 1, 10
		return
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	if a.Log {
		lo, hi = max(lo, 1e-9), max(hi, 1e-9)
		a.Min, a.Max = step125(lo, false), step125(hi, true)
		if a.Min == a.Max {
			a.Max = step125(a.Max*1.01, true)
		}
		return
	}
	a.Min = min(0, lo)
	step := niceStep(hi * 1.1 / 5)
	a.Max = step * math.Ceil(hi*1.1/step)
	if a.Max <= a.Min {
		a.Max = a.Min + 1
	}
}

// step125 is the nearest of 1, 2 or 5 times a power of ten below v (or
// above, when up).
func step125(v float64, up bool) float64 {
	d := math.Pow(10, math.Floor(math.Log10(v)))
	steps := []float64{1, 2, 5, 10}
	if up {
		for _, s := range steps {
			if s*d >= v*(1-1e-9) {
				return s * d
			}
		}
	}
	out := d
	for _, s := range steps {
		if s*d <= v*(1+1e-9) {
			out = s * d
		}
	}
	return out
}

// niceStep is a 1-2-5 step near v.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	return step125(v, true)
}

// ticks are the values marked on the axis: 1, 2, 5 of each decade on a
// log axis, a 1-2-5 step giving about five intervals on a linear one.
func (a axis) ticks() []float64 {
	var out []float64
	if a.Log {
		for d := math.Pow(10, math.Floor(math.Log10(a.Min))); d <= a.Max; d *= 10 {
			for _, s := range []float64{1, 2, 5} {
				if v := s * d; v >= a.Min*(1-1e-9) && v <= a.Max*(1+1e-9) {
					out = append(out, v)
				}
			}
		}
		return out
	}
	step := niceStep((a.Max - a.Min) / 5)
	for v := math.Ceil(a.Min/step) * step; v <= a.Max+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

// frac is where v falls on the axis, 0 at Min and 1 at Max.
func (a axis) frac(v float64) float64 {
	if a.Log {
		return (math.Log10(v) - math.Log10(a.Min)) / (math.Log10(a.Max) - math.Log10(a.Min))
	}
	return (v - a.Min) / (a.Max - a.Min)
}

func (c *chart) px(x float64) float64 { return plotL + plotW*clamp01(c.X.frac(x)) }
func (c *chart) py(y float64) float64 {
	if math.IsInf(y, 1) {
		return plotT
	}
	return plotT + plotH*(1-clamp01(c.Y.frac(y)))
}

func clamp01(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return min(1, max(0, f))
}

// tickLabel writes 100, 2k, 10k, 0.5, 25.
func tickLabel(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
}

// writeSVG draws the chart (fitting its axes first).
func (c *chart) writeSVG(w io.Writer) error {
	c.fit()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="%g" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", plotL, esc(c.Title))
	fmt.Fprintf(&b, `<rect class="plot-area" x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#444"/>`+"\n", plotL, plotT, plotW, plotH)
	c.drawTicks(&b)
	for _, r := range c.Refs {
		y := c.py(r.Y)
		fmt.Fprintf(&b, `<line class="ref" x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#999" stroke-dasharray="2,3"/>`+"\n", plotL, y, plotL+plotW, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" fill="#666" font-size="10">%s</text>`+"\n", plotL+4, y-3, esc(r.Label))
	}
	for _, s := range c.Series {
		c.drawSeries(&b, s)
	}
	c.drawLegend(&b)
	for i, line := range wrap(c.Note, 125) {
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="10" fill="#555">%s</text>`+"\n", 12.0, plotT+plotH+62+13*float64(i), esc(line))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *chart) drawTicks(b *strings.Builder) {
	for _, v := range c.X.ticks() {
		x := c.px(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#eee"/>`, x, plotT, x, plotT+plotH)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#444"/>`, x, plotT+plotH, x, plotT+plotH+5)
		fmt.Fprintf(b, `<text class="xtick" x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x, plotT+plotH+18, tickLabel(v))
	}
	for _, v := range c.Y.ticks() {
		y := c.py(v)
		fmt.Fprintf(b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#eee"/>`, plotL, y, plotL+plotW, y)
		fmt.Fprintf(b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#444"/>`, plotL-5, y, plotL, y)
		fmt.Fprintf(b, `<text class="ytick" x="%g" y="%.1f" text-anchor="end">%s</text>`+"\n", plotL-8, y+4, tickLabel(v))
	}
	scale := func(a axis) string {
		if a.Log {
			return " (log scale)"
		}
		return ""
	}
	fmt.Fprintf(b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", plotL+plotW/2, plotT+plotH+40, esc(c.X.Label+scale(c.X)))
	fmt.Fprintf(b, `<text x="%g" y="%g" text-anchor="middle" transform="rotate(-90 %g %g)">%s</text>`+"\n",
		18.0, plotT+plotH/2, 18.0, plotT+plotH/2, esc(c.Y.Label+scale(c.Y)))
}

// drawSeries draws a line through the measured points in order of x, a
// dot on each, and a hollow dot marked "never" where nothing arrived.
func (c *chart) drawSeries(b *strings.Builder, s series) {
	pts := slices.Clone(s.Points)
	slices.SortStableFunc(pts, func(p, q point) int { return cmpFloat(p.X, q.X) })
	var path []string
	for _, p := range pts {
		if math.IsInf(p.Y, 1) {
			continue
		}
		path = append(path, fmt.Sprintf("%.1f,%.1f", c.px(p.X), c.py(p.Y)))
	}
	dash := ""
	if s.Dashed {
		dash = ` stroke-dasharray="6,4"`
	}
	if len(path) > 1 {
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(path, " "), s.Color, dash)
	}
	for _, p := range pts {
		x, y := c.px(p.X), c.py(p.Y)
		if math.IsInf(p.Y, 1) {
			fmt.Fprintf(b, `<circle class="point never" cx="%.1f" cy="%.1f" r="5" fill="white" stroke="%s" stroke-width="2"/>`, x, y, s.Color)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="%s">never</text>`+"\n", x, y+16, s.Color)
			continue
		}
		fmt.Fprintf(b, `<circle class="point" cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s: %s viewers, %s</title></circle>`+"\n",
			x, y, s.Color, esc(s.Name), tickLabel(p.X), num(p.Y))
	}
}

func (c *chart) drawLegend(b *strings.Builder) {
	x, y := plotL+plotW+16, plotT+8
	for _, s := range c.Series {
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6,4"`
		}
		fmt.Fprintf(b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`, x, y, x+22, y, s.Color, dash)
		fmt.Fprintf(b, `<circle cx="%g" cy="%g" r="3.5" fill="%s"/>`, x+11, y, s.Color)
		fmt.Fprintf(b, `<text class="legend" x="%g" y="%g">%s</text>`+"\n", x+28, y+4, esc(s.Name))
		y += 20
	}
	if c.hasNever() {
		fmt.Fprintf(b, `<circle cx="%g" cy="%g" r="5" fill="white" stroke="#444" stroke-width="2"/>`, x+11, y)
		fmt.Fprintf(b, `<text class="legend" x="%g" y="%g">no viewer had the</text>`, x+28, y+4)
		fmt.Fprintf(b, `<text x="%g" y="%g">whole answer in time</text>`+"\n", x+28, y+18)
	}
}

func (c *chart) hasNever() bool {
	for _, s := range c.Series {
		for _, p := range s.Points {
			if math.IsInf(p.Y, 1) {
				return true
			}
		}
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// wrap cuts s into lines of at most width bytes, between words.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}
