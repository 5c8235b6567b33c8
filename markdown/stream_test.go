package markdown

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// batch renders text the non-incremental way: Split, then Render each block.
func batch(r *Renderer, text string) []string {
	blocks := splitText(text)
	for i, b := range blocks {
		blocks[i] = r.Render(b)
	}
	return blocks
}

// appendPieces feeds text to a new Doc cut at the given offsets (sorted,
// inside text) and checks, after every Append, that Append's result is
// honest (blocks before first are unchanged) and that no block before the
// previous last block changed. If checkEach is set it also compares every
// intermediate state with the batch render of the text so far.
func appendPieces(t *testing.T, r *Renderer, name, text string, cuts []int, checkEach bool) {
	t.Helper()
	d := NewDoc(r)
	var prev []string
	last := 0
	for _, c := range append(cuts, len(text)) {
		first := d.Append(text[last:c])
		last = c
		got := d.Blocks()
		if first < 0 || first > len(prev) || (len(got) > 0 && first >= len(got)) {
			t.Fatalf("%s: Append up to %d returned %d with %d blocks before, %d after", name, c, first, len(prev), len(got))
		}
		if !slices.Equal(got[:first], prev[:first]) {
			t.Fatalf("%s: Append up to %d returned %d but an earlier block changed", name, c, first)
		}
		if n := max(len(prev)-1, 0); len(got) < n || !slices.Equal(got[:n], prev[:n]) {
			t.Fatalf("%s: Append up to %d changed a finished block", name, c)
		}
		if checkEach {
			if want := batch(r, text[:c]); !slices.Equal(got, want) {
				t.Fatalf("%s: after %d bytes\n got %q\nwant %q", name, c, got, want)
			}
		}
		prev = slices.Clone(got)
	}
	if d.Text() != text {
		t.Fatalf("%s: Text() = %q, want %q", name, d.Text(), text)
	}
	if want := batch(r, text); !slices.Equal(d.Blocks(), want) {
		t.Fatalf("%s: cuts %v\n got %q\nwant %q", name, cuts, d.Blocks(), want)
	}
}

func TestDocEveryCut(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	for name, text := range corpus(t) {
		// One cut at every byte offset.
		for c := 0; c <= len(text); c++ {
			appendPieces(t, r, fmt.Sprintf("%s cut at %d", name, c), text, []int{c}, true)
		}
		// Byte by byte, as the worst tokeniser would.
		every := make([]int, len(text))
		for i := range every {
			every[i] = i
		}
		appendPieces(t, r, name+" byte by byte", text, every, true)
	}
}

// randomCuts returns up to n sorted distinct offsets inside [0, size].
func randomCuts(rng *rand.Rand, size, n int) []int {
	seen := make(map[int]bool)
	for range n {
		seen[rng.IntN(size+1)] = true
	}
	cuts := make([]int, 0, len(seen))
	for c := range seen {
		cuts = append(cuts, c)
	}
	sort.Ints(cuts)
	return cuts
}

func TestDocRandomCuts(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	docs := corpus(t)
	names := make([]string, 0, len(docs))
	for name := range docs {
		names = append(names, name)
	}
	sort.Strings(names)
	// A long answer: the whole corpus, the unclosed fence last so it does
	// not swallow the rest.
	var long, longCRLF strings.Builder
	for _, name := range names {
		if strings.HasPrefix(name, "06-") {
			continue
		}
		if strings.HasSuffix(name, "(CRLF)") {
			longCRLF.WriteString(docs[name] + "\r\n")
		} else {
			long.WriteString(docs[name] + "\n")
		}
	}
	long.WriteString(docs["06-unclosed.md"])
	longCRLF.WriteString(docs["06-unclosed.md (CRLF)"])

	rng := rand.New(rand.NewPCG(42, 7))
	for _, text := range []string{long.String(), longCRLF.String()} {
		for i := range 30 {
			n := []int{1, 10, 100, 1000, len(text) / 3}[i%5]
			appendPieces(t, r, fmt.Sprintf("long text, %d random cuts (#%d)", n, i), text, randomCuts(rng, len(text), n), i < 3)
		}
	}
	for i, text := range randomMarkdown(3, 300) {
		appendPieces(t, r, fmt.Sprintf("random doc %d", i), text, randomCuts(rng, len(text), rng.IntN(len(text)+1)), true)
	}
}

func TestDocCRLFMatchesLF(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	for name, text := range corpus(t) {
		if strings.HasSuffix(name, "(CRLF)") {
			continue
		}
		d := NewDoc(r)
		crlf := strings.ReplaceAll(text, "\n", "\r\n")
		for i := 0; i < len(crlf); i += 3 {
			d.Append(crlf[i:min(i+3, len(crlf))])
		}
		if want := batch(r, text); !slices.Equal(d.Blocks(), want) {
			t.Errorf("%s: CRLF blocks\n got %q\nwant %q", name, d.Blocks(), want)
		}
	}
}

