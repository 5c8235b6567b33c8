package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync/atomic"
)

// sseEvent is one server-sent event as the beta.11 Datastar client sees it:
// the event name, the id (the cursor the client sends back as Last-Event-ID)
// and the "fragments" data lines joined with newlines. Comments (heartbeats)
// are reported as events with Comment set.
type sseEvent struct {
	Event     string
	ID        string
	Fragments []byte
	Selector  string
	MergeMode string
	Comment   bool
}

const eventMergeFragments = "datastar-merge-fragments"

// sseReader parses a text/event-stream. It reuses its buffers: an event's
// fields are valid only until the next call to Next.
type sseReader struct {
	r    *bufio.Reader
	long []byte // a line longer than the bufio buffer, assembled
	ev   sseEvent
	frag bytes.Buffer
	name []byte
	id   []byte
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// line returns the next line without its line ending.
func (s *sseReader) line() ([]byte, error) {
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
			return nil, io.ErrUnexpectedEOF // an event cut off mid-line
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// Next returns the next event or comment. An event that the stream ends in
// the middle of is not returned (the client would not apply it either).
func (s *sseReader) Next() (*sseEvent, error) {
	s.frag.Reset()
	s.name, s.id = s.name[:0], s.id[:0]
	s.ev = sseEvent{}
	hasID, dataLines, fields := false, 0, 0
	for {
		b, err := s.line()
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			if fields == 0 {
				continue
			}
			s.ev.Event = string(s.name)
			if hasID {
				s.ev.ID = string(s.id)
			}
			s.ev.Fragments = s.frag.Bytes()
			return &s.ev, nil
		}
		if b[0] == ':' {
			if fields == 0 {
				// A comment alone between events: a heartbeat.
				s.ev.Comment = true
				// Consume the blank line that ends it, if any, on the next call.
				return &s.ev, nil
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
			key, rest, _ := bytes.Cut(value, []byte(" "))
			switch string(key) {
			case "fragments":
				if dataLines > 0 {
					s.frag.WriteByte('\n')
				}
				s.frag.Write(rest)
				dataLines++
			case "selector":
				s.ev.Selector = string(rest)
			case "mergeMode":
				s.ev.MergeMode = string(rest)
			}
		}
	}
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
