package viewer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrCleanEnd is a stream that ended without an error. The beta.11 client
// does not reconnect after that, so the page would stay stale for ever.
var ErrCleanEnd = errors.New("the stream ended cleanly: a browser would not reconnect")

// Viewer is one page of a conversation and its live stream.
type Viewer struct {
	Client *http.Client
	Base   string // where the page and its stream come from (a process, or a balancer)
	Conv   string

	mu         sync.Mutex
	dom        *DOM
	cursor     string // the position the page was rendered at (?after=)
	lastID     string // id of the last frame received (Last-Event-ID)
	frames     int
	reconnects int
	failures   int // connections refused or answered with an error status
}

// Load renders the conversation page, as a browser opening its link does.
func Load(ctx context.Context, client *http.Client, base, conv string) (*Viewer, error) {
	v := &Viewer{Client: client, Base: base, Conv: conv}
	d, err := v.fetchPage(ctx)
	if err != nil {
		return nil, err
	}
	v.dom, v.cursor = d, d.Cursor()
	return v, nil
}

// Page loads a fresh copy of the conversation page: what a new tab shows.
func Page(ctx context.Context, client *http.Client, base, conv string) (*DOM, error) {
	v := &Viewer{Client: client, Base: base, Conv: conv}
	return v.fetchPage(ctx)
}

func (v *Viewer) fetchPage(ctx context.Context) (*DOM, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", v.Base+"/c/"+v.Conv, nil)
	if err != nil {
		return nil, err
	}
	res, err := v.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("load page: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		return nil, fmt.Errorf("load page: status %d: %s", res.StatusCode, body)
	}
	d, err := ParseDOM(res.Body)
	if err != nil {
		return nil, fmt.Errorf("parse page: %w", err)
	}
	return d, nil
}

// Options shape how a viewer reads.
type Options struct {
	// DropEvery closes the stream after this many frames and reconnects, as a
	// flaky network would (0: never).
	DropEvery int
	// SlowRead makes the viewer read 1 KiB at a time with this pause before
	// each read (0: read at full speed).
	SlowRead time.Duration
	// Backoff is the first wait before a reconnect, doubled up to a second
	// (default 100 ms; the page uses 500 ms to 5 s).
	Backoff time.Duration
}

// Follow streams frames into the page, reconnecting with Last-Event-ID
// whenever the stream breaks or is refused, until done reports true for the
// page, ctx ends, a frame cannot be applied, or the stream ends cleanly.
func (v *Viewer) Follow(ctx context.Context, done func(*DOM) bool, opt Options) error {
	backoff := opt.Backoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	wait := backoff
	for {
		if v.check(done) {
			return nil
		}
		broke, err := v.stream(ctx, done, opt)
		if v.check(done) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", v.Summary(), ctx.Err(), err)
		}
		if !broke {
			return fmt.Errorf("%s: %w", v.Summary(), err)
		}
		if err == nil { // dropped on purpose
			wait = backoff
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", v.Summary(), ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// stream runs one connection. broke reports whether the viewer should
// reconnect (with err saying why, or nil for a drop on purpose); otherwise
// err is final.
func (v *Viewer) stream(ctx context.Context, done func(*DOM) bool, opt Options) (broke bool, err error) {
	v.mu.Lock()
	url := v.Base + "/c/" + v.Conv + "/events?after=" + v.cursor
	last := v.lastID
	v.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Datastar-Request", "true")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	res, err := v.Client.Do(req)
	if err != nil {
		v.count(&v.failures)
		return true, err
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotFound:
		return false, errors.New("the conversation is gone (404)")
	case res.StatusCode != http.StatusOK:
		v.count(&v.failures)
		return true, fmt.Errorf("status %d", res.StatusCode)
	}
	var body io.Reader = res.Body
	if opt.SlowRead > 0 {
		body = slowReader{r: res.Body, chunk: 1 << 10, delay: opt.SlowRead}
	}
	n := 0
	var applyErr error
	dropped := false
	readErr := ReadSSE(body, func(ev Event) bool {
		if ev.Comment {
			return true
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if err := v.dom.Apply(ev.Fragments()); err != nil {
			applyErr = fmt.Errorf("frame %s: %w", ev.ID, err)
			return false
		}
		if ev.ID != "" {
			v.lastID = ev.ID
		}
		v.frames++
		n++
		if done(v.dom) {
			return false
		}
		if opt.DropEvery > 0 && n%opt.DropEvery == 0 {
			dropped = true
			return false
		}
		return true
	})
	switch {
	case applyErr != nil:
		return false, applyErr
	case dropped:
		v.count(&v.reconnects)
		return true, nil
	case readErr != nil:
		v.count(&v.reconnects)
		return true, readErr
	case v.check(done):
		return false, nil
	}
	return false, ErrCleanEnd
}

func (v *Viewer) check(done func(*DOM) bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return done(v.dom)
}

func (v *Viewer) count(n *int) {
	v.mu.Lock()
	*n++
	v.mu.Unlock()
}

// Messages is the viewer's messages list now.
func (v *Viewer) Messages() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dom.Messages()
}

// Status is message i's status as the viewer shows it.
func (v *Viewer) Status(i int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dom.Status(i)
}

// HTML renders the element with id as the viewer shows it.
func (v *Viewer) HTML(id string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dom.HTML(id)
}

// Text is message i's text as the viewer shows it.
func (v *Viewer) Text(i int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dom.Text(i)
}

// Reconnects is how many times the stream broke and the viewer came back.
func (v *Viewer) Reconnects() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.reconnects
}

// Summary describes the viewer for a failure message.
func (v *Viewer) Summary() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("viewer of %s via %s (frames %d, reconnects %d, refused %d, last id %q)",
		v.Conv, v.Base, v.frames, v.reconnects, v.failures, v.lastID)
}

// StatusIs returns a done function for Follow: message i has one of the
// statuses.
func StatusIs(i int, statuses ...string) func(*DOM) bool {
	return func(d *DOM) bool {
		s := d.Status(i)
		for _, want := range statuses {
			if s == want {
				return true
			}
		}
		return false
	}
}

// HasEnded is a done function for Follow: message i has ended, whatever
// its status.
func HasEnded(i int) func(*DOM) bool {
	return func(d *DOM) bool { return Ended(d.Status(i)) }
}

// Diff shows where two renderings first differ, for failure messages.
func Diff(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-80)
	cut := func(s string) string {
		end := min(len(s), i+160)
		if from >= end {
			return ""
		}
		return strings.ReplaceAll(s[from:end], "\n", "⏎")
	}
	return fmt.Sprintf("first difference at byte %d of %d/%d:\nwant …%s…\n got …%s…", i, len(want), len(got), cut(want), cut(got))
}
