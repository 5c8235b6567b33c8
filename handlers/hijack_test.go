package handlers_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/store"
)

// TestStreamsLeaveNetHTTPOnHTTP1 checks that live streams over HTTP/1.1
// are served on their hijacked connection by Parley's own writer (the
// hub counts them as detached), with the headers they had on net/http and
// a chunked body, and that a client leaving frees its place at once,
// well before the 15 s heartbeat would have noticed; and that over HTTP/2
// the stream stays on net/http.
func TestStreamsLeaveNetHTTPOnHTTP1(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "hijacked")
	a.waitStatus(t, conv, 1, store.StatusDone)
	_, cursor := a.page(t, conv)

	res, cancel := a.events(t, conv, cursor)
	defer cancel()
	side, cancelSide := a.sidebarStream(t)
	defer cancelSide()
	for _, r := range []*http.Response{res, side} {
		checkStreamHead(t, r)
		if !r.Close || len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" || r.ProtoMajor != 1 {
			t.Errorf("%s: close %t, transfer encoding %v, protocol %s: want a chunked HTTP/1.1 body on a connection that closes",
				r.Request.URL.Path, r.Close, r.TransferEncoding, r.Proto)
		}
	}
	// Go's client asked for gzip and decoded it: the stream was gzip.
	if !res.Uncompressed {
		t.Error("the conversation stream was not gzip-encoded")
	}
	if err := readSSE(res.Body, func(sseEvent) bool { return false }); err != nil {
		t.Fatalf("first event: %v", err)
	}
	waitFor(t, "two detached streams", func() bool { return a.Hub.Stats().Detached == 2 })

	cancel()
	cancelSide()
	waitFor(t, "the streams of a client that left to end", func() bool {
		s := a.Hub.Stats()
		return s.Detached == 0 && s.Viewers == 0
	})

	// HTTP/2: the same server, over TLS.
	ts := httptest.NewUnstartedServer(handlers.NewServer(a.Deps))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	ctx, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/c/"+conv+"/events?after="+cursor, nil)
	res2, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	if res2.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", res2.Proto)
	}
	checkStreamHead(t, res2)
	if err := readSSE(res2.Body, func(sseEvent) bool { return false }); err != nil {
		t.Fatalf("first event over HTTP/2: %v", err)
	}
	if s := a.Hub.Stats(); s.Viewers != 1 || s.Detached != 0 {
		t.Errorf("over HTTP/2: %d viewers, %d detached; want 1 on net/http", s.Viewers, s.Detached)
	}
}

// checkStreamHead checks the headers every live stream response has.
func checkStreamHead(t *testing.T, r *http.Response) {
	t.Helper()
	want := map[string]string{
		"Content-Type":           "text/event-stream",
		"Cache-Control":          "no-cache, no-transform",
		"X-Accel-Buffering":      "no",
		"X-Content-Type-Options": "nosniff",
	}
	if r.StatusCode != http.StatusOK {
		t.Errorf("%s: status %d", r.Request.URL.Path, r.StatusCode)
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s: %s is %q, want %q", r.Request.URL.Path, k, got, v)
		}
	}
}

// sidebarStream opens the browser's sidebar stream.
func (a *app) sidebarStream(t *testing.T) (*http.Response, context.CancelFunc) {
	t.Helper()
	return a.stream(t, "/sidebar/events")
}

// TestHijackedStreamOverHTTP10: an HTTP/1.0 client cannot read chunks, so
// its hijacked stream is the bare event stream, ended by closing the
// connection; a new message reaches it, and its leaving frees the place.
func TestHijackedStreamOverHTTP10(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "[[echo]]old client")
	a.waitStatus(t, conv, 1, store.StatusDone)
	_, cursor := a.page(t, conv)

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(a.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET /c/" + conv + "/events?after=" + cursor + " HTTP/1.0\r\nHost: parley\r\nDatastar-Request: true\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkStreamHead(t, res)
	if len(res.TransferEncoding) != 0 || !res.Close || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("transfer encoding %v, close %t, content encoding %q: want a plain body that ends with the connection",
			res.TransferEncoding, res.Close, res.Header.Get("Content-Encoding"))
	}
	waitFor(t, "the HTTP/1.0 stream to be detached", func() bool { return a.Hub.Stats().Detached == 1 })

	// A new exchange's answer arrives in the bare stream.
	if r := a.post(t, conv, "[[echo]]second words", store.NewID()); r.StatusCode != http.StatusOK {
		t.Fatalf("post: %d", r.StatusCode)
	}
	var seen bool
	if err := readSSE(res.Body, func(e sseEvent) bool {
		seen = strings.Contains(strings.Join(e.Data, "\n"), "second words")
		return !seen
	}); err != nil || !seen {
		t.Fatalf("the new message did not reach the HTTP/1.0 stream (err %v)", err)
	}

	conn.Close()
	waitFor(t, "the HTTP/1.0 client's place to be freed", func() bool {
		s := a.Hub.Stats()
		return s.Detached == 0 && s.Viewers == 0
	})
}
