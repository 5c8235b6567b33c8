// Package testredis runs a private, real redis-server process per test.
//
// It deliberately has no Redis client dependency: readiness is checked with
// raw RESP over TCP. Tests that need Redis fail (they are not skipped) when
// redis-server is not installed.
package testredis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a start may take before the test fails:
	// long, because on a saturated two-core machine a start that takes
	// milliseconds alone has gone unanswered for 10 s.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds the wait after SIGTERM before the process is killed.
	stopTimeout = 10 * time.Second
	// portAttempts is how many fresh ports Start tries when the chosen one
	// turns out to be taken by the time redis-server binds it.
	portAttempts = 5
	// maxLogInMessage caps how much server output is quoted in a failure.
	maxLogInMessage = 8 << 10
)

// Server is a redis-server process owned by one test.
type Server struct {
	// Addr is "127.0.0.1:port". It stays the same across Restart.
	Addr string

	bin  string
	port int
	args []string // extra args given to Start
	dir  string   // working dir (--dir) and home of the log files

	mu     sync.Mutex
	proc   *process // current process; nil before the first start
	starts int      // number of processes started, used to name log files
}

// process is one redis-server run.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // valid after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// errAddrInUse reports that redis-server could not bind its port.
var errAddrInUse = errors.New("address already in use")

// Start starts a private redis-server on a free loopback port for the test
// and stops it in t.Cleanup. args are appended to the redis-server command
// line (e.g. "--maxmemory", "1mb").
//
// When redis-server is not on PATH the test fails (it is not skipped).
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testredis: redis-server not found on PATH (%v).\n"+
			"These tests need a real Redis. Install it, e.g.:\n"+
			"  Debian/Ubuntu: sudo apt-get install redis-server\n"+
			"  macOS:         brew install redis", err)
	}
	s := &Server{
		bin:  bin,
		args: append([]string(nil), args...),
		dir:  t.TempDir(),
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(s.Stop)

	s.mu.Lock()
	defer s.mu.Unlock()
	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testredis: picking a free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		lastErr = s.startLocked()
		if lastErr == nil {
			return s
		}
		if !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	t.Fatalf("testredis: starting redis-server: %v", lastErr)
	return nil
}

// URL returns "redis://127.0.0.1:port/0".
func (s *Server) URL() string {
	return "redis://" + s.Addr + "/0"
}

// Stop stops the server now: SIGTERM, then wait (SIGKILL after 10s). Use it
// to simulate an outage. It is idempotent and safe to call after the server
// has exited on its own.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts the server again on the same port with the same args,
// stopping it first if it is running. Data is not kept (persistence is off).
// If the port has meanwhile been taken by another process it keeps trying
// until the start deadline (readyTimeout), then fails the test.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.startLocked()
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			t.Fatalf("testredis: restarting redis-server on %s: %v", s.Addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) stopLocked() {
	p := s.proc
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startLocked starts one redis-server process on s.port and waits until it
// answers PING. It returns an error wrapping errAddrInUse when the port was
// taken.
func (s *Server) startLocked() error {
	s.starts++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-server.%d.log", s.starts))
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating log file: %w", err)
	}

	argv := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--protected-mode", "no",
	}
	argv = append(argv, s.args...)
	cmd := exec.Command(s.bin, argv...)
	cmd.Dir = s.dir
	// An *os.File is handed to the child directly: no copying goroutines,
	// so Wait does not depend on pipes being closed.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	s.proc = p

	cmdline := s.bin + " " + strings.Join(quoteArgs(argv), " ")
	deadline := time.Now().Add(readyTimeout)
	for {
		if p.exited() {
			out := readLog(logPath)
			if strings.Contains(out, "Address already in use") {
				return fmt.Errorf("port %d: %w", s.port, errAddrInUse)
			}
			return fmt.Errorf("redis-server exited before answering PING (%v)\ncommand: %s\noutput (%s):\n%s",
				p.waitErr, cmdline, logPath, out)
		}
		// PONG alone is not enough: if another process won the race for
		// the port, it may be a different redis answering. Check the pid.
		pid, err := pingPID(s.Addr, 2*time.Second)
		if err == nil && pid == cmd.Process.Pid {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("process %d answered, not ours (%d)", pid, cmd.Process.Pid)
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("redis-server did not answer PING on %s within %v (last try: %v)\ncommand: %s\noutput (%s):\n%s",
				s.Addr, readyTimeout, err, cmdline, logPath, readLog(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pingPID sends PING and, if it gets +PONG, INFO server; it returns the
// server's process_id, or an error saying why there is none (yet): a refused
// or failed dial, another reply, no process_id.
func pingPID(addr string, timeout time.Duration) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)

	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return 0, fmt.Errorf("sending PING: %w", err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("reading PING's reply: %w", err)
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("PING answered %q", line)
	}

	if _, err := io.WriteString(conn, "INFO server\r\n"); err != nil {
		return 0, fmt.Errorf("sending INFO: %w", err)
	}
	line, err = r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "$") {
		return 0, fmt.Errorf("INFO answered %q (%v)", line, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("INFO answered %q", line)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, fmt.Errorf("reading INFO: %w", err)
	}
	for l := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO has no process_id")
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readLog returns (the tail of) a log file for a failure message.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("<reading %s: %v>", path, err)
	}
	if len(b) > maxLogInMessage {
		b = append([]byte("...\n"), b[len(b)-maxLogInMessage:]...)
	}
	return string(b)
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}
