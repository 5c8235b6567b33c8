package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// redisCounter sits between a server and its redis-server and counts the
// commands the server sends: its round trips. INFO commandstats cannot tell
// them apart from the commands a Lua script runs inside Redis, which are
// free of network cost. Replies and pub/sub messages are relayed untouched
// (the kernel splices them); only the request direction is parsed.
type redisCounter struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	calls map[string]int64
	conns atomic.Int64
	wg    sync.WaitGroup
}

func startRedisCounter(upstream string) (*redisCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redis counter: %w", err)
	}
	c := &redisCounter{ln: ln, upstream: upstream, calls: map[string]int64{}}
	go c.accept()
	return c, nil
}

func (c *redisCounter) addr() string { return c.ln.Addr().String() }

func (c *redisCounter) close() {
	_ = c.ln.Close()
}

// snapshot returns the counts so far.
func (c *redisCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

func (c *redisCounter) accept() {
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.conns.Add(1)
		go c.serve(down)
	}
}

func (c *redisCounter) serve(down net.Conn) {
	defer down.Close()
	up, err := net.Dial("tcp", c.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		_, _ = io.Copy(down, up)
		_ = down.Close()
	}()
	r := bufio.NewReaderSize(down, 64<<10)
	w := bufio.NewWriterSize(up, 64<<10)
	for {
		name, err := copyCommand(r, w)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.calls[name]++
		c.mu.Unlock()
		// Send now unless more of a pipeline is already here: the proxy adds
		// no waiting of its own.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// copyCommand copies one RESP request (an array of bulk strings, as every
// client library sends) from r to w and returns its command name, lower case.
func copyCommand(r *bufio.Reader, w *bufio.Writer) (string, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	if _, err := w.Write(line); err != nil {
		return "", err
	}
	if len(line) < 3 || line[0] != '*' {
		// An inline command: the whole line is the request.
		f := strings.Fields(string(line))
		if len(f) == 0 {
			return "", nil
		}
		return strings.ToLower(f[0]), nil
	}
	n, err := strconv.Atoi(string(line[1 : len(line)-2]))
	if err != nil {
		return "", fmt.Errorf("bad array header %q", line)
	}
	name := ""
	for i := 0; i < n; i++ {
		hdr, err := r.ReadSlice('\n')
		if err != nil {
			return "", err
		}
		if len(hdr) < 3 || hdr[0] != '$' {
			return "", errors.New("not a bulk string")
		}
		size, err := strconv.Atoi(string(hdr[1 : len(hdr)-2]))
		if err != nil {
			return "", fmt.Errorf("bad bulk header %q", hdr)
		}
		if _, err := w.Write(hdr); err != nil {
			return "", err
		}
		if i == 0 {
			b := make([]byte, size+2)
			if _, err := io.ReadFull(r, b); err != nil {
				return "", err
			}
			name = strings.ToLower(string(b[:size]))
			if _, err := w.Write(b); err != nil {
				return "", err
			}
			continue
		}
		if _, err := io.CopyN(w, r, int64(size+2)); err != nil {
			return "", err
		}
	}
	return name, nil
}
