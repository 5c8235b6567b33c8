package viewer

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/parley-chat/parley/frame"
)

// TestSSEReader: the parser returns what the beta.11 client would apply,
// from the bytes Parley's frame package writes.
func TestSSEReader(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100<<10) // longer than the reader's buffer
	var stream bytes.Buffer
	stream.WriteString(": keepalive\n\n")
	// Written by hand: frame.Merge puts a fragment on one line, but the
	// reader must join the lines of any sender.
	stream.WriteString("event: datastar-merge-fragments\nid: 1-1\ndata: fragments <div id=\"a\">one\ndata: fragments two</div>\n\n")
	stream.Write(frame.Signals("1-2", "{busy: true}"))
	stream.WriteString("event: datastar-merge-fragments\r\nid: 1-3\r\ndata: fragments <p id=\"b\">" + long + "</p>\r\n\r\n")
	stream.WriteString("event:datastar-merge-fragments\ndata:fragments <p id=\"c\"></p>\n\n")
	stream.WriteString("event: datastar-merge-fragments\nid: 9-9\ndata: fragments <p id=\"cut\">") // cut off

	type got struct {
		event, id, fragments string
		comment              bool
	}
	want := []got{
		{comment: true},
		{event: EventMergeFragments, id: "1-1", fragments: "<div id=\"a\">one\ntwo</div>"},
		{event: "datastar-merge-signals", id: "1-2"},
		{event: EventMergeFragments, id: "1-3", fragments: "<p id=\"b\">" + long + "</p>"},
		{event: EventMergeFragments, fragments: "<p id=\"c\"></p>"},
	}
	whole := bytes.Clone(stream.Bytes())
	sr := NewSSEReader(&stream)
	for i, w := range want {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		g := got{event: ev.Event, id: ev.ID, fragments: string(ev.AppendFragments(nil)), comment: ev.Comment}
		if g != w {
			t.Fatalf("event %d = %+.80v, want %+.80v", i, g, w)
		}
	}
	if ev, err := sr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a stream cut mid-event gave %+v, %v; want io.ErrUnexpectedEOF", ev, err)
	}

	// ReadSSE reports the same events, and a stream cut off without an
	// error as a clean end: a browser would not retry.
	var n int
	err := ReadSSE(bytes.NewReader(whole), func(ev Event) bool {
		w := want[n]
		g := got{event: ev.Event, id: ev.ID, fragments: ev.Fragments(), comment: ev.Comment}
		if g != w {
			t.Fatalf("ReadSSE event %d = %+.80v, want %+.80v", n, g, w)
		}
		n++
		return true
	})
	if err != nil || n != len(want) {
		t.Fatalf("ReadSSE gave %d events and %v, want %d and nil", n, err, len(want))
	}
}
