package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parley-chat/parley/internal/procs"
)

// redisCounter sits between a server and its redis-server and counts the
// commands the server sends: its round trips. INFO commandstats cannot tell
// them apart from the commands a Lua script runs inside Redis, which are
// free of network cost. Replies and pub/sub messages are relayed untouched
// (the kernel splices them); only the request direction is parsed. It runs
// in a process of its own ("count-redis"), so that its two sockets per
// Redis connection (the naive server has one per viewer) count against
// neither the load generator's open-file limit nor its CPU.
type redisCounter struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	calls map[string]int64
	conns atomic.Int64
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
	var first []byte // the first argument, when it names a script
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
		if i == 1 && name == "evalsha" && size >= 8 {
			// Scripts are told apart by their SHA: the append script's
			// count is the answer's round trips, the others are viewers'
			// reads, posts and lease renewals.
			first = make([]byte, size+2)
			if _, err := io.ReadFull(r, first); err != nil {
				return "", err
			}
			if _, err := w.Write(first); err != nil {
				return "", err
			}
			continue
		}
		if _, err := io.CopyN(w, r, int64(size+2)); err != nil {
			return "", err
		}
	}
	if first != nil {
		name += ":" + string(first[:8])
	}
	return name, nil
}

// runCounter is the count-redis subcommand: it relays -listen to -upstream
// and serves the counts as JSON on -control. Its first line of output gives
// both addresses.
func runCounter(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("count-redis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "127.0.0.1:6379", "redis-server address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := procs.RaiseFileLimit(200_000); err != nil {
		fmt.Fprintln(stderr, "count-redis: warning:", err)
	}
	c, err := startRedisCounter(*upstream)
	if err != nil {
		return err
	}
	defer c.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(c.snapshot())
	})}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintf(stdout, "%s %s\n", c.addr(), ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// counterProc is a count-redis process run by the load tool.
type counterProc struct {
	addr, control string
}

func (t *target) startCounter(upstream, logPath string) (*counterProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the load tool's binary: %w", err)
	}
	cmd := exec.Command(self, "count-redis", "-upstream", upstream)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := t.start(cmd, logPath); err != nil {
		return nil, fmt.Errorf("start the redis counter: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("the redis counter did not start: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return nil, fmt.Errorf("the redis counter said %q", line)
	}
	return &counterProc{addr: f[0], control: "http://" + f[1]}, nil
}

// counts reads the counter's totals so far.
func (p *counterProc) counts(ctx context.Context) map[string]int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", p.control, nil)
	if err != nil {
		return nil
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	var m map[string]int64
	if json.NewDecoder(res.Body).Decode(&m) != nil {
		return nil
	}
	return m
}
