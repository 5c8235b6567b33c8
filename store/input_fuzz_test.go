package store_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parley-chat/parley/store"
)

// FuzzCleanTitle feeds arbitrary rename forms (and model output, for
// generated titles) to CleanTitle: the result is valid UTF-8 on one line,
// within MaxTitleRunes, without the blanks and Markdown marks it trims, and
// cleaning it again changes nothing.
func FuzzCleanTitle(f *testing.F) {
	for _, s := range []string{
		"", "  ", "Hello", "\"**Quoted title**\"", "line one\nline two\ttab",
		strings.Repeat("word ", 40), strings.Repeat("é", 100), "\xff\xfe bad bytes",
		"#_`'*", "trailing, . ; : -" + strings.Repeat("x", 80), "a\u00a0b\u2028c", "\u200b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := store.CleanTitle(in)
		switch {
		case !utf8.ValidString(out):
			t.Fatalf("CleanTitle(%q) = %q: not UTF-8", in, out)
		case utf8.RuneCountInString(out) > store.MaxTitleRunes:
			t.Fatalf("CleanTitle(%q) has %d runes, over %d", in, utf8.RuneCountInString(out), store.MaxTitleRunes)
		case strings.ContainsAny(out, "\n\r\t"):
			t.Fatalf("CleanTitle(%q) = %q: not one line", in, out)
		case out != strings.TrimSpace(out):
			t.Fatalf("CleanTitle(%q) = %q: blanks at an end", in, out)
		}
		if again := store.CleanTitle(out); again != out {
			t.Fatalf("CleanTitle is not stable: %q -> %q -> %q", in, out, again)
		}
	})
}

// FuzzConversationID feeds arbitrary path and form values to
// ValidConversationID, which guards every key name built from them: what it
// accepts is exactly NewID's alphabet and length, so no key can be steered
// outside its conversation's hash tag.
func FuzzConversationID(f *testing.F) {
	for _, s := range []string{store.NewID(), "", "NOT-AN-ID", strings.Repeat("a", 26), strings.Repeat("a", 27),
		"{c:x}:meta" + strings.Repeat("a", 16), strings.Repeat("8", 26), strings.Repeat("A", 26)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !store.ValidConversationID(id) {
			return
		}
		if len(id) != 26 {
			t.Fatalf("accepted %q of length %d", id, len(id))
		}
		for _, c := range id {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz234567", c) {
				t.Fatalf("accepted %q with %q", id, c)
			}
		}
	})
}
