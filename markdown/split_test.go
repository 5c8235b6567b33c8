package markdown

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want []int
	}{
		{"empty", "", nil},
		{"one line", "a", []int{0}},
		{"paragraph lines stay together", "a\nb", []int{0}},
		{"two paragraphs", "a\n\nb", []int{0, 3}},
		{"headings", "# H\n\npara\n\n## H2\ntext", []int{0, 5, 11}},
		{"headings without blank lines", "# A\n## B\ntext", []int{0}},
		{"trailing blank lines wait for the next block", "a\n\n", []int{0}},
		{"blank line of spaces and tabs", "a\n \t\nb", []int{0, 5}},
		{"several blank lines", "a\n\n\n\nb", []int{0, 5}},
		{"leading blank lines", "\n\nfoo", []int{0, 2}},
		{"lists with blank lines split", "- a\n\n- b\n\n1. c", []int{0, 5, 10}},
		{"indented continuation", "- a\n\n  cont\n\nnext", []int{0, 13}},
		{"indented continuation only", "a\n\n  b", []int{0}},
		{"tab indented code", "a\n\n\tb", []int{0}},
		{"four space indent is not a fence", "    ```\n\nb", []int{0, 9}},
		{"fence with blank lines", "```go\nx\n\ny\n```\n\nafter", []int{0, 16}},
		{"fence after blank is a boundary", "text\n\n```\na\n\nb\n```\n\nc", []int{0, 6, 20}},
		{"fence right after paragraph", "text\n```\n\nx\n```\n\ny", []int{0, 17}},
		{"tilde fence holds backtick fence", "~~~\na\n\n```\n\nb\n~~~\n\nc", []int{0, 19}},
		{"backticks do not close tilde fence", "```\nx\n~~~\n\ny", []int{0}},
		{"shorter fence does not close", "````\na\n```\n\nb\n````\n\nc", []int{0, 20}},
		{"longer fence closes", "```\nx\n`````\n\ny", []int{0, 13}},
		{"closing fence with trailing spaces", "```\nx\n```  \n\ny", []int{0, 13}},
		{"closing fence with text does not close", "```\na\n``` x\n\nb", []int{0}},
		{"fence indented three spaces", "   ```\na\n\nb\n```\n\nc", []int{0, 17}},
		{"backtick in info string is not a fence", "```a`b\n\nc", []int{0, 8}},
		{"tilde info may hold backticks", "~~~a`b\n\nc", []int{0}},
		{"unclosed fence runs to the end", "p\n\n```\ncode\n\nmore\n\nend", []int{0, 3}},
		{"CRLF", "a\r\n\r\nb\r\n\r\n```\r\nx\r\n\r\ny\r\n```\r\n\r\nz", []int{0, 5, 10, 30}},
		{"CRLF blank line with spaces", "a\r\n  \r\nb", []int{0, 7}},
		{"partial CRLF blank line", "a\n\r", []int{0}},
		{"quote after quote", "> a\n\n> b", []int{0, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.text)
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("Split(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

// corpus returns realistic LLM answers from testdata/corpus, keyed by file
// name, plus their CRLF versions.
func corpus(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("corpus has %d documents, want at least 10", len(files))
	}
	docs := make(map[string]string)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		docs[name] = string(b)
		docs[name+" (CRLF)"] = strings.ReplaceAll(string(b), "\n", "\r\n")
	}
	return docs
}

// randomMarkdown returns n pseudo-random documents built from the pieces the
// scanner cares about, so fence and blank-line interactions are exercised far
// more often than in prose.
func randomMarkdown(seed uint64, n int) []string {
	pieces := []string{"a", "b c", " ", "  ", "    ", "\t", "\n", "\n\n", "\r\n", "```", "````", "~~~", "`", "~", "- ", "1. ", "> ", "# ", "é", "日本"}
	rng := rand.New(rand.NewPCG(seed, 0))
	docs := make([]string, n)
	for i := range docs {
		var b strings.Builder
		for range rng.IntN(60) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		docs[i] = b.String()
	}
	return docs
}

// checkPrefixStable fails if some prefix of text splits differently from
// text itself below the prefix's length. Equality (not just inclusion) also
// means no block before the last ever changes its text.
func checkPrefixStable(t *testing.T, name, text string) {
	t.Helper()
	all := Split(text)
	for p := 0; p <= len(text); p++ {
		got := Split(text[:p])
		want := all[:0:0]
		for _, b := range all {
			if b < p {
				want = append(want, b)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Split(text[:%d]) = %v, want %v (Split(text) = %v)", name, p, got, want, all)
			return
		}
	}
}

func TestSplitPrefixStable(t *testing.T) {
	t.Parallel()
	for name, text := range corpus(t) {
		checkPrefixStable(t, name, text)
	}
	for i, text := range randomMarkdown(1, 2000) {
		checkPrefixStable(t, "random "+string(rune('0'+i%10)), text)
	}
}

// TestSplitCorpusBlocks pins down that the corpus really exercises the
// scanner: fenced blank lines stay in one block and there is more than one
// block per answer.
func TestSplitCorpusBlocks(t *testing.T) {
	t.Parallel()
	docs := corpus(t)
	tests := []struct {
		doc      string
		wantHead []string // first line of each block
	}{
		{"01-intro.md", []string{"Sure!", "## What", "A channel", "```go", "## Buffered", "Channels can", "```go", "Sends to"}},
		{"02-lists.md", []string{"Here are", "1. Build", "2. Copy", "4. Verify", "That's it"}},
		{"04-nested.md", []string{"There are", "- **Option A**", "- **Option B**", "- Option C", "Pick A"}},
		{"05-tilde.md", []string{"Use a tilde", "~~~markdown", "And a longer", "````", "Done."}},
		{"06-unclosed.md", []string{"Here's the script:", "```python"}},
		{"10-mixed.md", []string{"### Summary", "The function", "1. It ignores", "Term with", "| a | b |"}},
	}
	for _, tt := range tests {
		for _, variant := range []string{tt.doc, tt.doc + " (CRLF)"} {
			text := docs[variant]
			starts := Split(text)
			var heads []string
			for _, s := range starts {
				line, _, _ := strings.Cut(text[s:], "\n")
				heads = append(heads, strings.TrimSuffix(line, "\r"))
			}
			if len(heads) != len(tt.wantHead) {
				t.Errorf("%s: %d blocks %q, want %d", variant, len(heads), heads, len(tt.wantHead))
				continue
			}
			for i, h := range heads {
				if !strings.HasPrefix(h, tt.wantHead[i]) {
					t.Errorf("%s: block %d starts with %q, want prefix %q", variant, i, h, tt.wantHead[i])
				}
			}
		}
	}
}

func FuzzSplitPrefixStable(f *testing.F) {
	for _, s := range randomMarkdown(2, 20) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkPrefixStable(t, "fuzz", text)
	})
}
