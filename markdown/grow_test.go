package markdown

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// fenceStates describes an answer that is mostly one Ruby fence: the text,
// where the code starts and ends, and the code a state of length c holds.
type fenceStates struct {
	text       string
	start, end int // of the code in text
}

func newFenceStates(size int) fenceStates {
	text := streamFence(size)
	start := strings.Index(text, "```ruby\n") + len("```ruby\n")
	return fenceStates{text: text, start: start, end: len(text) - len("```\n")}
}

// code returns the code of the fence in text[:c], as goldmark sees it
// (without the newline it adds to an unfinished last line).
func (f fenceStates) code(c int) string {
	if c >= f.end+3 { // the closing fence is complete
		return f.text[f.start:f.end]
	}
	return f.text[f.start:max(c, f.start)]
}

// TestStreamFenceHighlightWork streams a 15 KB Ruby fence 4 bytes at a time
// through a Doc and checks that chroma lexes a small multiple of the code,
// not the whole code at every frame; that at every state the last block is
// Render of its text and its code block holds the code so far, and the
// blocks are those a page load renders (checked every 16 frames); and that
// the end result equals a one-shot render by a fresh renderer.
func TestStreamFenceHighlightWork(t *testing.T) {
	t.Parallel()
	f := newFenceStates(15000)
	n := f.end - f.start
	r := NewRenderer()
	var lexed atomic.Int64
	countLexer(t, r, "ruby", &lexed)
	d := NewDoc(r)
	var streamed, whole int64
	for i := 0; i < len(f.text); i += 4 {
		c := min(i+4, len(f.text))
		before := lexed.Load()
		d.Append(f.text[i:c])
		streamed += lexed.Load() - before
		code := f.code(c)
		if len(code) <= maxHighlightBytes {
			whole += int64(len(code)) // lexing the whole code at every frame
		}

		got := d.Blocks()
		if c%64 == 0 || c == len(f.text) {
			page := NewDoc(r)
			page.Append(f.text[:c])
			if !slices.Equal(got, page.Blocks()) {
				t.Fatalf("after %d bytes the streamed blocks differ from a page load's:\n%q\n%q", c, got, page.Blocks())
			}
		}
		starts := Split(f.text[:c])
		last := got[len(got)-1]
		if want := r.Render(f.text[starts[len(starts)-1]:c]); last != want {
			t.Fatalf("after %d bytes the last block is not Render of its text", c)
		}
		if c > f.start {
			if c%64 == 0 {
				checkSafeHTML(t, last)
			}
			if got := codeText(t, last); strings.TrimRight(got, "\n") != strings.TrimRight(code, "\n") {
				t.Fatalf("after %d bytes the code block holds %q, want %q", c, got, code)
			}
		}
	}
	t.Logf("%d bytes of code: chroma lexed %d bytes (%.1f per byte); lexing the whole code at every frame would lex %d (%.0f per byte)",
		n, streamed, float64(streamed)/float64(n), whole, float64(whole)/float64(n))
	// About 5.5 n for the checkpoint prefixes, n for the closed block and
	// growWholeBytes²/8 while it was small: see growWholeBytes.
	if streamed > int64(8*n) {
		t.Errorf("chroma lexed %d bytes for %d bytes of code, want at most %d", streamed, n, 8*n)
	}
	if want := batch(NewRenderer(), f.text); !slices.Equal(d.Blocks(), want) {
		t.Errorf("the streamed answer differs from a one-shot render")
	}
}

// TestPageLoadsHitTheCache: loading the page of an answer whose code block
// is growing (a Doc of its text, or Render of its last block) lexes nothing:
// the highlighted prefix is the one the frames use.
func TestPageLoadsHitTheCache(t *testing.T) {
	t.Parallel()
	f := newFenceStates(8000)
	r := NewRenderer()
	var lexed atomic.Int64
	countLexer(t, r, "ruby", &lexed)
	d := NewDoc(r)
	for i := 0; i < len(f.text); i += 4 {
		c := min(i+4, len(f.text))
		d.Append(f.text[i:c])
		if c < f.start+2*growWholeBytes || c%97 > 3 {
			continue
		}
		before := lexed.Load()
		for range 3 {
			NewDoc(r).Append(f.text[:c])
		}
		starts := Split(f.text[:c])
		r.Render(f.text[starts[len(starts)-1]:c])
		if got := lexed.Load() - before; got != 0 {
			t.Fatalf("after %d bytes page loads lexed %d bytes", c, got)
		}
	}
}

// TestCheckpoint checks the checkpoints of a growing code block: at a line
// boundary, never behind by more than a step and a line, stable while the
// code grows to the next one, and few enough that lexing every prefix once
// costs a small multiple of the code.
func TestCheckpoint(t *testing.T) {
	t.Parallel()
	code := rubyCode(40000)
	longest := 0
	for line := range strings.Lines(code) {
		longest = max(longest, len(line))
	}
	prev, work := -1, 0
	for l := 0; l <= len(code); l++ {
		cp := checkpoint(code[:l])
		switch {
		case l <= growWholeBytes && cp != l:
			t.Fatalf("checkpoint of %d bytes = %d, want the whole", l, cp)
		case cp > l || cp > 0 && code[cp-1] != '\n' && cp != l:
			t.Fatalf("checkpoint of %d bytes = %d, not at a line boundary", l, cp)
		case l > growWholeBytes && l-cp > max(minCheckpointStep, l/4)+longest:
			t.Fatalf("checkpoint of %d bytes = %d, too far behind", l, cp)
		case l > growWholeBytes && cp < prev:
			t.Fatalf("checkpoint of %d bytes = %d, before the previous %d", l, cp, prev)
		}
		if l > growWholeBytes && cp != prev {
			work += cp
			prev = cp
		}
	}
	if work > 6*len(code) {
		t.Errorf("the checkpoints of %d bytes of code add up to %d bytes", len(code), work)
	}
}

