package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	iviewer "github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/views"
)

// conv is one conversation under test and the answer being measured in it.
type conv struct {
	id       string
	answer   int    // index of the measured answer
	answerID string // its element id, "m-3"
	region   []byte // `id="m-3`: where the answer starts in a frame
	foot     []byte // `id="m-3-foot"`
	tokens   int    // clock words the answer will hold
	client   *http.Client

	postAt  time.Time
	posted  chan struct{}
	done    chan struct{}
	doneOne sync.Once
	endAt   atomic.Int64 // unix ns when the first viewer saw the end
}

func newConv(id string, answer, clockWords int, client *http.Client) *conv {
	aid := views.MessageID(answer)
	return &conv{
		id: id, answer: answer, answerID: aid, tokens: clockWords, client: client,
		region: []byte(`id="` + aid), foot: []byte(`id="` + views.FootID(answer) + `"`),
		posted: make(chan struct{}), done: make(chan struct{}),
	}
}

func (c *conv) markDone(at time.Time) {
	c.doneOne.Do(func() {
		c.endAt.Store(at.UnixNano())
		close(c.done)
	})
}

// endStatus returns the status of the answer if b holds its footer.
func (c *conv) endStatus(b []byte) (string, bool) {
	i := bytes.Index(b, c.foot)
	if i < 0 {
		return "", false
	}
	rest := b[i:]
	if end := bytes.IndexByte(rest, '>'); end >= 0 {
		rest = rest[:end]
	}
	const key = `data-status="`
	j := bytes.Index(rest, []byte(key))
	if j < 0 {
		return "", false
	}
	rest = rest[j+len(key):]
	k := bytes.IndexByte(rest, '"')
	if k < 0 {
		return "", false
	}
	return string(rest[:k]), true
}

// joinKind says when a viewer arrives.
type joinKind int

const (
	joinBefore joinKind = iota // connected before the message is posted
	joinDuring                 // at a random instant while the answer streams
	joinAfter                  // once the answer has ended
)

func (k joinKind) String() string {
	return [...]string{"before", "during", "after"}[k]
}

// viewer is one browser tab watching a conversation: it loads the page, opens
// the live stream with the page's cursor, applies frames (recorded, applied
// at the end), reconnects with Last-Event-ID, and reads the clock words.
type viewer struct {
	conv      *conv
	kind      joinKind
	joinAfter time.Duration // for joinDuring: after the post
	cutAfter  time.Duration // > 0: drop the stream this long after the post, then reconnect
	slow      bool
	raw       *bytes.Buffer // when set, every byte of the streams, to estimate compression

	// Written by the viewer's goroutine, read after it ends.
	page      *blob
	frames    []*blob
	lastID    string
	bytes     int64 // on the wire
	decoded   int64 // after gzip decoding
	events    int   // merge-fragments events
	signals   int   // other events (signals, presence)
	tokens    int   // new clock words received in frames
	maxSeq    int64
	lat       []int32 // microseconds, tokens emitted after the connection began
	connects  int
	breaks    int // streams that ended without being asked to
	sawEnd    bool
	endStatus string
	err       error
	lastFrame time.Time
}

// env is what every viewer of a run shares.
type env struct {
	base   string
	gzip   bool         // streams are requested with Accept-Encoding: gzip, as browsers do
	client *http.Client // pages and streams
	slow   *http.Client // streams of slow readers: a small receive buffer
	blobs  *interner
	prog   *counters
}

// counters are the live totals the progress line shows.
type counters struct {
	open, done, frames, tokens, bytes atomic.Int64
}

func newEnv(base string, prog *counters, gzip bool) *env {
	return &env{base: base, gzip: gzip, client: newHTTPClient(0), slow: newHTTPClient(8 << 10), blobs: newInterner(), prog: prog}
}

// newHTTPClient keeps as many connections as there are viewers. rcvbuf > 0
// shrinks the socket receive buffer, so a slow reader pushes back on the
// server within a few kilobytes instead of megabytes of kernel buffers.
func newHTTPClient(rcvbuf int) *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext: d.DialContext, MaxIdleConns: 0, MaxIdleConnsPerHost: 2000,
			IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// run waits for the viewer's moment, loads the page and follows the stream
// until ctx ends. opened is called once, when the first stream is open.
func (v *viewer) run(ctx context.Context, e *env, opened func()) {
	v.maxSeq = -1
	c := v.conv
	if !v.waitToJoin(ctx) {
		return
	}
	start := time.Now()
	page, err := getPage(ctx, e.client, e.base+"/c/"+c.id)
	if err != nil {
		v.err = err
		return
	}
	v.page = e.blobs.intern(page)
	v.onContent(page, start, time.Now(), e)
	cursor := pageCursor(page)

	cut := make(chan struct{})
	if v.cutAfter > 0 {
		go func() {
			select {
			case <-ctx.Done():
			case <-c.posted:
				if sleepUntil(ctx, c.postAt.Add(v.cutAfter)) {
					close(cut)
				}
			}
		}()
	}
	first := true
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		var wasCut atomic.Bool
		stop, exited := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(exited)
			select {
			case <-cut:
				wasCut.Store(true)
				cancel()
			case <-stop:
			}
		}()
		err := v.stream(sctx, e, cursor, start, func() {
			if first {
				first = false
				opened()
			}
		})
		close(stop)
		<-exited
		cancel()
		if ctx.Err() != nil {
			return
		}
		if wasCut.Load() {
			cut = nil // once
			if !sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) {
				return
			}
		} else {
			v.breaks++
			if v.err == nil && err != nil {
				v.err = err
			}
			// The page's client retries after 500 ms.
			if !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
				return
			}
		}
		start = time.Now()
	}
}

