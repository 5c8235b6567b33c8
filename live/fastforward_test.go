package live

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/parley/store"
)

// gateStream records what is written to it; while its gate is held, writes
// wait (a viewer whose connection takes nothing).
type gateStream struct {
	gateMu sync.Mutex
	gate   chan struct{} // while not nil, writes wait for it to close
	mu     sync.Mutex
	n      []int    // sizes of the writes
	evs    []int    // sizes of the events written
	ids    []string // ids of the events written
}

// hold makes writes wait until release.
func (g *gateStream) hold() {
	g.gateMu.Lock()
	defer g.gateMu.Unlock()
	g.gate = make(chan struct{})
}

func (g *gateStream) release() {
	g.gateMu.Lock()
	defer g.gateMu.Unlock()
	close(g.gate)
	g.gate = nil
}

func (g *gateStream) Write(p []byte) error {
	g.gateMu.Lock()
	gate := g.gate
	g.gateMu.Unlock()
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n = append(g.n, len(p))
	for _, ev := range strings.SplitAfter(string(p), "\n\n") {
		if ev != "" {
			g.evs = append(g.evs, len(ev))
		}
	}
	for _, l := range strings.Split(string(p), "\n") {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			g.ids = append(g.ids, id)
		}
	}
	return nil
}
func (g *gateStream) Flush() error { return nil }

func (g *gateStream) has(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, i := range g.ids {
		if i == id {
			return true
		}
	}
	return false
}

// TestFastForwardInPieces: a viewer that falls behind while a long
// conversation is written is brought to the current state by a catch-up of
// its own, written in pieces like any catch-up: no write holds the whole.
func TestFastForwardInPieces(t *testing.T) {
	t.Parallel()
	lh := newListHub(t, Config{ViewerQueue: 1})
	ctx := lh.ctx
	quotes := strings.Repeat(">", 32000)
	exchange := func(conv string, create bool, text string) {
		t.Helper()
		gen := store.NewID()
		if _, err := lh.st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: text, Key: store.NewID(), Gen: gen, Create: create}); err != nil {
			t.Fatal(err)
		}
		if _, err := lh.st.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: text}); err != nil {
			t.Fatal(err)
		}
		if err := lh.st.Finish(ctx, store.Ending{Conv: conv, Gen: gen, Status: store.StatusDone}); err != nil {
			t.Fatal(err)
		}
	}
	conv := store.NewID()
	exchange(conv, true, "hello")
	snap, err := lh.st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	s := &gateStream{}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = lh.h.Watch(wctx, conv, snap.Last, WatchOptions{}, func() (Stream, error) { return s, nil })
	}()
	waitUntil(t, "the stream's first event", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.n) > 0
	})
	// The room's load and presence frames (the room's catch-up from its
	// load goes to viewers behind it, and this one is not).
	waitUntil(t, "the room's load", func() bool { return lh.h.Stats().Frames >= 2 })

	s.hold() // the viewer stops taking anything
	for range 10 {
		exchange(conv, false, quotes)
	}
	last, err := lh.st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the room's frames", func() bool { return lh.h.Stats().Frames >= 6 })
	waitUntil(t, "the viewer to fall behind", func() bool { return viewerLagged(lh.h, conv) })
	s.mu.Lock()
	before := len(s.n)
	s.mu.Unlock()
	s.release()
	waitUntil(t, "the viewer at the end", func() bool { return s.has(last.Last.String()) })

	if lh.h.Stats().FastForwards == 0 {
		t.Fatal("the viewer was never fast-forwarded")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	total, largest, event := 0, 0, 0
	for _, n := range s.n[before:] {
		total += n
		largest = max(largest, n)
	}
	for _, n := range s.evs {
		event = max(event, n)
	}
	t.Logf("after the viewer took writes again: %d writes, %d bytes, the largest write %d, the largest event %d", len(s.n)-before, total, largest, event)
	if total < 2<<20 {
		t.Fatalf("%d bytes written after the viewer lagged: the fast-forward did not carry the 10 exchanges", total)
	}
	// A catch-up of a room (a resync under load) is one write of bounded
	// events; the viewer's own is written a piece at a time.
	if event > 128<<10 {
		t.Fatalf("an event of %d bytes: the catch-up is not in pieces", event)
	}
}

// viewerLagged reports whether a viewer of conv here is marked to be
// fast-forwarded.
func viewerLagged(h *Hub, conv string) bool {
	h.mu.Lock()
	r := h.rooms[conv]
	h.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for v := range r.viewers {
		if v.lagged.Load() {
			return true
		}
	}
	return false
}
