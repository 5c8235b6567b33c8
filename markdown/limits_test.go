package markdown

import (
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// hostile returns inputs built to amplify goldmark's output or time: deep
// nesting, long runs of delimiters, unmatched inline syntax that goldmark
// matched in quadratic time, tables padded with empty cells, repeated
// references to a long URL, markup-heavy constructs.
func hostile() []struct{ name, src string } {
	rep := strings.Repeat
	var indented, ladder strings.Builder
	for i := 0; i < 400; i++ {
		indented.WriteString(rep("  ", i) + "- x\n")
	}
	for i := 1; ladder.Len() < 50000; i++ {
		ladder.WriteString("e" + rep("`", i))
	}
	hs := []struct{ name, src string }{
		{"gt32000", rep(">", 32000)},
		{"gt space", rep("> ", 16000) + "x"},
		{"quote then lazy lines", rep(">", 1000) + "\n" + rep("a\n", 10000)},
		{"list10000", rep("- ", 10000) + "x"},
		{"ordered10000", rep("1. ", 10000) + "x"},
		{"list then lines", rep("- ", 10000) + "x\n" + rep("  y\n", 5000)},
		{"indented lists", indented.String()},
		{"stars", rep("*", 50000)},
		{"underscores", rep("_", 50000)},
		{"tildes", rep("~", 50000)},
		{"open brackets", rep("[", 50000)},
		{"backticks", rep("`", 50000)},
		{"pipes", rep("|", 50000)},
		{"quotes", rep(`"`, 50000)},
		{"emphasis mismatched", rep("*a_ ", 12500)},
		{"emphasis closers", "a**b" + rep("c* ", 16000)},
		{"emphasis nested", rep("*a **a ", 3500) + "b" + rep(" a** a*", 3500)},
		{"strikethrough", rep("~a ", 16000)},
		{"links unclosed", rep("[a](b", 10000)},
		{"link destinations", rep("[a](", 12500)},
		{"links nested", rep("[", 25000) + "a" + rep("]", 25000)},
		{"link closers", rep("a]", 25000)},
		{"images", rep("![", 25000)},
		{"backtick ladder", ladder.String()},
		{"raw html", rep("<a ", 16000)},
		{"comments", "</" + rep("<!--", 12000)},
		{"table 2000 columns", "|" + rep("a|", 2000) + "\n|" + rep(":-:|", 2000) + "\n|" + rep("b|", 2000) + "\n"},
		{"table padded", "|" + rep("a|", 2000) + "\n|" + rep(":-:|", 2000) + "\n" + rep("|\n", 2000)},
		{"table delimiter rows", rep("|-|\n", 12000)},
		{"references", "[b]: https://example.com/" + rep("x", 2000) + " \"" + rep("t", 2000) + "\"\n" + rep("[b]", 10000)},
		{"linkify", rep("www.a.co ", 5000)},
		{"emails", rep("a@b.co ", 5000)},
		{"tasks", rep("- [ ]\n", 8000)},
		{"empty fences", rep("```\n```\n", 4000)},
		{"empty go fences", rep("```go\n```\n", 3000)},
		{"dense code", "```go\n" + rep("a+b+", 8000) + "\n```"},
		{"headings", rep("#\n", 20000)},
		{"hard breaks", rep("a\\\n", 10000)},
	}
	var mixed strings.Builder
	for _, h := range hs {
		mixed.WriteString(h.src[:min(len(h.src), 2000)] + "\n")
	}
	return append(hs, struct{ name, src string }{"mixed", mixed.String()})
}

// TestRenderBounded renders hostile inputs and checks the HTML is within
// maxHTML (by Render, renderFinal and block by block in a Doc), safe and
// deterministic, and that the work is linear: chroma lexes each byte at most
// once, and the allocations are bounded by the input's size. Time itself is
// not asserted; the quadratic cases that allocate little are covered by
// TestInlineGuardCapsRuns. It does not run in parallel: it counts the
// process's allocations.
func TestRenderBounded(t *testing.T) {
	r := NewRenderer()
	for _, h := range hostile() {
		t.Run(h.name, func(t *testing.T) {
			out := r.Render(h.src)
			if limit := maxHTML(len(h.src)); len(out) > limit {
				t.Errorf("%d bytes of Markdown rendered to %d bytes of HTML, over the bound %d", len(h.src), len(out), limit)
			}
			if lexed := r.hl.lexed.Swap(0); lexed > int64(len(h.src)) {
				t.Errorf("chroma lexed %d bytes of %d", lexed, len(h.src))
			}
			for _, final := range []bool{false, true} {
				d := NewDoc(r)
				if final {
					d.AppendFinal(h.src)
				} else {
					d.Append(h.src)
				}
				for i, b := range splitText(h.src) {
					if len(d.Blocks()[i]) > maxHTML(len(b)) {
						t.Errorf("block %d: %d bytes of Markdown rendered to %d bytes of HTML", i, len(b), len(d.Blocks()[i]))
					}
				}
			}
			checkSafeHTML(t, out)
			if again := r.Render(h.src); again != out {
				t.Errorf("a second render differs")
			}
			if fin := r.renderFinal(h.src); fin != out {
				t.Errorf("the final render differs")
			}
			if raceEnabled {
				return
			}
			allocs, bytes := allocated(func() { r.Render(h.src) })
			if limit := 10*len(h.src) + 4096; allocs > limit {
				t.Errorf("%d bytes of Markdown took %d allocations, want at most %d", len(h.src), allocs, limit)
			}
			if limit := 1000*len(h.src) + 1<<20; bytes > limit {
				t.Errorf("%d bytes of Markdown allocated %d bytes, want at most %d", len(h.src), bytes, limit)
			}
			t.Logf("%d bytes → %d bytes of HTML (%.2f×), %d allocations, %d bytes allocated (%.0f per byte)", len(h.src), len(out), float64(len(out))/float64(len(h.src)), allocs, bytes, float64(bytes)/float64(len(h.src)))
		})
	}
}

// allocated returns the number and total size of the allocations f makes,
// as testing.AllocsPerRun counts them (one run; the test must not run in
// parallel with others).
func allocated(f func()) (allocs, bytes int) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int(after.Mallocs - before.Mallocs), int(after.TotalAlloc - before.TotalAlloc)
}