// waitToJoin waits for the viewer's moment to join; false if ctx ended
// first.
func (v *viewer) waitToJoin(ctx context.Context) bool {
	c := v.conv
	switch v.kind {
	case joinDuring:
		select {
		case <-ctx.Done():
			return false
		case <-c.posted:
		}
		return sleepUntil(ctx, c.postAt.Add(v.joinAfter))
	case joinAfter:
		select {
		case <-ctx.Done():
			return false
		case <-c.done:
		}
	}
	return true
}

// stream follows one event-stream response until it ends or ctx does.
func (v *viewer) stream(ctx context.Context, e *env, cursor string, start time.Time, opened func()) error {
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/c/"+v.conv.id+"/events?after="+cursor, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Datastar-Request", "true")
	if v.lastID != "" {
		req.Header.Set("Last-Event-ID", v.lastID)
	}
	if e.gzip {
		// Set by hand, so the transport does not decode for us: bytes are
		// counted as they come off the wire.
		req.Header.Set("Accept-Encoding", "gzip")
	}
	client := e.client
	if v.slow {
		client = e.slow
	}
	v.connects++
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("open stream: status %d: %s", res.StatusCode, bytes.TrimSpace(body))
	}
	e.prog.open.Add(1)
	defer e.prog.open.Add(-1)
	opened()
	var body io.Reader = countingReader{r: res.Body, n: &v.bytes, total: &e.prog.bytes}
	if v.slow {
		body = &slowReader{r: body, chunk: 1 << 10, every: 50 * time.Millisecond}
	}
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return fmt.Errorf("open stream: gzip: %w", err)
		}
		body = zr
	}
	var discard atomic.Int64
	body = countingReader{r: body, n: &v.decoded, total: &discard}
	if v.raw != nil {
		body = io.TeeReader(body, v.raw)
	}
	sr := iviewer.NewSSEReader(body)
	var fragments []byte
	for {
		ev, err := sr.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read stream: %w", err)
		}
		if ev.Comment {
			continue
		}
		if ev.ID != "" {
			v.lastID = ev.ID
		}
		if ev.Event != iviewer.EventMergeFragments {
			v.signals++
			continue
		}
		now := time.Now()
		v.events++
		v.lastFrame = now
		e.prog.frames.Add(1)
		fragments = ev.AppendFragments(fragments[:0])
		v.frames = append(v.frames, e.blobs.intern(fragments))
		v.onContent(fragments, start, now, e)
	}
}

// onContent reads the clock words of the answer in b (a page or a frame)
// that the viewer has not seen yet, and whether the answer has ended.
func (v *viewer) onContent(b []byte, start, now time.Time, e *env) {
	c := v.conv
	if i := bytes.Index(b, c.region); i >= 0 {
		startMicros, nowMicros := start.UnixMicro(), now.UnixMicro()
		n := 0
		llm.ScanClock(b[i:], func(seq, micros int64) {
			if seq <= v.maxSeq {
				return
			}
			v.maxSeq = seq
			n++
			if micros >= startMicros {
				v.lat = append(v.lat, int32(min(nowMicros-micros, 1<<31-1)))
			}
		})
		v.tokens += n
		e.prog.tokens.Add(int64(n))
	}
	if st, ok := c.endStatus(b); ok && st != "streaming" && !v.sawEnd {
		v.sawEnd, v.endStatus = true, st
		c.markDone(now)
		e.prog.done.Add(1)
	}
}

// slowReader reads at most chunk bytes per call, and no more often than
// every: a tab on a slow link, or a busy phone.
type slowReader struct {
	r     io.Reader
	chunk int
	every time.Duration
	next  time.Time
}

func (s *slowReader) Read(p []byte) (int, error) {
	if d := time.Until(s.next); d > 0 {
		time.Sleep(d)
	}
	s.next = time.Now().Add(s.every)
	return s.r.Read(p[:min(len(p), s.chunk)])
}

func getPage(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("load page: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("load page: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("load page: status %d", res.StatusCode)
	}
	return b, nil
}

// pageCursor is the log position a page was rendered at, from its stream URL.
func pageCursor(page []byte) string {
	const key = "/events?after="
	i := bytes.Index(page, []byte(key))
	if i < 0 {
		return ""
	}
	rest := page[i+len(key):]
	end := bytes.IndexAny(rest, `'"&`)
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// blob is an interned page or frame: viewers of one room receive the same
// bytes, kept once. Its number lets identical viewer histories be checked once.
type blob struct {
	n int32
	b []byte
}

type interner struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.Mutex
		m  map[string]*blob
	}
	next atomic.Int32
}

func newInterner() *interner {
	in := &interner{seed: maphash.MakeSeed()}
	for i := range in.shards {
		in.shards[i].m = map[string]*blob{}
	}
	return in
}

func (in *interner) intern(b []byte) *blob {
	s := &in.shards[maphash.Bytes(in.seed, b)%uint64(len(in.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := s.m[string(b)]; ok {
		return x
	}
	x := &blob{n: in.next.Add(1), b: bytes.Clone(b)}
	s.m[string(x.b)] = x
	return x
}

// countingReader counts the bytes read through it: in n (one reader's own)
// and in total (shared, atomic).
type countingReader struct {
	r     io.Reader
	n     *int64
	total *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	c.total.Add(int64(n))
	return n, err
}
