package handlers

import (
	"mime"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAttachmentNames: a download's file name comes from the title, plain
// ASCII in filename and UTF-8 in filename* (which a parser reads back),
// with nothing a header or a file system takes for syntax, and the ID when
// the title leaves nothing.
func TestAttachmentNames(t *testing.T) {
	t.Parallel()
	const id = "4ybt7s6jlttnt377tm26efhexm"
	tests := []struct{ title, ascii, name string }{
		{"Tea and cakes", "Tea and cakes", "Tea and cakes"},
		{"Café: notes/2026?", "Caf notes-2026", "Café notes-2026"},
		{"", "conversation-" + id, "conversation-" + id},
		{"日本語", "conversation-" + id, "日本語"},
		{"日本語 notes", "notes", "日本語 notes"},
		{`a"b\c`, "a-b-c", "a-b-c"},
		{"..hidden. ", "hidden", "hidden"},
		{"x\r\nContent-Type: text/html", "x-Content-Type text-html", "x-Content-Type text-html"},
		{strings.Repeat("long ", 40), strings.TrimSpace(strings.Repeat("long ", 16)), strings.TrimSpace(strings.Repeat("long ", 16))},
		{"bad \xff byte", "bad byte", "bad byte"},
	}
	for _, tc := range tests {
		h := attachment(tc.title, id, ".md")
		for i := 0; i < len(h); i++ {
			if h[i] < ' ' || h[i] > '~' {
				t.Errorf("title %q: header %q has byte %#x", tc.title, h, h[i])
			}
		}
		if !strings.Contains(h, `filename="`+tc.ascii+`.md"`) {
			t.Errorf("title %q: header %q, want filename %q", tc.title, h, tc.ascii+".md")
		}
		disp, params, err := mime.ParseMediaType(h)
		if err != nil || disp != "attachment" || params["filename"] != tc.name+".md" {
			t.Errorf("title %q: header %q reads as %q %q (%v), want filename %q", tc.title, h, disp, params, err, tc.name+".md")
		}
		if n := utf8.RuneCountInString(tc.name); n > maxFilenameRunes {
			t.Errorf("title %q: name of %d runes", tc.title, n)
		}
	}
}
