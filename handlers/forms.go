package handlers

import (
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// isDatastar reports whether the request came from the Datastar client, which
// wants its answer as events that patch the page.
func isDatastar(r *http.Request) bool { return r.Header.Get("Datastar-Request") == "true" }

// readMessage reads and checks the message text of a post. A refused text
// is returned with its error, so that the person can be given it back.
func readMessage(d Deps, w http.ResponseWriter, r *http.Request) (text string, err error) {
	if err := readForm(d, w, r); err != nil {
		return "", err
	}
	// Browsers send line breaks as CR LF; a lone CR is a line break too.
	// Every CR left goes in a second pass: the first makes "\r\r\n" a CR LF.
	typed := strings.ReplaceAll(strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n"), "\r", "\n")
	text = trimBlankLines(typed)
	switch {
	case !utf8.ValidString(text):
		return "", badRequest(http.StatusBadRequest, "The message is not valid UTF-8 text.")
	case strings.TrimSpace(text) == "":
		return "", badRequest(http.StatusBadRequest, "Type a message before sending.")
	case len(text) > d.Limits.MaxMessageBytes:
		// Given back as typed, to be shortened.
		return typed, badRequest(http.StatusRequestEntityTooLarge,
			"Your message is %s; the limit is %s. Shorten it or split it into several messages.",
			kb(len(text)), kb(d.Limits.MaxMessageBytes))
	}
	return text, nil
}

// trimBlankLines drops the blank lines a message starts with and the white
// space it ends with: pasted text often carries them, and its bubble showed
// them as an empty box. The first line's indentation stays (pasted code).
func trimBlankLines(s string) string {
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 || strings.TrimSpace(s[:i]) != "" {
			break
		}
		s = s[i+1:]
	}
	return strings.TrimRightFunc(s, unicode.IsSpace)
}

// readForm parses a form body within the request limit. Forms come
// urlencoded (plain HTML) or multipart (Datastar's form content type).
func readForm(d Deps, w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, d.Limits.MaxBodyBytes)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(d.Limits.MaxBodyBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return badRequest(http.StatusRequestEntityTooLarge,
				"The request is larger than %s. Shorten your message.", kb(int(d.Limits.MaxBodyBytes)))
		}
		return badRequest(http.StatusBadRequest, "The form could not be read (%v). Reload the page and try again.", err)
	}
	return nil
}
