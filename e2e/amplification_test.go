package e2e_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/procs"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

// TestHostileInputCostsBoundedMemoryAndCPU is an attacker's visit measured
// on the real binary: a conversation of ten messages of 32,000 '>' (which
// Markdown once rendered 27 times bigger: a 9.9 MB page, and 268 MiB of RSS
// for one viewer's catch-up), loaded as pages and caught up by viewers
// without gzip; then page loads repeated while an answer streams a 15 KB
// code block (each load once re-highlighted the whole block: 0.13 s of CPU
// apiece). The process's peak RSS and CPU time are read from the kernel.
//
// Not parallel: it bounds CPU time per page load, and a page load's share of
// the stream's own work grows when other tests slow the loads down.
func TestHostileInputCostsBoundedMemoryAndCPU(t *testing.T) {
	srv := testredis.Start(t)
	p := startAll(t, env(srv.URL(), harness.Speed{TPS: 400, Tokens: 100}), "hostile")[0]
	st := redisStore(t, srv)
	c := newVisitor(t)

	hostile := "[[echo]]" + strings.Repeat(">", 32_000)
	conv := c.create(t, p.URL, hostile)
	harness.WaitUntil(t, "the first answer", 30*time.Second, func() bool { return stored(t, st, conv, 1).Status == store.StatusDone })
	for i := 1; i < 5; i++ {
		c.post(t, p.URL, conv, hostile)
		harness.WaitUntil(t, "an answer", 30*time.Second, func() bool { return stored(t, st, conv, 2*i+1).Status == store.StatusDone })
	}

	before := usage(t, p)
	var plain, zipped int
	for range 5 {
		plain = len(c.get(t, p.URL+"/c/"+conv, "identity"))
		zipped = len(c.get(t, p.URL+"/c/"+conv, "gzip"))
	}
	for range 5 {
		c.catchUp(t, p.URL, conv)
	}
	after := usage(t, p)
	t.Logf("10 x 32,000 '>': page %d bytes (%d gzipped); peak RSS %d MiB before the loads, %d MiB after 10 page loads and 5 catch-ups without gzip",
		plain, zipped, before.PeakRSS>>20, after.PeakRSS>>20)
	if plain > 8*10*32_000 {
		t.Errorf("the page is %d bytes for 320,000 bytes of messages", plain)
	}
	if after.PeakRSS > 160<<20 {
		t.Errorf("peak RSS %d MiB: the hostile conversation still amplifies memory", after.PeakRSS>>20)
	}

	// Page loads while a 15 KB code block streams.
	var code strings.Builder
	for i := 0; code.Len() < 15_000; i++ {
		fmt.Fprintf(&code, "def method_%d(x)\n  x.map { |v| v * %d } # note %d\nend\n", i, i, i)
	}
	c.post(t, p.URL, conv, "[[echo]]```ruby\n"+code.String()+"```\n")
	harness.WaitUntil(t, "the code answer to stream", 30*time.Second, func() bool {
		m := stored(t, st, conv, 11)
		return m.Status == store.StatusStreaming
	})
	cpu0 := usage(t, p).CPU
	loads := 0
	for stored(t, st, conv, 11).Status == store.StatusStreaming && loads < 40 {
		c.get(t, p.URL+"/c/"+conv, "gzip")
		loads++
	}
	spent := usage(t, p).CPU - cpu0
	if loads < 10 {
		t.Fatalf("only %d page loads happened while the code streamed: slow the demo model", loads)
	}
	t.Logf("%d page loads during a streamed 15 KB code block: %v of process CPU (%v a load, the stream's own work included)", loads, spent, spent/time.Duration(loads))
	if per := spent / time.Duration(loads); per > 40*time.Millisecond {
		t.Errorf("a page load during a streamed code block costs %v of CPU", per)
	}
}

func usage(t *testing.T, p *procs.Proc) procs.Usage {
	t.Helper()
	u, err := p.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// visitor is one browser without JavaScript: a cookie jar, and redirects
// left to the test.
type visitor struct{ c *http.Client }

func newVisitor(t *testing.T) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var homeOffer = regexp.MustCompile(`name="conv" value="([^"]+)"`)

// create posts the home form (multipart, as the page does) and returns the
// new conversation's ID.
func (v *visitor) create(t *testing.T, base, text string) string {
	t.Helper()
	m := homeOffer.FindStringSubmatch(string(v.get(t, base+"/", "")))
	if m == nil {
		t.Fatal("the home page has no conversation offer")
	}
	res := v.form(t, base+"/c", map[string]string{"conv": m[1], "text": text}, false)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/c/") {
		t.Fatalf("create: %d to %q", res.StatusCode, loc)
	}
	return strings.TrimPrefix(loc, "/c/")
}

// post sends the next message as the page's Datastar form does.
func (v *visitor) post(t *testing.T, base, conv, text string) {
	t.Helper()
	res := v.form(t, base+"/c/"+conv+"/messages", map[string]string{"key": store.NewID(), "text": text}, true)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("post: %d", res.StatusCode)
	}
}

func (v *visitor) form(t *testing.T, url string, fields map[string]string, datastar bool) *http.Response {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, val := range fields {
		_ = mw.WriteField(k, val)
	}
	_ = mw.Close()
	req, _ := http.NewRequest("POST", url, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if datastar {
		req.Header.Set("Datastar-Request", "true")
	}
	res, err := v.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// get returns a body as sent, asking for encoding ("" lets Go's transport
// choose and decode).
func (v *visitor) get(t *testing.T, url, encoding string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	res, err := v.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	return b
}

// catchUp opens the live stream from no cursor, without gzip, and reads it
// until the first presence signal, which follows the catch-up.
func (v *visitor) catchUp(t *testing.T, base, conv string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/c/"+conv+"/events", nil)
	req.Header.Set("Datastar-Request", "true")
	req.Header.Set("Accept-Encoding", "identity")
	res, err := v.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "watching:") {
			return
		}
	}
	t.Fatalf("the stream ended before its catch-up did: %v", sc.Err())
}
