package handlers

import (
	"net/http"
	"sync"
)

// addressStreams counts the live streams (conversation and sidebar) each
// client address has open in this process, so that one client cannot take
// every viewer place of PARLEY_MAX_VIEWERS. It is per process: behind N
// processes a client may hold N times the cap.
type addressStreams struct {
	max int // 0: no cap

	mu sync.Mutex
	n  map[string]int // address -> streams; an address at zero is deleted
}

func newAddressStreams(max int) *addressStreams {
	return &addressStreams{max: max, n: map[string]int{}}
}

// take gives addr a place for one more stream, or reports false when it
// has max already. release gives the place back; call it once.
func (a *addressStreams) take(addr string) (release func(), ok bool) {
	if a == nil || a.max <= 0 {
		return func() {}, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[addr] >= a.max {
		return nil, false
	}
	a.n[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.n[addr]--; a.n[addr] <= 0 {
				delete(a.n, addr)
			}
		})
	}, true
}

// streamRetryAfter is the Retry-After of a stream refused for its address.
const streamRetryAfter = "10"

// takeStream takes a stream place for the request's client address, or
// refuses the request and reports false. The refusal is a 429 with
// Retry-After; for a Datastar request the connection is then aborted: the
// beta.11 client never retries a response that ends cleanly, whatever its
// status (the page would stay without live updates), but retries one that
// breaks, after its retry interval (the page's: 500 ms, doubling up to 5 s),
// so a refused page comes back by itself when a place frees, without
// hammering the server.
func takeStream(d Deps, w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	release, ok = d.streams.take(d.Clients.Of(r))
	if ok {
		return release, true
	}
	if d.Refusals != nil {
		d.Refusals.Refused("viewers_address")
	}
	w.Header().Set("Retry-After", streamRetryAfter)
	http.Error(w, "Too many live streams from your address. Close some tabs, or try again shortly.", http.StatusTooManyRequests)
	if isDatastar(r) {
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	return nil, false
}