// TestNestingLimit: containers deeper than maxNesting are text, whatever
// the kind of marker, and the nesting an answer uses is untouched.
func TestNestingLimit(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	tests := []struct {
		name, src, tag string
		want           int
		text           string // visible text the output must contain
	}{
		{"quotes", strings.Repeat("> ", 20) + "x", "<blockquote>", maxNesting, "> > > > x"},
		{"quotes without spaces", strings.Repeat(">", 20) + "x", "<blockquote>", maxNesting, ">>>>x"},
		{"bullets", strings.Repeat("- ", 20) + "x", "<ul>", maxNesting, "- - - - x"},
		{"numbers", strings.Repeat("1. ", 20) + "x", "<ol>", maxNesting, "1. 1. 1. 1. x"},
		{"quotes and lists", strings.Repeat("> - ", 10) + "x", "<", 0, "> - > - x"},
		{"four deep", "- a\n  - b\n    - c\n      - d", "<ul>", 4, "a b c d"},
		{"quoted list", "> - a\n>   - b\n>     > c", "<blockquote>", 2, "a b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := r.Render(tt.src)
			if tt.want > 0 {
				if got := strings.Count(out, tt.tag); got != tt.want {
					t.Errorf("%d %s in %s, want %d", got, tt.tag, out, tt.want)
				}
			}
			if got := strings.Count(out, "<blockquote>") + strings.Count(out, "<ul>") + strings.Count(out, "<ol>"); got > maxNesting {
				t.Errorf("%d containers in %s, want at most %d", got, out, maxNesting)
			}
			if got := visibleText(t, out); !strings.Contains(got, tt.text) {
				t.Errorf("the reader sees %q, want it to contain %q", got, tt.text)
			}
		})
	}
	// Nesting by indentation.
	var b strings.Builder
	for i := range 40 {
		b.WriteString(strings.Repeat("  ", i) + "- x\n")
	}
	if out := r.Render(b.String()); strings.Count(out, "<ul>") > maxNesting {
		t.Errorf("%d lists nested by indentation, want at most %d", strings.Count(out, "<ul>"), maxNesting)
	}
}

// countingInline counts the calls of an inline parser.
type countingInline struct {
	parser.InlineParser
	n *int
}

// Parse implements parser.InlineParser.
func (c countingInline) Parse(parent ast.Node, block text.Reader, pc parser.Context) ast.Node {
	*c.n++
	return c.InlineParser.Parse(parent, block, pc)
}

// TestInlineGuardCapsRuns: the parsers whose time grows with the square of
// the delimiters in a paragraph see at most their budget of them per
// paragraph, which bounds that time; the rest is text.
func TestInlineGuardCapsRuns(t *testing.T) {
	t.Parallel()
	rep := strings.Repeat
	tests := []struct {
		name  string
		inner parser.InlineParser
		kind  int
		src   string
		want  int // most calls of the inner parser
	}{
		{"emphasis closers", parser.NewEmphasisParser(), runEmphasis, "a**b" + rep("c* ", 16000), maxInlineRuns},
		{"emphasis in two paragraphs", parser.NewEmphasisParser(), runEmphasis, rep("*a_ ", 1000) + "\n\n" + rep("*a_ ", 1000), 2 * maxInlineRuns},
		{"short paragraph links", parser.NewLinkParser(), runLink, rep("[a](b", 1000), maxInlineRuns},
		{"long paragraph links", parser.NewLinkParser(), runLink, rep("[a](b", 20000), minInlineRuns},
		{"images", parser.NewLinkParser(), runLink, rep("![", 2000), maxInlineRuns},
		{"code spans", parser.NewCodeSpanParser(), runCode, rep("e`` ` ", 20000), minInlineRuns},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			p := parser.NewParser(
				parser.WithBlockParsers(parser.DefaultBlockParsers()...),
				parser.WithInlineParsers(util.Prioritized(inlineGuard{
					InlineParser: countingInline{tt.inner, &n}, key: parser.NewContextKey(), kind: tt.kind,
				}, 100)),
			)
			p.Parse(text.NewReader([]byte(tt.src)))
			if n > tt.want {
				t.Errorf("the parser ran %d times, want at most %d", n, tt.want)
			}
			if n < tt.want/2 {
				t.Errorf("the parser ran %d times: is it guarded at all?", n)
			}
		})
	}
	// What is beyond the budget is shown as written.
	src := rep("*a* ", 300)
	if got, want := visibleText(t, NewRenderer().Render(src)), collapse(rep("a ", maxInlineRuns/2)+rep("*a* ", 300-maxInlineRuns/2)); got != want {
		t.Errorf("the reader sees %q, want %q", got, want)
	}
}

