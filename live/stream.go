package live

import (
	"context"
	"errors"
	"time"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/store"
)

// viewerStream is one live stream as it is written: a conversation's (Watch,
// with its viewer and perhaps its owner's sidebar) or a sidebar's alone
// (WatchSidebar, no viewer). Both share one loop: heartbeats on a quiet
// stream, write deadlines (meteredStream), and an end when the hub shuts down
// or the subscription is lost. Owned by the stream's goroutine.
type viewerStream struct {
	h    *Hub
	out  *meteredStream
	wr   *wire
	side *sidebar // nil: no sidebar
	v    *viewer  // nil: a sidebar stream, no conversation

	conv  string
	sent  store.ID         // the log position the page is at
	retry <-chan time.Time // set while a fast-forward waits for Redis
	wrote bool             // a frame was written since the last heartbeat tick
	gone  <-chan struct{}  // closed when the client went away (DetachedStream); nil: never
}

// errStreamEnded ends a stream on purpose (its conversation was deleted).
var errStreamEnded = errors.New("stream ended")

func (h *Hub) newViewerStream(out Stream, gzip bool, v *viewer, side *sidebar) *viewerStream {
	m := h.meter(out)
	return &viewerStream{h: h, out: m, wr: newWire(m, gzip), v: v, side: side}
}

// run writes the stream until ctx is done (nil), the hub shuts down
// (ErrShutdown) or the subscription breaks (ErrUnavailable). A write that
// fails ends it too, with nil: the viewer is gone.
func (s *viewerStream) run(ctx context.Context, lost <-chan struct{}) error {
	heartbeat := time.NewTicker(s.h.cfg.Heartbeat)
	defer heartbeat.Stop()
	var queue <-chan *Frame
	var kick <-chan struct{}
	if s.v != nil {
		queue, kick = s.v.queue, s.v.kick
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return s.ctxEnded()
		case <-s.h.ctx.Done():
			return ErrShutdown
		case <-s.gone:
			return nil
		case <-lost:
			return ErrUnavailable
		case <-heartbeat.C:
			err = s.heartbeat()
		case <-s.side.wakeC():
			err = s.sidebarChanged()
		case f := <-queue:
			err = s.frames(ctx, f)
		case <-kick:
			s.retry = s.fastForward(ctx)
		case <-s.retry:
			s.retry = s.fastForward(ctx)
		}
		if err != nil {
			return nil
		}
		if s.v != nil && s.v.gone {
			_ = s.wr.End()
			return nil
		}
		if ctx.Err() != nil {
			return s.ctxEnded()
		}
	}
}

// ctxEnded is why a stream whose context is done ends: the hub's shutdown
// (a detached stream runs in the hub's context), else its viewer left.
func (s *viewerStream) ctxEnded() error {
	if s.h.ctx.Err() != nil {
		return ErrShutdown
	}
	return nil
}

// heartbeat writes a comment on a quiet stream. Only a quiet stream needs
// one (it gets one within two intervals of its last frame); on a busy one a
// heartbeat would also cost the next frame its shared compression.
func (s *viewerStream) heartbeat() error {
	if s.wrote {
		s.wrote = false
		return nil
	}
	if err := s.wr.Raw(frame.Heartbeat(), false); err != nil {
		return err
	}
	return s.out.Flush()
}

// title is the conversation's title as the viewer's page shows it.
func (s *viewerStream) title() string {
	if s.v == nil {
		return ""
	}
	return s.v.title
}

// sidebarChanged writes the owner's list when it changed: this viewer's own
// rendering of it, written on the wire's private path (not the room's).
func (s *viewerStream) sidebarChanged() error {
	f := s.side.pending(s.title())
	if f == nil {
		return nil
	}
	s.wrote = true
	if err := s.wr.Raw(f, true); err != nil {
		return err
	}
	return s.out.Flush()
}

// frames writes f and whatever else is queued, then flushes once. A frame
// that does not follow what the viewer has (it missed some) makes it
// fast-forward instead.
func (s *viewerStream) frames(ctx context.Context, f *Frame) error {
	s.wrote = true
	gap, end := false, false
	for f != nil {
		if f.ID.IsZero() {
			// Not a log position: presence or a deletion.
			if err := s.wr.frame(f); err != nil {
				return err
			}
			end = end || f.End
		} else if s.sent.Less(f.ID) {
			if s.sent.Less(f.From) {
				gap = true // frames we never got: take the current state
				break
			}
			if err := s.wr.frame(f); err != nil {
				return err
			}
			s.sent = f.ID
			s.v.noteTitle(f)
			s.out.frameWritten(f)
		} else {
			s.wr.Skip()
		}
		select {
		case f = <-s.v.queue:
		default:
			f = nil
		}
	}
	if err := s.out.Flush(); err != nil {
		return err
	}
	if end {
		_ = s.wr.End()
		return errStreamEnded
	}
	if gap {
		s.v.lagged.Store(true)
		s.retry = s.fastForward(ctx)
	}
	return nil
}
