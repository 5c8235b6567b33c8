package live

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/store"
)

// viewer is one live stream. Its queue holds pointers to frames shared with
// the rest of the room, so its memory is bounded by the queue length.
type viewer struct {
	gone bool // the conversation was deleted; owned by Watch's goroutine
	// title is the conversation's title as the viewer's page shows it: from
	// the last frame written that set it. Owned by Watch's goroutine.
	title  string
	queue  chan *Frame
	lagged atomic.Bool
	kick   chan struct{}
}

// offer queues f without blocking. When the queue is full the viewer is
// marked lagged: it will drop what it has and jump to the current state.
func (v *viewer) offer(f *Frame) {
	if v.lagged.Load() {
		return
	}
	select {
	case v.queue <- f:
	default:
		v.lagged.Store(true)
		select {
		case v.kick <- struct{}{}:
		default:
		}
	}
}

// Stream is where a viewer's frames go: an SSE response.
type Stream interface {
	Write(p []byte) error // write without flushing
	Flush() error
}

// GzipStream is a Stream whose response is gzip-encoded (the client accepts
// it and the response says Content-Encoding: gzip). Watch then writes gzip,
// compressing each frame once for the whole room (gzip.go).
type GzipStream interface {
	Stream
	Gzip() bool
}

// WatchOptions say who watches a conversation stream.
type WatchOptions struct {
	// Owner is the viewer's browser (its session owner ID): the stream also
	// carries that browser's conversation list (lists.go), so that a tab
	// needs no second connection for its sidebar. "" for none. Whether the
	// conversation is the viewer's own (its entry in the list) or someone
	// else's (listed apart) is read with the conversation.
	Owner string
}

// Watch streams conversation conv to one viewer whose page is at position
// cursor (the zero ID when unknown), until ctx is done or the hub shuts down.
// It joins the room first, then reads what changed after the cursor, then
// forwards live frames newer than what it sent: no gap, no duplicate. With
// opt.Owner it also writes that owner's conversation list right after the
// catch-up and whenever it changes.
//
// open is called once the conversation is known to exist, to start the
// response; errors returned before that (ErrTooManyViewers, ErrUnavailable,
// store.ErrNotFound) can still become an HTTP status.
func (h *Hub) Watch(ctx context.Context, conv string, cursor store.ID, opt WatchOptions, open func() (Stream, error)) error {
	if n := h.viewers.Add(1); h.cfg.MaxViewers > 0 && n > int64(h.cfg.MaxViewers) {
		h.viewers.Add(-1)
		return ErrTooManyViewers
	}
	// What ends the stream is undone in reverse order when it ends: here,
	// or in the goroutine of a DetachedStream.
	var u undo
	defer func() { u.run() }()
	u.add(func() { h.viewers.Add(-1) })

	lost := h.lostSignal()
	r, err := h.join(ctx, conv)
	if err != nil {
		return err
	}
	u.add(func() { h.leave(r) })
	v := &viewer{queue: make(chan *Frame, h.cfg.ViewerQueue), kick: make(chan struct{}, 1)}
	r.addViewer(v)
	u.add(func() { r.removeViewer(v) })
	var side *sidebar
	if opt.Owner != "" {
		// Not waited for: the list room reads the list once its channel is
		// subscribed and wakes this viewer then. On a cluster the owner's
		// channel may be on a master that is failing over while the
		// conversation's is fine, and the conversation must not wait.
		l, err := h.openList(opt.Owner)
		if err != nil {
			return err
		}
		u.add(func() { h.leaveList(l) })
		side = &sidebar{room: l, v: newListViewer(), current: conv}
		u.add(side.join())
	}

	snap, err := h.store.Snapshot(ctx, conv, cursor)
	if errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		h.log.Warn("read conversation for a viewer", "conversation", conv, "err", err)
		return ErrUnavailable
	}
	stream, err := open()
	if err != nil {
		return err
	}
	if side != nil {
		side.watching = snap.Owner != opt.Owner
	}
	gz, _ := stream.(GzipStream)
	st := h.newViewerStream(stream, gz != nil && gz.Gzip(), v, side)
	st.conv, st.sent = conv, cursor
	return h.serve(ctx, stream, st, lost, &u, func() error { return st.start(snap, r) })
}

// start brings the page from its cursor to snap, tells it who watches r
// and writes its sidebar.
func (s *viewerStream) start(snap *store.Snapshot, r *Room) error {
	// The page shows the title as of its cursor, which is the snapshot's
	// when it is current, and the catch-up's otherwise.
	s.v.title = snap.Title
	if !snap.CursorValid || snap.Last != s.sent {
		if err := s.h.writeCatchUp(s.conv, snap, s.wr); err != nil {
			return err
		}
		s.sent = snap.Last
	}
	// Every stream starts with an event, even when the page is current: the
	// page clears its "reconnecting" sign at the first event of a stream.
	if err := s.wr.Raw(presenceFrame(max(1, int(r.watching.Load()))).Data, true); err != nil {
		return err
	}
	// Then the sidebar, which the page may have rendered before a change in
	// another tab. Not read yet (the owner's first viewer here): the room's
	// first read wakes this viewer.
	if f := s.side.pending(s.v.title); f != nil {
		if err := s.wr.Raw(f, true); err != nil {
			return err
		}
	}
	return s.out.Flush()
}

// noteTitle records the title a frame written to the viewer set, if any.
func (v *viewer) noteTitle(f *Frame) {
	if f.titled {
		v.title = f.title
	}
}

// fastForward brings a viewer that fell behind to the current state with a
// catch-up of its own (writeCatchUp), dropping what it had queued. It
// returns a timer channel when Redis could not be read, to try again.
func (s *viewerStream) fastForward(ctx context.Context) <-chan time.Time {
	h, conv, v, wr := s.h, s.conv, s.v, s.wr
	if !v.lagged.Load() {
		return nil
	}
	h.ffwds.Add(1)
	for drained := false; !drained; {
		select {
		case <-v.queue:
		default:
			drained = true
		}
	}
	// Clear the mark before reading: frames queued from now on are newer than
	// or covered by the snapshot, and are filtered by id as usual.
	v.lagged.Store(false)
	snap, err := h.store.Snapshot(ctx, conv, s.sent)
	if errors.Is(err, store.ErrNotFound) {
		// Deleted while this viewer lagged: say so, and end the stream.
		_ = wr.Raw(DeletedEvents(), true)
		_ = wr.out.Flush()
		v.gone = true
		return nil
	}
	if err != nil {
		v.lagged.Store(true)
		h.log.Warn("fast-forward a viewer", "conversation", conv, "err", err)
		return time.After(time.Second)
	}
	if snap.Last != s.sent || !snap.CursorValid {
		if err := h.writeCatchUp(conv, snap, wr); err != nil {
			return nil
		}
		s.sent = snap.Last
		v.title = snap.Title
	}
	if err := wr.out.Flush(); err != nil {
		return nil
	}
	return nil
}

// writeCatchUp writes the events that bring a viewer's page to snap
// (catchUpEvents), each flushed before the next is rendered: a viewer holds
// one piece of a catch-up at a time (and, on a gzip stream, its compressed
// form), however long the conversation, and its client applies the
// conversation piece by piece as it comes.
func (h *Hub) writeCatchUp(conv string, snap *store.Snapshot, wr *wire) error {
	var err error
	catchUpEvents(h.md, conv, snap, func(ev []byte) bool {
		if err = wr.Raw(ev, true); err == nil {
			err = wr.out.Flush()
		}
		return err == nil
	})
	return err
}