// TestGrowingFence checks which code blocks count as growing: one that
// nothing but an unfinished line follows (even a complete-looking closing
// fence without its newline: more text may make it code), not one whose
// closing line has ended; and that a growing one is partly plain, its final
// rendering whole.
func TestGrowingFence(t *testing.T) {
	t.Parallel()
	code := rubyCode(600)
	r := NewRenderer()
	for _, tt := range []struct {
		name, src string
		growing   bool
	}{
		{"open", "```ruby\n" + code, true},
		{"unfinished line", "```ruby\n" + code + "def x", true},
		{"closing fence without newline", "```ruby\n" + code + "```", true},
		{"closed", "```ruby\n" + code + "```\n", false},
		{"closed and more text", "```ruby\n" + code + "```\nmore", false},
		{"small", "```ruby\nputs 1\n", false},
		{"in a list item", "- ```ruby\n" + indent(code, "  "), true},
		{"no language", "```\n" + code, false},
		{"unknown language", "```nosuchlanguage\n" + code, false},
		{"indented code", "    " + indent(code, "    "), false},
	} {
		got, partial := r.render(tt.src, false)
		final, finalPartial := r.render(tt.src, true)
		if partial != tt.growing || finalPartial {
			t.Errorf("%s: partial %v (final %v), want %v", tt.name, partial, finalPartial, tt.growing)
		}
		if (got != final) != tt.growing {
			t.Errorf("%s: the growing and final renders differ: %v, want %v", tt.name, got != final, tt.growing)
		}
		if got != r.Render(tt.src) {
			t.Errorf("%s: render differs from Render", tt.name)
		}
		if codeText(t, got) != codeText(t, final) {
			t.Errorf("%s: the code differs between the growing and final renders", tt.name)
		}
		checkSafeHTML(t, got)
	}
}

func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix + line)
	}
	return b.String()
}

// TestClosingFenceFlicker: a stream whose every other frame ends in what
// looks like a closing fence (then more code: "```x") is still lexed a
// small multiple of its size, not whole at every such frame.
func TestClosingFenceFlicker(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	var lexed atomic.Int64
	countLexer(t, r, "ruby", &lexed)
	d := NewDoc(r)
	d.Append("```ruby\n")
	n := 0
	for n < 8000 {
		d.Append("```")
		d.Append("x = 1\n")
		n += len("```x = 1\n")
	}
	if got := lexed.Load(); got > int64(8*n) {
		t.Errorf("chroma lexed %d bytes for %d bytes of code, want at most %d", got, n, 8*n)
	}
}

// TestDocFinalisesPartialBlock: a block rendered partly unhighlighted while
// it was last is rendered again once final (when a block follows it, or at
// AppendFinal("")), and its partial HTML never reaches the cache of final
// blocks.
func TestDocFinalisesPartialBlock(t *testing.T) {
	t.Parallel()
	code := rubyCode(3000)
	t.Run("ended answer", func(t *testing.T) {
		r := NewRenderer()
		text := "Code:\n\n```ruby\n" + code
		d := NewDoc(r)
		for i := 0; i < len(text); i += 4 {
			d.Append(text[i:min(i+4, len(text))])
		}
		last := len(d.Blocks()) - 1
		partial := d.Blocks()[last]
		if _, ok := r.cache.get(text[Split(text)[last]:]); ok {
			t.Fatal("a growing block is cached")
		}
		if first := d.AppendFinal(""); first != last {
			t.Errorf("AppendFinal(\"\") = %d, want %d", first, last)
		}
		want := NewDoc(NewRenderer())
		want.AppendFinal(text)
		if got := d.Blocks(); !slices.Equal(got, want.Blocks()) || got[last] == partial {
			t.Errorf("the ended answer's blocks differ from a page load's")
		}
	})
	t.Run("block that a later block follows", func(t *testing.T) {
		r := NewRenderer()
		item := "- ```ruby\n" + indent(code, "  ") + "\n"
		d := NewDoc(r)
		d.Append(item)
		partial := d.Blocks()[0]
		if _, p := r.render(item, false); !p {
			t.Fatal("the list item's code block is not growing")
		}
		if _, ok := r.cache.get(item); ok {
			t.Fatal("a growing block is cached")
		}
		if first := d.Append("Next"); first != 0 {
			t.Errorf("Append = %d, want 0: the first block is final now", first)
		}
		if got := d.Blocks()[0]; got != r.renderFinal(item) || got == partial {
			t.Errorf("the finished block keeps its growing HTML")
		}
	})
}
