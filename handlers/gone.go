package handlers

import (
	"sync"
	"time"
)

// goneCheckEvery is how often the hijacked connections of live streams are
// checked for a client that went away.
const goneCheckEvery = time.Second

// goneWatch notices, for every live stream on a hijacked connection, that
// its client closed the connection: one goroutine for all of them (while
// there are any) peeks at each socket every goneCheckEvery, where net/http
// would hold a reading goroutine per connection. The stream then ends at
// once, as it did on net/http, rather than at its next write, which on a
// quiet stream is its next heartbeat. Where a socket cannot be peeked at
// (peerClosed says no), the next write still notices.
type goneWatch struct {
	mu      sync.Mutex
	conns   map[*connStream]struct{}
	running bool
}

func newGoneWatch() *goneWatch {
	return &goneWatch{conns: map[*connStream]struct{}{}}
}

// add watches s until remove, or until its client is gone (s.markGone).
func (g *goneWatch) add(s *connStream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conns[s] = struct{}{}
	if !g.running {
		g.running = true
		go g.loop()
	}
}

func (g *goneWatch) remove(s *connStream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, s)
}

// loop checks every connection each tick, and ends when none is left.
func (g *goneWatch) loop() {
	t := time.NewTicker(goneCheckEvery)
	defer t.Stop()
	var batch []*connStream
	for range t.C {
		g.mu.Lock()
		if len(g.conns) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		batch = batch[:0]
		for s := range g.conns {
			batch = append(batch, s)
		}
		g.mu.Unlock()
		for i, s := range batch {
			if peerClosed(s.conn) {
				g.remove(s)
				s.markGone()
			}
			batch[i] = nil
		}
	}
}
