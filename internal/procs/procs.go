// Package procs runs real Parley processes for tests: it builds the binary
// once, starts processes configured by environment variables (as a container
// is) or by exactly the flags and environment a test gives, on free loopback
// ports, waits until they serve, sends them SIGTERM or
// SIGKILL, and keeps their logs for failure messages.
package procs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds a start, from exec to /healthz answering.
	readyTimeout = 20 * time.Second
	// maxLogInMessage caps how much of a log a failure quotes.
	maxLogInMessage = 16 << 10
)

// Build compiles the parley command into dir and returns the binary's path.
// Call it once per test binary (from TestMain): the build cache makes it
// quick after the first time, but it is still a link of the whole program.
func Build(ctx context.Context, dir string) (string, error) {
	// go test puts its own toolchain first on PATH.
	bin := filepath.Join(dir, "parley")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/parley-chat/parley")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// Proc is one running Parley process.
type Proc struct {
	Name       string
	URL        string // http://127.0.0.1:port
	MetricsURL string // its /metrics, when METRICS_ADDR is not empty

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // its exit status, once done is closed

	mu  sync.Mutex
	log strings.Builder // stdout and stderr, interleaved as they came
}

// Start runs bin with env (on top of a minimal environment: nothing else
// from the test's environment, an OPENAI_API_KEY say, can change what runs),
// waits until /healthz answers, and kills the process when the test ends.
// PARLEY_ADDR and METRICS_ADDR default to free loopback ports and
// PARLEY_MODEL to demo.
func Start(t testing.TB, bin, name string, env map[string]string) *Proc {
	t.Helper()
	vars := map[string]string{
		"PATH":         os.Getenv("PATH"),
		"HOME":         os.TempDir(),
		"PARLEY_ADDR":  "127.0.0.1:0",
		"PARLEY_MODEL": "demo",
		"METRICS_ADDR": "127.0.0.1:0",
	}
	for k, v := range env {
		vars[k] = v
	}
	return Exec(t, bin, name, nil, vars)
}

// Exec runs bin with args and exactly env as its environment (nothing of the
// test's own), waits until /healthz answers, and kills the process when the
// test ends, logging what it printed if the test failed. The process must be
// told to listen on a free port; its metrics URL is read when it prints one.
func Exec(t testing.TB, bin, name string, args []string, env map[string]string) *Proc {
	t.Helper()
	p, err := start(bin, name, args, env)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.Name, p.Logs())
		}
	})
	return p
}

var (
	listening = regexp.MustCompile(`running at (http://\S+)`)
	metricsAt = regexp.MustCompile(`Metrics are at (http://\S+)`)
)

// start execs the process, reads the addresses it prints, and waits until
// its /healthz answers.
func start(bin, name string, args []string, env map[string]string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{} // not nil: nil would mean the test's environment
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = (*logWriter)(p)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	urls, metricsURLs := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = (*logWriter)(p).Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
			if m := metricsAt.FindStringSubmatch(line); m != nil {
				select {
				case metricsURLs <- m[1]:
				default:
				}
			}
		}
		// Wait only after stdout is drained: it closes the pipe.
		p.err = cmd.Wait()
		close(p.done)
	}()

	deadline := time.After(readyTimeout)
	select {
	case p.URL = <-urls:
		select { // printed right after the address, when metrics are on
		case p.MetricsURL = <-metricsURLs:
		case <-time.After(time.Second):
		}
	case <-p.done:
		return nil, fmt.Errorf("exited before listening (%v):\n%s", p.err, p.Logs())
	case <-deadline:
		p.Kill()
		return nil, fmt.Errorf("did not listen within %v:\n%s", readyTimeout, p.Logs())
	}
	for {
		res, err := http.Get(p.URL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("exited before /healthz answered (%v):\n%s", p.err, p.Logs())
		case <-deadline:
			p.Kill()
			return nil, fmt.Errorf("/healthz did not answer within %v:\n%s", readyTimeout, p.Logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logWriter appends to the process's log.
type logWriter Proc

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Write(b)
}

// Logs returns what the process printed (the tail, when it is long).
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.log.String()
	if len(s) > maxLogInMessage {
		s = "...\n" + s[len(s)-maxLogInMessage:]
	}
	return s
}

// FullLogs returns everything the process printed.
func (p *Proc) FullLogs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Terminate sends SIGTERM, as a platform does before a deploy or a scale
// down, and waits up to bound for the process to exit. It returns the exit
// error (nil for a clean exit) or an error when it did not exit in time.
func (p *Proc) Terminate(bound time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return p.Wait(bound)
}

// Wait waits up to bound for the process to exit and returns its exit error.
func (p *Proc) Wait(bound time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(bound):
		return fmt.Errorf("%s still running after %v", p.Name, bound)
	}
}

// Kill ends the process with SIGKILL, as a crash or an OOM kill would, and
// waits until it is gone. It is safe to call on a process that has exited.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return
	}
	<-p.done
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Usage is what the kernel says a process has used so far.
type Usage struct {
	PeakRSS int64         // bytes: the high-water mark of its resident set (VmHWM)
	RSS     int64         // bytes, now (VmRSS)
	CPU     time.Duration // user and system time
}

// Usage reads the process's memory and CPU from /proc (Linux).
func (p *Proc) Usage() (Usage, error) {
	pid := p.cmd.Process.Pid
	var u Usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, fmt.Errorf("read status of %s: %w", p.Name, err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			u.PeakRSS = kb << 10
		}
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			u.RSS = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("read stat of %s: %w", p.Name, err)
	}
	// The command name (field 2) may hold spaces; the rest follows ")".
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		return u, fmt.Errorf("stat of %s: %d fields", p.Name, len(fields))
	}
	var utime, stime int64
	fmt.Sscan(fields[11], &utime) // field 14 of stat: fields[0] is field 3
	fmt.Sscan(fields[12], &stime)
	const ticks = 100 // USER_HZ on Linux
	u.CPU = time.Duration(utime+stime) * time.Second / ticks
	return u, nil
}
