package handlers

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzReadMessage feeds the message form of a post (urlencoded, multipart,
// or anything else a client may claim) to readMessage. It must never panic,
// and it either returns a message that respects every rule (UTF-8, not
// blank, within the size limit, no CR LF) or an error a person can read,
// with a 400 or 413.
//
// The cursor a stream resumes from (Last-Event-ID, or ?after) is parsed by
// store.ParseID alone: FuzzParseID covers it.
func FuzzReadMessage(f *testing.F) {
	for _, s := range []struct {
		kind int // 0 urlencoded, 1 multipart, 2 another content type
		body string
	}{
		{0, "text=hello&key=abc"},
		{0, "text=%E2%9C%93+%0D%0Aline"},
		{0, "text=%ff%fe"},
		{0, "text=+++&text=second"},
		{0, "text=" + strings.Repeat("a", 300)},
		{0, "text=%zz"},
		{0, "a=1;b=2"},
		{1, "--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi there\r\n--B--\r\n"},
		{1, "--B\r\nContent-Disposition: form-data; name=\"text\"; filename=\"x\"\r\n\r\nfile\r\n--B--\r\n"},
		{1, "--B\r\n\r\n--B"},
		{2, "text=hello"},
		{2, ""},
	} {
		f.Add(s.kind, s.body)
	}
	d := Deps{Limits: Limits{MaxMessageBytes: 200, MaxBodyBytes: 400}}
	f.Fuzz(func(t *testing.T, kind int, body string) {
		r := httptest.NewRequest("POST", "/c/x/messages", strings.NewReader(body))
		switch kind % 3 {
		case 0:
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case 1:
			r.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		default:
			r.Header.Set("Content-Type", "text/plain")
		}
		text, err := readMessage(d, httptest.NewRecorder(), r)
		if r.MultipartForm != nil {
			_ = r.MultipartForm.RemoveAll()
		}
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a request error", err)
			}
			if re.status != http.StatusBadRequest && re.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for %v", re.status, err)
			}
			if re.msg == "" || !utf8.ValidString(re.msg) {
				t.Fatalf("unreadable message %q", re.msg)
			}
			return
		}
		switch {
		case !utf8.ValidString(text):
			t.Fatalf("accepted invalid UTF-8: %q", text)
		case strings.TrimSpace(text) == "":
			t.Fatalf("accepted a blank message: %q", text)
		case len(text) > d.Limits.MaxMessageBytes:
			t.Fatalf("accepted %d bytes over the %d limit", len(text), d.Limits.MaxMessageBytes)
		case strings.Contains(text, "\r\n"):
			t.Fatalf("kept a CR LF: %q", text)
		case strings.HasPrefix(text, "\n") || strings.TrimRightFunc(text, unicode.IsSpace) != text:
			t.Fatalf("kept a leading blank line or trailing white space: %q", text)
		case len(body) > int(d.Limits.MaxBodyBytes):
			t.Fatalf("accepted a %d-byte body over the %d limit", len(body), d.Limits.MaxBodyBytes)
		}
	})
}

func TestTrimBlankLines(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"\n\n  \nhello\n\n":           "hello",
		"    indented code\n  more\n": "    indented code\n  more",
		"a\n\n\nb":                    "a\n\n\nb",
		"only":                        "only",
		" \n\t\n":                     "",
	} {
		if got := trimBlankLines(in); got != want {
			t.Errorf("trimBlankLines(%q) = %q, want %q", in, got, want)
		}
	}
}
