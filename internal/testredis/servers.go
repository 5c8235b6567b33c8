package testredis

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// startServer starts one redis-server like Start, but returns the error
// instead of failing, so the caller can tell a missing feature from a fault.
func startServer(t testing.TB, bin string, args []string) (*Server, error) {
	s := &Server{bin: bin, args: append([]string(nil), args...), dir: t.TempDir()}
	t.Cleanup(s.Stop)
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for range portAttempts {
		port, perr := freePort()
		if perr != nil {
			return nil, fmt.Errorf("picking a free port: %w", perr)
		}
		// The cluster bus listens on port+10000: both must be free.
		if port+10000 > 65535 || !portFree(port+10000) {
			err = fmt.Errorf("bus port %d: %w", port+10000, errAddrInUse)
			continue
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.startLocked(); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

var versionRE = regexp.MustCompile(`v=(\d+\.\d+\.\d+)`)

// serverVersion returns redis-server's version, "" when it cannot tell.
func serverVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func majorVersion(v string) int {
	major, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(major)
	return n
}

// running reports whether the server's current process is alive.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// kill ends the process with SIGKILL and waits for it: a crash, not a
// shutdown.
func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}
