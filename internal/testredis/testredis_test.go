package testredis

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// do sends one inline command and returns the first reply line, plus the
// payload for bulk replies ("$-1" -> "<nil>").
func do(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "$-1" {
		return "<nil>", nil
	}
	if strings.HasPrefix(line, "$") {
		var n int
		fmt.Sscanf(line, "$%d", &n)
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return line, nil
}

func mustDo(t *testing.T, addr, cmd, want string) {
	t.Helper()
	got, err := do(t, addr, cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if got != want {
		t.Fatalf("%s = %q, want %q", cmd, got, want)
	}
}

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q", s.Addr)
	}
	if want := "redis://" + s.Addr + "/0"; s.URL() != want {
		t.Fatalf("URL() = %q, want %q", s.URL(), want)
	}
	mustDo(t, s.Addr, "PING", "+PONG")
	mustDo(t, s.Addr, "SET k v", "+OK")
	mustDo(t, s.Addr, "GET k", "v")

	s.Stop()
	if _, err := do(t, s.Addr, "PING"); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
	s.Stop() // idempotent

	addr := s.Addr
	s.Restart(t)
	if s.Addr != addr {
		t.Fatalf("Addr changed across Restart: %q -> %q", addr, s.Addr)
	}
	mustDo(t, s.Addr, "PING", "+PONG")
	mustDo(t, s.Addr, "GET k", "<nil>") // data is not kept

	s.Restart(t) // restarting a running server works too
	mustDo(t, s.Addr, "PING", "+PONG")
}

func TestExtraArgs(t *testing.T) {
	t.Parallel()
	s := Start(t, "--maxmemory", "1234567")
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "CONFIG GET maxmemory\r\n")
	r := bufio.NewReader(conn)
	var lines []string
	for range 5 { // *2, $9, maxmemory, $7, 1234567
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSuffix(l, "\r\n"))
	}
	if lines[4] != "1234567" {
		t.Fatalf("CONFIG GET maxmemory = %q", lines)
	}
}

// Many servers at once: each gets its own port and its own process.
func TestParallel(t *testing.T) {
	t.Parallel()
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s := Start(t)
			key := fmt.Sprintf("k%d", i)
			mustDo(t, s.Addr, "SET "+key+" x", "+OK")
			mustDo(t, s.Addr, "DBSIZE", ":1")
		})
	}
}
