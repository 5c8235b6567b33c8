package e2e_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// balancer is a TCP load balancer in front of Parley processes, as a
// platform's proxy is: each new connection goes to the next backend in turn,
// and to the one after it when that backend refuses connections (its
// process is gone or has stopped listening).
type balancer struct {
	URL string

	ln       net.Listener
	backends []string // host:port

	mu    sync.Mutex
	next  int
	conns map[net.Conn]struct{}
	count map[string]int // connections sent to each backend
	wg    sync.WaitGroup
}

func newBalancer(t *testing.T, backends ...string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{
		URL: "http://" + ln.Addr().String(), ln: ln, backends: backends,
		conns: map[net.Conn]struct{}{}, count: map[string]int{},
	}
	b.wg.Go(b.serve)
	t.Cleanup(b.close)
	return b
}

func (b *balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() { b.handle(c) })
	}
}

func (b *balancer) handle(client net.Conn) {
	defer client.Close()
	var backend net.Conn
	b.mu.Lock()
	start := b.next
	b.next++
	b.mu.Unlock()
	for i := range b.backends {
		addr := b.backends[(start+i)%len(b.backends)]
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			backend = c
			b.mu.Lock()
			b.count[addr]++
			b.mu.Unlock()
			break
		}
	}
	if backend == nil {
		return // no backend: the client sees its connection closed
	}
	defer backend.Close()
	if !b.track(client, backend) {
		return
	}
	defer b.untrack(client, backend)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(backend, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, backend); done <- struct{}{} }()
	<-done // either side ended: end both, as a proxy does
}

func (b *balancer) track(cs ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		return false
	}
	for _, c := range cs {
		b.conns[c] = struct{}{}
	}
	return true
}

func (b *balancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		delete(b.conns, c)
	}
}

// connections returns how many connections went to backend addr.
func (b *balancer) connections(addr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count[addr]
}

func (b *balancer) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}