func TestDocUTF8(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	texts := []string{
		"é",
		"café au lait\n\nnaïve résumé",
		"日本語\n\n## 見出し\n\n- 項目",
		"emoji 🎉👍🏽 and family 👨‍👩‍👧‍👦\n\n```\n🚀\n\n🚀\n```\n\nend 🏁",
	}
	for _, text := range texts {
		// Every cut, so many of them fall inside a multi-byte rune.
		for c := 0; c <= len(text); c++ {
			appendPieces(t, r, fmt.Sprintf("%q cut at %d", text, c), text, []int{c}, true)
		}
		// Byte by byte: no intermediate render may contain a broken rune.
		d := NewDoc(r)
		for i := range len(text) {
			d.Append(text[i : i+1])
			for _, b := range d.Blocks() {
				if !utf8.ValidString(b) {
					t.Fatalf("%q after %d bytes: invalid UTF-8 block %q", text, i+1, b)
				}
			}
		}
		if want := batch(r, text); !slices.Equal(d.Blocks(), want) {
			t.Fatalf("%q byte by byte\n got %q\nwant %q", text, d.Blocks(), want)
		}
	}
}

func TestDocAppendResult(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	steps := []struct {
		text      string
		wantFirst int
		wantLen   int
	}{
		{"", 0, 0},
		{"Hello", 0, 1},
		{" world", 0, 1},
		{"\n\n", 0, 1},           // same HTML: reports the last block
		{"## Next", 1, 2},        // new block
		{"\n\n- a\n\n- b", 2, 4}, // block 1 gained only blank lines
		{"", 3, 4},
		{"\n\n```go\n", 4, 5},
		{"x\n\ny\n", 4, 5}, // inside the fence: no new block
		{"```\n\nz", 5, 6}, // closing the fence does not change block 4's HTML
	}
	d := NewDoc(r)
	for _, s := range steps {
		first := d.Append(s.text)
		if first != s.wantFirst || len(d.Blocks()) != s.wantLen {
			t.Errorf("Append(%q) = %d with %d blocks, want %d with %d", s.text, first, len(d.Blocks()), s.wantFirst, s.wantLen)
		}
	}
	want := []string{
		"<p>Hello world</p>",
		"<h2>Next</h2>",
		"<ul>\n<li>a</li>\n</ul>",
		"<ul>\n<li>b</li>\n</ul>",
		`<div class="code"><div class="code-bar"><span class="code-lang">go</span><button type="button" class="copy" aria-label="Copy code">Copy</button></div>` +
			`<pre class="chroma"><code class="language-go"><span class="nx">x</span>` + "\n\n" + `<span class="nx">y</span>` + "\n</code></pre></div>",
		"<p>z</p>",
	}
	if got := d.Blocks(); !slices.Equal(got, want) {
		t.Errorf("Blocks() = %q, want %q", got, want)
	}
}

// answer returns an LLM-like answer of n tokens, cut like a BPE tokeniser
// would: words with their leading space, long words in pieces of 4 bytes.
func answer(tb testing.TB, n int) []string {
	tb.Helper()
	docs := corpus(tb)
	names := make([]string, 0, len(docs))
	for name := range docs {
		if !strings.HasSuffix(name, "(CRLF)") && !strings.HasPrefix(name, "06-") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var tokens []string
	for len(tokens) < n {
		for _, name := range names {
			text := docs[name] + "\n"
			for len(text) > 0 && len(tokens) < n {
				i := 1
				for i < len(text) && i < 4 && text[i] != ' ' && text[i] != '\n' {
					i++
				}
				for i < len(text) && !utf8.RuneStart(text[i]) {
					i++
				}
				tokens = append(tokens, text[:i])
				text = text[i:]
			}
		}
	}
	return tokens
}

// BenchmarkDocAppend streams answers token by token. ns/token staying flat
// as the answer grows shows the cost is linear in the answer length.
func BenchmarkDocAppend(b *testing.B) {
	r := NewRenderer()
	for _, n := range []int{500, 1000, 2000, 4000} {
		tokens := answer(b, n)
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d := NewDoc(r)
				for _, tok := range tokens {
					d.Append(tok)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/token")
		})
	}
}

// BenchmarkRenderWhole is the quadratic approach Doc replaces: re-render the
// whole answer on every token. It is here for comparison only.
func BenchmarkRenderWhole(b *testing.B) {
	r := NewRenderer()
	tokens := answer(b, 2000)
	b.ReportAllocs()
	for b.Loop() {
		var text strings.Builder
		for _, tok := range tokens {
			text.WriteString(tok)
			r.Render(text.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tokens)), "ns/token")
}

func FuzzDoc(f *testing.F) {
	for _, s := range randomMarkdown(4, 10) {
		f.Add(s, uint64(1))
	}
	f.Add("<script>alert(1)</script>\n\n[x](javascript:alert(1))", uint64(2))
	f.Add("日本\n\n```\n🎉\n\n```\n\nend", uint64(3))
	r := NewRenderer()
	f.Fuzz(func(t *testing.T, text string, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 0))
		appendPieces(t, r, "fuzz", text, randomCuts(rng, len(text), rng.IntN(8)), false)
		for _, b := range batch(r, text) {
			checkSafeHTML(t, b)
		}
	})
}
