package viewer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// EventMergeFragments is the event that carries fragments to merge by id.
const EventMergeFragments = "datastar-merge-fragments"

// Event is one server-sent event, or a comment (a heartbeat).
type Event struct {
	Event, ID string
	Data      []string
	Comment   bool
}

// Fragments joins the "fragments" data lines as the beta.11 client does.
func (e Event) Fragments() string {
	var lines []string
	for _, l := range e.Data {
		if v, ok := strings.CutPrefix(l, "fragments "); ok {
			lines = append(lines, v)
		}
	}
	return strings.Join(lines, "\n")
}

// ReadSSE calls fn for each event (and comment) until fn returns false or the
// stream ends. It returns nil when the stream ended cleanly (or fn stopped
// it), and the read error when the connection broke: the difference matters,
// since the beta.11 client reconnects only after an error.
func ReadSSE(r io.Reader, fn func(Event) bool) error {
	sr := NewSSEReader(r)
	for {
		f, err := sr.Next()
		if err == io.EOF || err == ErrCutOff {
			return nil
		}
		if err != nil {
			return err
		}
		if f.Event == "" && !f.Comment {
			continue
		}
		ev := Event{Event: f.Event, ID: f.ID, Comment: f.Comment}
		for _, d := range f.Data {
			ev.Data = append(ev.Data, string(d))
		}
		if !fn(ev) {
			return nil
		}
	}
}

// ErrCutOff is a stream that ended in the middle of a line. It is an
// io.ErrUnexpectedEOF, but the connection ended without an error: a
// browser would not retry.
var ErrCutOff = fmt.Errorf("event stream cut off mid-line: %w", io.ErrUnexpectedEOF)

// Frame is one event as an SSEReader returns it, or a comment alone (a
// heartbeat) with Comment set. Data holds the values of its data lines;
// they are valid only until the next call to Next.
type Frame struct {
	Event, ID string
	Data      [][]byte
	Comment   bool
}

// AppendFragments appends the frame's "fragments" data lines to b, joined
// with newlines as the beta.11 client joins them.
func (f *Frame) AppendFragments(b []byte) []byte {
	first := true
	for _, d := range f.Data {
		if v, ok := bytes.CutPrefix(d, []byte("fragments ")); ok {
			if !first {
				b = append(b, '\n')
			}
			b, first = append(b, v...), false
		}
	}
	return b
}

// SSEReader parses a text/event-stream event by event. It reuses its
// buffers, so that a load generator can read thousands of streams at once.
type SSEReader struct {
	r    *bufio.Reader
	long []byte // a line longer than the bufio buffer, assembled
	data []byte // the data lines' values of the event being read, back to back
	ends []int  // where each of them ends in data
	name []byte
	id   []byte
	f    Frame
}

// NewSSEReader returns a reader of the stream r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// line returns the next line without its line ending.
func (s *SSEReader) line() ([]byte, error) {
	b, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = s.r.ReadSlice('\n')
			s.long = append(s.long, b...)
		}
		b = s.long
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			return nil, ErrCutOff
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// Next returns the next event or comment: io.EOF when the stream ended
// between events, ErrCutOff when it ended within a line, or the read error.
// An event that the stream ends in the middle of is not returned (the client
// would not apply it either).
func (s *SSEReader) Next() (*Frame, error) {
	s.data, s.ends = s.data[:0], s.ends[:0]
	s.name, s.id = s.name[:0], s.id[:0]
	s.f = Frame{Data: s.f.Data[:0]}
	hasID, fields := false, 0
	for {
		b, err := s.line()
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			if fields == 0 {
				continue
			}
			return s.frame(hasID), nil
		}
		if b[0] == ':' {
			if fields == 0 {
				// A comment alone between events: a heartbeat. The blank
				// line that ends it is skipped on the next call.
				s.f.Comment = true
				return &s.f, nil
			}
			continue
		}
		fields++
		field, value := b, []byte(nil)
		if i := bytes.IndexByte(b, ':'); i >= 0 {
			field, value = b[:i], b[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			s.name = append(s.name[:0], value...)
		case "id":
			s.id = append(s.id[:0], value...)
			hasID = true
		case "data":
			s.data = append(s.data, value...)
			s.ends = append(s.ends, len(s.data))
		}
	}
}

// frame fills in the event read so far.
func (s *SSEReader) frame(hasID bool) *Frame {
	s.f.Event = string(s.name)
	if hasID {
		s.f.ID = string(s.id)
	}
	from := 0
	for _, end := range s.ends {
		s.f.Data = append(s.f.Data, s.data[from:end:end])
		from = end
	}
	return &s.f
}

// slowReader hands out at most chunk bytes per read and waits delay before
// each: a client on a poor connection, whose TCP window fills up.
type slowReader struct {
	r     io.Reader
	chunk int
	delay time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	return s.r.Read(p)
}
