package handlers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/live"
)

// A live stream on HTTP/1.x leaves net/http once its response starts: the
// connection is hijacked and served by Parley's own goroutine and buffer.
// net/http would keep, for each idle viewer, its connection's read and
// write buffers, the request's header maps, a goroutine reading the
// connection and the serving goroutine with the whole handler chain on its
// stack: about 45 KiB, where the stream itself needs well under 1 KiB
// (BENCHMARKS.md, idle-10k). No goroutine reads a hijacked connection: a
// client that went away is noticed by the next write failing, which the
// heartbeats of a quiet stream bound. HTTP/2 streams (and connections that
// cannot be hijacked) stay on net/http.

// watchFunc is a hub's Watch or WatchSidebar with its other arguments bound.
type watchFunc func(ctx context.Context, open func() (live.Stream, error)) error

// watchOutcome is how a stream's Watch went, for its handler.
type watchOutcome struct {
	started  bool  // the response started (on net/http)
	detached bool  // the connection was hijacked: the handler must not touch it
	err      error // Watch's error, when not detached
}

// watchStream runs watch for a live stream request. On HTTP/1.x it runs it
// from another goroutine, so that the handler can return as soon as the
// stream starts on the hijacked connection, which live then writes from a
// goroutine of its own (live.DetachedStream; release is called when the
// stream ends). Until then the stream ends with the request; afterwards
// with the hub (shutdown, lost subscription) or its client (a failed
// write). Otherwise, and when the connection cannot be hijacked, the stream
// is on net/http as it always was.
func watchStream(w http.ResponseWriter, r *http.Request, gone *goneWatch, gzip bool, release func(), watch watchFunc) watchOutcome {
	var o watchOutcome
	openResponse := func() (live.Stream, error) {
		if gzip {
			frame.OpenGzip(w, r)
		} else {
			frame.Open(w, r, http.StatusOK)
		}
		o.started = true
		return responseStream{rc: http.NewResponseController(w), w: w, gzip: gzip}, nil
	}
	if r.ProtoMajor != 1 {
		o.err = watch(r.Context(), openResponse)
		return o
	}
	// The stream's own context: not the request's, which net/http cancels
	// when the handler returns, nor holding the request's values.
	ctx, cancel := context.WithCancel(context.Background())
	stopRequest := context.AfterFunc(r.Context(), cancel)
	done := make(chan watchOutcome, 1)
	go func() {
		defer cancel()
		detached := false
		err := watch(ctx, func() (live.Stream, error) {
			s, err := hijackStream(w, r, gzip)
			if err != nil {
				return openResponse()
			}
			stopRequest()
			s.release = release
			s.watch = gone
			gone.add(s)
			detached = true
			done <- watchOutcome{detached: true}
			return s, nil
		})
		if !detached {
			done <- watchOutcome{started: o.started, err: err}
		}
	}()
	return <-done
}

// streamEndTimeout bounds writing the end of a stream that ends cleanly.
const streamEndTimeout = 5 * time.Second

// chunkHead is the room kept before a stream's pending bytes for their
// chunk's size line (up to 8 hex digits and CRLF).
const chunkHead = 10

// chunkPool holds the buffers of streams between flushes: an idle stream
// holds none.
var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, chunkHead, 4<<10)
	return &b
}}

// maxPooledChunk is the largest buffer put back in chunkPool; a catch-up's
// events are up to 64 KiB.
const maxPooledChunk = 80 << 10

// connStream is a live stream on a hijacked HTTP/1.x connection: its
// writes are buffered until the next flush, which sends them as one chunk
// (or, for an HTTP/1.0 client, as they are: its body ends with the
// connection).
type connStream struct {
	conn    net.Conn
	gzip    bool
	chunked bool
	buf     *[]byte // pending bytes after chunkHead; nil between flushes
	err     error   // the first write that failed: every later one fails
	release func()  // gives the client address's stream place back

	watch    *goneWatch
	gone     chan struct{} // closed by markGone
	goneOnce sync.Once
}

// Gone implements live.DetachedStream.
func (s *connStream) Gone() <-chan struct{} { return s.gone }

// markGone says the client went away.
func (s *connStream) markGone() { s.goneOnce.Do(func() { close(s.gone) }) }

// hijackStream takes the connection of r from net/http and writes the
// head of a 200 event-stream response on it: the headers already set on w
// (security headers, cookies), the stream's, and a body in chunks, so that
// a clean end (the last chunk) differs from a cut connection, which makes
// the client reconnect. The connection is closed at the end either way.
func hijackStream(w http.ResponseWriter, r *http.Request, gzip bool) (*connStream, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	// A read deadline would make every peek at the socket (goneWatch) fail
	// once it passed: net/http clears its own when it hands the connection
	// over, and this does not depend on that.
	_ = conn.SetReadDeadline(time.Time{})
	s := &connStream{conn: conn, gzip: gzip, chunked: r.ProtoAtLeast(1, 1), gone: make(chan struct{})}
	h := w.Header().Clone()
	frame.StreamHeaders(h, gzip)
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	if s.chunked {
		h.Set("Transfer-Encoding", "chunked")
	}
	// The writer net/http hands over writes the head, and is dropped.
	bw := brw.Writer
	_, _ = bw.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(bw)
	_, _ = bw.WriteString("\r\n")
	s.err = flushHead(bw)
	return s, nil
}

func flushHead(bw *bufio.Writer) error {
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write a stream's head: %w", err)
	}
	return nil
}

// Gzip implements live.GzipStream.
func (s *connStream) Gzip() bool { return s.gzip }

func (s *connStream) Write(p []byte) error {
	if s.err != nil {
		return s.err
	}
	if s.buf == nil {
		s.buf = chunkPool.Get().(*[]byte)
		*s.buf = (*s.buf)[:chunkHead]
	}
	*s.buf = append(*s.buf, p...)
	return nil
}

// Flush sends what was written since the last flush, as one chunk.
func (s *connStream) Flush() error {
	if s.err != nil || s.buf == nil {
		return s.err
	}
	b := *s.buf
	out := b[chunkHead:]
	if s.chunked {
		size := strconv.AppendInt(make([]byte, 0, chunkHead), int64(len(b)-chunkHead), 16)
		size = append(size, '\r', '\n')
		start := chunkHead - len(size)
		copy(b[start:], size)
		b = append(b, '\r', '\n')
		out = b[start:]
	}
	if len(b) > chunkHead {
		if _, err := s.conn.Write(out); err != nil {
			s.err = err
		}
	}
	s.putBuf()
	return s.err
}

// putBuf gives the pending buffer back to the pool.
func (s *connStream) putBuf() {
	if s.buf != nil && cap(*s.buf) <= maxPooledChunk {
		chunkPool.Put(s.buf)
	}
	s.buf = nil
}

// SetWriteDeadline bounds the writes up to the next flush, as on net/http.
func (s *connStream) SetWriteDeadline(t time.Time) error { return s.conn.SetWriteDeadline(t) }

// End implements live.DetachedStream: it closes the connection once the
// stream is over, after its last chunk when it ended cleanly (the client
// went away, or the conversation was deleted and the page told so), else
// cut so that the client reconnects (shutdown, lost subscription), as
// net/http's aborted handlers are.
func (s *connStream) End(err error) {
	if err == nil && s.err == nil {
		_ = s.conn.SetWriteDeadline(time.Now().Add(streamEndTimeout))
		if s.Flush() == nil && s.chunked {
			_, _ = s.conn.Write([]byte("0\r\n\r\n"))
		}
	}
	s.putBuf()
	s.watch.remove(s)
	_ = s.conn.Close()
	s.release()
}
