package markdown

import (
	"bytes"
	"html"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
)

// oracle is plain goldmark (CommonMark and strikethrough, no guards): an
// independent judge of what a Markdown reader makes of the text.
func oracle() goldmark.Markdown {
	return goldmark.New(goldmark.WithExtensions(extension.Strikethrough))
}

// standsAlone reports whether a paragraph written after src and a blank
// line is a top-level paragraph of its own.
func standsAlone(src string) bool {
	b := []byte(src + "\n\nAFTER\n")
	last := oracle().Parser().Parse(text.NewReader(b)).LastChild()
	if last == nil || last.Kind() != ast.KindParagraph || last.Lines().Len() != 1 {
		return false
	}
	line := last.Lines().At(0)
	return strings.TrimSpace(string(line.Value(b))) == "AFTER"
}

// TestClosed: whatever an answer leaves open (a fence of either kind, an
// HTML block that a blank line does not end), Closed adds one line after
// it and what follows stands alone; text that is closed is kept as it is.
func TestClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		added     string // the line Closed adds; "" for none
	}{
		{"prose", "Some *text*.", ""},
		{"closed fence", "```go\nx := 1\n```\n", ""},
		{"open fence", "Here:\n\n```go\nfunc f() {", "```\n"},
		{"open fence with a longer run inside", "````\n```\nnot the end", "````\n"},
		{"open tilde fence", "~~~python\nprint(1)\n", "~~~\n"},
		{"tilde fence holding backticks", "~~~~\n```\n", "~~~~\n"},
		{"fence in a list item", "- item\n\n  ```\n  code", ""},
		{"fence in a quote", "> ```\n> code", ""},
		{"open comment", "Text\n\n<!-- a note", "-->\n"},
		{"open pre", "<pre>\nkept", "</script>\n"},
		{"open textarea", "<textarea>\nkept", "</script>\n"},
		{"open script", "<script>\nlet x", "</script>\n"},
		{"open processing instruction", "<?php echo 1;", "?>\n"},
		{"open CDATA", "<![CDATA[ raw", "]]>\n"},
		{"open declaration", "<!DOCTYPE x", "-->\n"},
		{"open fence, CRLF", "```\r\ncode\r\n", "```\n"},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		got, ok := Closed(tc.src)
		if !ok {
			t.Errorf("%s: Closed(%q) found no closing line", tc.name, tc.src)
			continue
		}
		want := tc.src
		if tc.added != "" {
			if !strings.HasSuffix(want, "\n") {
				want += "\n"
			}
			want += tc.added
		}
		if got != want {
			t.Errorf("%s: Closed(%q) = %q, want %q", tc.name, tc.src, got, want)
		}
		if !standsAlone(got) {
			t.Errorf("%s: what follows %q does not stand alone", tc.name, got)
		}
	}
}

// TestClosedEveryPrefix: an answer stopped at any byte, from the corpus
// of realistic answers or random Markdown, is closed by Closed (as the
// plain goldmark parser judges it) and only added to.
func TestClosedEveryPrefix(t *testing.T) {
	t.Parallel()
	docs := randomMarkdown(7, 400)
	for _, doc := range corpus(t) {
		for cut := 0; cut < len(doc); cut += 97 {
			docs = append(docs, doc[:cut])
		}
	}
	for _, src := range docs {
		got, ok := Closed(src)
		if !ok {
			t.Errorf("Closed(%q) found no closing line", src)
			continue
		}
		if !strings.HasPrefix(got, src) || !standsAlone(got) {
			t.Errorf("Closed(%q) = %q: changed the text or does not close it", src, got)
		}
	}
}

// TestLiteral: any text, fences and markup included, comes back exactly
// from the code block Literal makes, and what follows stands alone.
func TestLiteral(t *testing.T) {
	t.Parallel()
	texts := append(randomMarkdown(3, 400),
		"```\nclose?\n```", "````", "~~~\n", "**Assistant**\n\n# Heading", "<!-- x", "    ```", "a\n\n\n\nb", "` `` ```` `````")
	for _, doc := range corpus(t) {
		texts = append(texts, doc)
	}
	for _, s := range texts {
		lit := Literal(s)
		b := []byte(lit)
		doc := oracle().Parser().Parse(text.NewReader(b))
		code, ok := doc.FirstChild().(*ast.FencedCodeBlock)
		if !ok || doc.ChildCount() != 1 {
			t.Errorf("Literal(%q) = %q is not one code block", s, lit)
			continue
		}
		var got bytes.Buffer
		for i := range code.Lines().Len() {
			seg := code.Lines().At(i)
			got.Write(seg.Value(b))
		}
		want := s
		if want != "" && !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		// CommonMark reads "\r\n" and a lone "\r" as line endings; the
		// parser gives lines back with the "\r" kept.
		if got.String() != want {
			t.Errorf("Literal(%q) reads back as %q", s, got.String())
		}
		if !standsAlone(lit) {
			t.Errorf("what follows Literal(%q) does not stand alone", s)
		}
	}
}

// TestInline: text with markup in it shows as that text in a heading,
// with no element but the heading.
func TestInline(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"plain", "*em* _em_ **strong** `code` ~~gone~~", "[link](http://x) ![img](y)", "<b>bold</b> <!-- c -->",
		"&amp; &#60; &copy;", "Title #", "C# and F#", `back\slash\*`, "a\nb\r\nc  d\t e", "| a | b |",
		"1. not a list", "<http://auto.link>", "\\", "***", "",
	} {
		var out bytes.Buffer
		if err := oracle().Convert([]byte("# "+Inline(s)), &out); err != nil {
			t.Fatal(err)
		}
		inner, ok := strings.CutPrefix(strings.TrimSpace(out.String()), "<h1>")
		inner, ok2 := strings.CutSuffix(inner, "</h1>")
		if s == "" {
			ok, ok2, inner = true, true, strings.TrimPrefix(strings.TrimSpace(out.String()), "<h1></h1>")
		}
		if !ok || !ok2 || strings.Contains(inner, "<") {
			t.Errorf("Inline(%q) renders as %q: markup got through", s, out.String())
			continue
		}
		if want := strings.Join(strings.Fields(s), " "); html.UnescapeString(inner) != want {
			t.Errorf("Inline(%q) reads %q, want %q", s, html.UnescapeString(inner), want)
		}
	}
}
