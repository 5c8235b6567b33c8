package harness

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// NetSwitch is a TCP proxy in front of an app whose Cut drops every
// connection through it, and refuses new ones until Restore: a lost network,
// which Chromium's offline emulation does not give for a response that is
// already streaming.
type NetSwitch struct {
	URL string // the proxy's base URL, to use instead of the app's

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

// StartNetSwitch listens on a free loopback port and forwards to appURL
// until the test ends.
func StartNetSwitch(t testing.TB, appURL string) *NetSwitch {
	t.Helper()
	target := strings.TrimPrefix(appURL, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sw := &NetSwitch{URL: "http://" + ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		sw.Cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go sw.pipe(c, target)
		}
	}()
	return sw
}

func (sw *NetSwitch) pipe(c net.Conn, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	if !sw.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	defer sw.untrack(c, up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (sw *NetSwitch) track(cs ...net.Conn) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.down {
		return false
	}
	for _, c := range cs {
		sw.conns[c] = struct{}{}
	}
	return true
}

func (sw *NetSwitch) untrack(cs ...net.Conn) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(sw.conns, c)
	}
}

// Cut resets every connection, as a dropped network does, and refuses new
// ones.
func (sw *NetSwitch) Cut() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.down = true
	for c := range sw.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not a clean end of the response
		}
		c.Close()
		delete(sw.conns, c)
	}
}

// Restore accepts connections again.
func (sw *NetSwitch) Restore() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.down = false
}
