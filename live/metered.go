package live

import (
	"errors"
	"os"
	"time"

	"github.com/parley-chat/parley/live/gzipwire"
)

// Observer is told, for metrics, how long text took from the generation to
// a viewer. It is called once per viewer and frame, from the viewer's
// goroutine, so it must be quick and safe for concurrent use.
type Observer interface {
	TokenToFrame(d time.Duration)
}

// deadliner is a Stream whose writes can be given a deadline (an HTTP
// response, through http.ResponseController).
type deadliner interface {
	SetWriteDeadline(t time.Time) error
}

// meteredStream is a viewer's Stream as Watch uses it: it counts what is
// written, bounds each batch of writes by the hub's WriteTimeout, and at each
// flush reports the token-to-frame latency of the frames it flushed.
type meteredStream struct {
	Stream
	h        *Hub
	armedAt  time.Time   // when the write deadline was last set
	appended []time.Time // token times of the frames written since the last flush
	dropped  bool
}

func (h *Hub) meter(s Stream) *meteredStream {
	return &meteredStream{Stream: s, h: h}
}

// arm keeps a write deadline between half the WriteTimeout and all of it
// ahead: a write that blocks that long fails. Setting a deadline updates a
// runtime timer, which costs a crowd's fan-out real CPU when done for every
// batch: it is done only once half of it is used.
func (s *meteredStream) arm() {
	if s.h.cfg.WriteTimeout <= 0 {
		return
	}
	now := time.Now()
	if !s.armedAt.IsZero() && now.Sub(s.armedAt) < s.h.cfg.WriteTimeout/2 {
		return
	}
	if d, ok := s.Stream.(deadliner); ok {
		// An error means the connection cannot take deadlines (or is gone,
		// which the write reports): write without one.
		_ = d.SetWriteDeadline(now.Add(s.h.cfg.WriteTimeout))
		s.armedAt = now
	}
}

// Send implements gzipwire.Writer: isFrame counts an event, as opposed to a
// heartbeat or gzip framing.
func (s *meteredStream) Send(p []byte, isFrame bool) error {
	s.arm()
	err := s.Stream.Write(p)
	if err != nil {
		s.failed(err)
		return err
	}
	s.h.bytes.Add(int64(len(p)))
	if isFrame {
		s.h.written.Add(1)
	}
	return nil
}

// frameWritten notes the token time of a live frame just written (zero
// when it carries no new text), to report once it is flushed.
func (s *meteredStream) frameWritten(f *Frame) {
	if !f.Appended.IsZero() && s.h.cfg.Observer != nil {
		s.appended = append(s.appended, f.Appended)
	}
}

func (s *meteredStream) Flush() error {
	s.arm()
	err := s.Stream.Flush()
	if err != nil {
		s.failed(err)
		s.appended = s.appended[:0]
		return err
	}
	if len(s.appended) > 0 {
		now := time.Now()
		for _, t := range s.appended {
			s.h.cfg.Observer.TokenToFrame(now.Sub(t))
		}
		s.appended = s.appended[:0]
	}
	return nil
}

// failed counts a viewer whose connection took no write before the
// deadline as dropped; other errors are viewers that went away.
func (s *meteredStream) failed(err error) {
	if !s.dropped && errors.Is(err, os.ErrDeadlineExceeded) {
		s.dropped = true
		s.h.dropped.Add(1)
	}
}

// wire writes one viewer's stream (gzipwire.Wire) through its meter.
type wire struct {
	*gzipwire.Wire
	out *meteredStream
}

func newWire(out *meteredStream, gzip bool) *wire {
	return &wire{Wire: gzipwire.NewWire(out, gzip), out: out}
}

// frame writes a frame: one of the room's, or one made for this viewer only.
func (w *wire) frame(f *Frame) error {
	if f.z == nil {
		return w.Raw(f.Data, true)
	}
	return w.Frame(f.z)
}
