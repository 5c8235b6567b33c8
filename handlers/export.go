package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/transcript"
)

// exportFormat is a kind of download of a conversation.
type exportFormat struct {
	ext         string // the file name's extension, with its dot
	contentType string
	encode      func(*store.Tree) ([]byte, error)
}

// markdownExport is the selected path, to read (transcript.Markdown).
func markdownExport() exportFormat {
	return exportFormat{".md", "text/markdown; charset=utf-8",
		func(t *store.Tree) ([]byte, error) { return transcript.Markdown(t), nil }}
}

// jsonExport is the whole tree, to keep (transcript.JSON, docs/export.md).
func jsonExport() exportFormat {
	return exportFormat{".json", "application/json", transcript.JSON}
}

// handleExport serves GET /c/{id}/export.md and /c/{id}/export.json: the
// conversation as a file to download. Whoever may read its page may
// download it (access.Classify names both Shared).
func handleExport(d Deps, f exportFormat) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !store.ValidConversationID(id) {
			notFound(d, w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		// A whole tree is read in one script: each download counts as an
		// action, so that nobody with the link can keep Redis busy with them.
		if err := countRead(ctx, d, askerOf(d, r)); err != nil {
			respond(d, w, r, "/c/"+id, err, nil)
			return
		}
		tree, err := d.Store.Export(ctx, id)
		if readFailed(d, w, r, "export conversation", id, err, "Try the download again in a few seconds.") {
			return
		}
		body, err := f.encode(tree)
		if err != nil {
			d.Log.Error("export conversation", "conversation", id, "err", err)
			errorPage(d, w, r, http.StatusInternalServerError, "Download failed",
				"This conversation could not be written as a file. The page still shows it.")
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Content-Disposition", attachment(tree.Title, id, f.ext))
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		// A failed write means the client went away; there is nobody to tell.
		_, _ = w.Write(body)
	})
}

// maxFilenameRunes bounds the name part of a download's file name.
const maxFilenameRunes = 80

// attachment is the Content-Disposition of a download named after the
// conversation's title: filename is a plain ASCII fallback for old
// clients, filename* (RFC 5987) the title in UTF-8, both without anything
// a file system or a header could take for syntax. An untitled
// conversation, or one whose title leaves nothing, is named by its ID.
func attachment(title, id, ext string) string {
	name := fileName(title, func(r rune) bool { return unicode.IsPrint(r) })
	ascii := fileName(name, func(r rune) bool {
		return r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" -_.,()+", r))
	})
	if name == "" {
		name = "conversation-" + id
	}
	if ascii == "" {
		ascii = "conversation-" + id
	}
	return fmt.Sprintf(`attachment; filename="%s%s"; filename*=UTF-8''%s%s`, ascii, ext, encodeRFC5987(name), ext)
}

// fileName keeps the runes of s that keep allows, except the ones file
// systems refuse in a name; a run of the others between two words becomes
// one '-' ("a/b" is "a-b", "Café au lait" "Caf au lait"), and spaces in a
// row one space. The result has no leading or trailing space, dot or dash
// (a hidden file, a name Windows trims) and at most maxFilenameRunes runes.
func fileName(s string, keep func(rune) bool) string {
	var b strings.Builder
	n, dropped, last := 0, false, ' '
	for _, r := range s {
		if n >= maxFilenameRunes {
			break
		}
		if r == utf8.RuneError || !keep(r) || strings.ContainsRune(`/\:*?"<>|`, r) {
			dropped = true
			continue
		}
		if r == ' ' && last == ' ' {
			continue
		}
		if dropped && last != ' ' && last != '-' && r != ' ' && r != '-' {
			b.WriteByte('-')
			n++
		}
		dropped, last = false, r
		b.WriteRune(r)
		n++
	}
	return strings.Trim(b.String(), " .-")
}

// encodeRFC5987 percent-encodes s as an RFC 5987 value: attr-char bytes
// stay, every other byte of its UTF-8 is %XX.
func encodeRFC5987(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)) || strings.IndexByte("!#$&+-.^_`|~", c) >= 0) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
