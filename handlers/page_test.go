package handlers_test

import (
	"bytes"
	"compress/gzip"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/store"
)

// TestRefusalsGiveTheTextBack posts without JavaScript (plain forms) and has
// each post refused: the page that answers holds the typed text in a form
// that sends it again, with the reason, and Retry-After where there is a
// wait. The home form's refusal is the home page again, text kept.
func TestRefusalsGiveTheTextBack(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.gen.Limits.PostsPerMinute = 2
		c.limits.MaxMessageBytes = 100
	})
	conv := a.create(t, "[[echo]]first")
	a.waitStatus(t, conv, 1, store.StatusDone)

	plain := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		res, err := a.Client.PostForm(a.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res, html.UnescapeString(string(body))
	}
	long := strings.Repeat("too long ", 20)
	res, body := plain("/c/"+conv+"/messages", url.Values{"text": {long}, "key": {store.NewID()}})
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a long message got %d", res.StatusCode)
	}
	for _, want := range []string{`action="/c/` + conv + `/messages"`, `name="key"`, ">" + long + "</textarea>", "the limit is 100 bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("the refusal of a long message lacks %q:\n%s", want, body)
		}
	}

	// The second post is the browser's second a minute: the third is refused.
	if res, _ := plain("/c/"+conv+"/messages", url.Values{"text": {"[[echo]]two"}, "key": {store.NewID()}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the second post got %d", res.StatusCode)
	}
	a.waitStatus(t, conv, 3, store.StatusDone)
	res, body = plain("/c/"+conv+"/messages", url.Values{"text": {"three, kept"}, "key": {store.NewID()}})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("the third post got %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if !strings.Contains(body, ">three, kept</textarea>") || !strings.Contains(body, "Try again in") {
		t.Errorf("the 429 page does not give the text back with the wait:\n%s", body)
	}

	// The refused form keeps its offer: sending it again is the same post.
	offer, _ := a.offer(t, a.Client)
	res, body = plain("/c", url.Values{"conv": {offer}, "text": {"a new one, kept"}})
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the home form's post got %d", res.StatusCode)
	}
	for _, want := range []string{`action="/c"`, `name="conv" value="` + offer + `"`, ">a new one, kept</textarea>", "Try again in"} {
		if !strings.Contains(body, want) {
			t.Errorf("the home form's refusal lacks %q:\n%s", want, body)
		}
	}
}

// TestCreateWithDatastar: the home form posted by Datastar answers with a
// signal that sends the page to the new conversation; refused, it patches
// the composer's error line only (so the text stays in the box).
func TestCreateWithDatastar(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.limits.MaxMessageBytes = 100 })
	offer, id := a.offer(t, a.Client)
	code, body := a.action(t, a.Client, "/c", url.Values{"conv": {offer}, "text": {"[[echo]]hello"}})
	if code != http.StatusOK || !strings.Contains(body, "datastar-merge-signals") || !strings.Contains(body, `{go: "/c/`+id+`"}`) {
		t.Fatalf("create with Datastar: %d\n%s", code, body)
	}
	a.waitStatus(t, id, 1, store.StatusDone)
	code, body = a.action(t, a.Client, "/c", url.Values{"text": {strings.Repeat("x", 200)}})
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, `id="composer-error"`) || strings.Contains(body, "<textarea") {
		t.Errorf("a refused create with Datastar: %d\n%s", code, body)
	}
}

// TestAnswerSource serves an answer's Markdown as the model wrote it, to
// whoever may read the conversation, for its Copy button.
func TestAnswerSource(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	const md = "# Title\n\n- *one*\n- `two`" // a message ends with no white space (forms.go)
	conv := a.create(t, "[[echo]]"+md)
	a.waitStatus(t, conv, 1, store.StatusDone)
	stranger := a.NewBrowser()
	for path, want := range map[string]int{
		"/c/" + conv + "/markdown/1":                    200,
		"/c/" + conv + "/markdown/0":                    200,
		"/c/" + conv + "/markdown/7":                    404,
		"/c/" + conv + "/markdown/-1":                   404,
		"/c/" + conv + "/markdown/x":                    404,
		"/c/" + strings.Repeat("a", 26) + "/markdown/1": 404,
	} {
		res, err := stranger.Get(a.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
		if path == "/c/"+conv+"/markdown/1" {
			if string(body) != md || res.Header.Get("Content-Type") != "text/markdown; charset=utf-8" {
				t.Errorf("the answer's source is %q (%s), want %q", body, res.Header.Get("Content-Type"), md)
			}
		}
	}
}

// TestFavicon: /favicon.ico leads to the content-hashed SVG icon the pages
// link, so that no page logs a 404.
func TestFavicon(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	res, err := a.Client.Get(a.URL + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "/static/favicon.") {
		t.Fatalf("/favicon.ico: %d to %q", res.StatusCode, loc)
	}
	_, page := a.getPage(t, a.Client, "/")
	if !strings.Contains(page, `<link rel="icon" type="image/svg+xml" href="`+loc+`">`) {
		t.Errorf("the home page does not link the icon %s", loc)
	}
	res, err = a.Client.Get(a.URL + loc)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("the icon: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"))
	}
}

// TestPagesAreGzipped: a conversation page goes out gzip-compressed to a
// client that takes it (every browser), whole and plain to one that does not.
func TestPagesAreGzipped(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "[[long 300]] a page worth compressing")
	a.waitStatus(t, conv, 1, store.StatusDone)
	a.waitNamed(t, conv)
	get := func(enc string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", a.URL+"/c/"+conv, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc) // set by hand: the transport then leaves the body alone
		}
		res, err := a.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res, body
	}
	res, plainBody := get("identity")
	if res.Header.Get("Content-Encoding") != "" || !strings.Contains(string(plainBody), `id="m-1"`) {
		t.Fatalf("without gzip: encoding %q, %d bytes", res.Header.Get("Content-Encoding"), len(plainBody))
	}
	res, zipped := get("gzip, deflate, br")
	if res.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("with gzip: encoding %q, vary %q", res.Header.Get("Content-Encoding"), res.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// The page names a fresh composer key each time; the rest is the same.
	key := regexp.MustCompile(`name="key" value="[a-z2-7]+"`)
	if key.ReplaceAllString(string(unzipped), "") != key.ReplaceAllString(string(plainBody), "") {
		t.Errorf("the gzipped page differs from the plain one")
	}
	if len(zipped)*3 > len(plainBody) {
		t.Errorf("the page compressed to %d of %d bytes", len(zipped), len(plainBody))
	}
	t.Logf("page: %d bytes, gzipped %d", len(plainBody), len(zipped))
}

// TestLongNonLatinMessage: the message forms post multipart, so a message
// just under the message limit in a script of three bytes a character is
// taken, not refused by the body limit that URL-encoding would triple it
// past.
func TestLongNonLatinMessage(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.limits.MaxMessageBytes = 32 << 10
		c.limits.MaxBodyBytes = 64 << 10
	})
	_, home := a.getPage(t, a.Client, "/")
	if !strings.Contains(home, `enctype="multipart/form-data" action="/c"`) {
		t.Fatalf("the home form does not post multipart")
	}
	text := "[[echo]]" + strings.Repeat("漢", 10_000) // 30,008 bytes
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("text", text)
	_ = mw.Close()
	res, err := a.Client.Post(a.URL+"/c", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("30,000 bytes of CJK text: status %d", res.StatusCode)
	}
}