// TestTableGuard: a table that goldmark would pad to more cells than bytes
// stays a paragraph; wide tables written out in full are tables.
func TestTableGuard(t *testing.T) {
	t.Parallel()
	rep := strings.Repeat
	r := NewRenderer()
	for _, tt := range []struct {
		name, src string
		table     bool
	}{
		{"ordinary", "| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 |", true},
		{"2,000 columns", "|" + rep("a|", 2000) + "\n|" + rep("-|", 2000) + "\n|" + rep("b|", 2000), true},
		{"2,000 columns padded", "|" + rep("a|", 2000) + "\n|" + rep("-|", 2000) + "\n" + rep("|\n", 2000), false},
		{"padded after a paragraph line", "text\n|" + rep("a|", 500) + "\n|" + rep("-|", 500) + "\n" + rep("|\n", 500), false},
	} {
		out := r.Render(tt.src)
		if got := strings.Contains(out, "<table>"); got != tt.table {
			t.Errorf("%s: table %v, want %v", tt.name, got, tt.table)
		}
		if len(out) > maxHTML(len(tt.src)) {
			t.Errorf("%s: %d bytes of HTML, over the bound", tt.name, len(out))
		}
	}
}

// TestLinkBytesBound: a block whose links would write a long reference
// URL again and again is shown as text.
func TestLinkBytesBound(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	url := "https://example.com/" + strings.Repeat("x", 2000)
	src := "[b]: " + url + "\n\n" + strings.Repeat("[b]\n\n", 200)
	if out := r.Render(src); out != plainHTML(src) {
		t.Errorf("the block is not shown as text: %.300s", out)
	}
	// Used a few times, it is a link.
	src = "[b]: " + url + "\n\n[b] and [b]"
	if out := r.Render(src); strings.Count(out, `<a href="`+url) != 2 {
		t.Errorf("reference links are not links: %.300s", out)
	}
}

// TestXSSCorpusBounded: every XSS vector, and every prefix of it, is within
// the bound (TestXSSCorpus checks they are inert).
func TestXSSCorpusBounded(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	for _, v := range loadXSS(t) {
		for i := 0; i <= len(v.Text); i++ {
			if out := r.Render(v.Text[:i]); len(out) > maxHTML(i) {
				t.Errorf("%s: %d bytes render to %d", v.Name, i, len(out))
			}
		}
	}
}

// onAttr finds an event handler attribute in HTML.
var onAttr = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)

// FuzzRenderBounded: for any input the HTML is within maxHTML, holds no
// script or event handler (checkSafeHTML: only the elements and attributes
// goldmark and the highlighter write), renders the same twice, and its
// final rendering is bounded too.
func FuzzRenderBounded(f *testing.F) {
	for _, h := range hostile() {
		f.Add(h.src[:min(len(h.src), 4000)])
	}
	for _, s := range randomMarkdown(5, 20) {
		f.Add(s)
	}
	f.Add("<script>alert(1)</script>\n\n[x](javascript:alert(1))")
	f.Add("```go\nfunc main() {}\n```\n\n> - a\n>   - b")
	f.Add("| a | b |\n|:-|-:|\n| <img src=x onerror=alert(1)> | `c` |")
	r := NewRenderer()
	f.Fuzz(func(t *testing.T, src string) {
		out := r.Render(src)
		if limit := maxHTML(len(src)); len(out) > limit {
			t.Fatalf("%d bytes render to %d, over %d", len(src), len(out), limit)
		}
		if strings.Contains(strings.ToLower(out), "<script") || onAttr.MatchString(out) {
			t.Fatalf("script or handler in %q", out)
		}
		checkSafeHTML(t, out)
		if again := r.Render(src); again != out {
			t.Fatalf("renders differ:\n%q\n%q", out, again)
		}
		if fin := r.renderFinal(src); len(fin) > maxHTML(len(src)) {
			t.Fatalf("%d bytes render final to %d", len(src), len(fin))
		}
	})
}
