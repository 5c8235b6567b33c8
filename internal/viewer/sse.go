package viewer

import (
	"bufio"
	"io"
	"strings"
	"time"
)

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
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4<<10), 16<<20)
	var ev Event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Event != "" || ev.Comment {
				if !fn(ev) {
					return nil
				}
			}
			ev = Event{}
		case strings.HasPrefix(line, ":"):
			ev.Comment = true
		case strings.HasPrefix(line, "event: "):
			ev.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			ev.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			ev.Data = append(ev.Data, strings.TrimPrefix(line, "data: "))
		}
	}
	return sc.Err()
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
