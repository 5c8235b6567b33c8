package live

import (
	"context"
)

// DetachedStream is a Stream that needs nothing more of the goroutine that
// opened it: a hijacked HTTP/1.1 connection, whose request has returned.
// Watch and WatchSidebar then return nil as soon as it has started, and
// write it from a goroutine of their own until it ends (a write fails, the
// conversation ends, the subscription breaks or the hub shuts down), then
// call End once with what they would have returned: nil for an end on
// purpose or a client gone, ErrShutdown or ErrUnavailable for a stream to
// cut so that its client reconnects. That goroutine starts with nothing
// but the stream's loop on its stack: an idle viewer costs its stream and
// little more.
//
// Gone is closed when the stream's client is known to have gone away (its
// connection closed), so that its place in the room is freed at once
// rather than at the next write.
type DetachedStream interface {
	Stream
	Gone() <-chan struct{}
	End(err error)
}

// undo is what to do, in reverse order, when a stream ends.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// serve starts a stream (start writes its first events) and runs its loop
// until it ends. A DetachedStream is started here, then run from a fresh
// goroutine that takes over u and ends with the hub, not with ctx.
func (h *Hub) serve(ctx context.Context, stream Stream, st *viewerStream, lost <-chan struct{}, u *undo, start func() error) error {
	d, detached := stream.(DetachedStream)
	if !detached {
		if start() != nil {
			return nil
		}
		return st.run(ctx, lost)
	}
	rest := *u
	*u = nil
	if start() != nil {
		rest.run()
		d.End(nil)
		return nil
	}
	h.detached.Add(1)
	st.gone = d.Gone()
	go func() {
		err := st.run(h.ctx, lost)
		h.detached.Add(-1)
		rest.run()
		d.End(err)
	}()
	return nil
}
