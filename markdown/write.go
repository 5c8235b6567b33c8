package markdown

// Writing Markdown, for transcripts: an answer closed so that what follows
// it stands alone (Closed), text shown exactly as written (Literal), and a
// line of text inside Markdown (Inline).

import (
	"strings"

	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
)

// Closed returns text with a line added, when it needs one, that closes
// what it leaves open: written after a blank line, Markdown that follows
// then starts blocks of its own. An answer stopped or cut off inside a
// fenced code block (or an HTML comment, <pre>, ...) would otherwise take
// every later message of a transcript into that block; the page shows it
// ended at the answer's end, and so does the text Closed returns.
//
// ok is false when no closing line helps (none is known to exist): the
// caller must then keep the text away from what follows some other way.
func Closed(text string) (closed string, ok bool) {
	// Only the blocks matter: no inline parsing, which costs more than the
	// blocks on hostile text and cannot open anything a blank line does
	// not end.
	p := parser.NewParser(parser.WithBlockParsers(guardedBlockParsers()...))
	if endsFree(p, text) {
		return text, true
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	for _, c := range closers(text) {
		if endsFree(p, text+c) {
			return text + c, true
		}
	}
	return "", false
}

// endOfText is a paragraph put after a text to see whether it stands alone.
const endOfText = "parley-end-of-text"

// endsFree reports whether a paragraph written after text and a blank line
// is a top-level paragraph of its own (and not the content of a block that
// text left open).
func endsFree(p parser.Parser, src string) bool {
	b := []byte(src + "\n\n" + endOfText + "\n")
	last := p.Parse(text.NewReader(b)).LastChild()
	if last == nil || last.Kind() != ast.KindParagraph || last.Lines().Len() != 1 {
		return false
	}
	line := last.Lines().At(0)
	return strings.TrimSpace(string(line.Value(b))) == endOfText
}

// closers are the lines that may close what a text leaves open at its top
// level, in the order to try them: a fence of the text's longest run of '`'
// and of '~' (at least as long as any fence it opened), then the ends of
// the CommonMark HTML blocks that a blank line does not end (types 1-5:
// any of </script>, </pre>, </style>, </textarea> ends type 1, whichever
// opened it; "-->", "?>" and "]]>" also end type 4, which ends at any '>').
func closers(text string) []string {
	var out []string
	for _, c := range []string{"`", "~"} {
		if n := longestRun(text, c[0]); n >= 3 {
			out = append(out, strings.Repeat(c, n)+"\n")
		}
	}
	return append(out, "-->\n", "?>\n", "]]>\n", "</script>\n")
}

// longestRun is the length of the longest run of c in s.
func longestRun(s string, c byte) int {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] != c {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	return longest
}

// Literal returns text as a fenced code block that shows it exactly as
// written: the fence is longer than any run of '`' in text, so no line of it
// can end the block, and nothing in it is Markdown.
func Literal(text string) string {
	fence := strings.Repeat("`", max(3, longestRun(text, '`')+1))
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return fence + "\n" + text + fence + "\n"
}

// Inline returns s as text for a line of Markdown (a heading, a label,
// inside emphasis): its whitespace, line breaks included, collapsed to
// single spaces and the characters that could start markup (emphasis,
// code, links, HTML, entities, heading marks) escaped with a backslash.
func Inline(s string) string {
	var b strings.Builder
	for i, w := range strings.Fields(s) {
		if i > 0 {
			b.WriteByte(' ')
		}
		for _, r := range w {
			if strings.ContainsRune(inlineMarkup, r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// inlineMarkup are the ASCII punctuation characters Inline escapes.
const inlineMarkup = "\\`*_[]<>#~&|!"
