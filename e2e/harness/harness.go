// Package harness runs the real Parley binary for the end-to-end tests in
// e2e and e2e/browser: it builds it once per test binary, starts it with the
// flags and environment a test gives (and nothing of the test's own
// environment) against a private redis-server, stops it with SIGTERM, puts a
// TCP switch in front of it that can cut the network, and waits for
// conditions with deadlines instead of sleeping.
package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/procs"
	"github.com/parley-chat/parley/internal/testredis"
)

// Run builds the binary into a temporary directory, stores its path in
// *bin, runs the tests, removes the binary and returns m.Run's exit code.
// Call it from TestMain.
//
// Unless -parallel is given, it lets parallel tests run parallel wide: the
// tests spend their time waiting for demo answers written at a set pace, so
// more of them at once than GOMAXPROCS (the default) fit on a small machine.
//
// It raises the open-file limit first (FileLimit): one test holds a thousand
// viewers' connections, and on a machine whose limit is 1,024 the tests
// beside it then failed to dial or to start processes.
func Run(m *testing.M, bin *string, parallel int) int {
	flag.Parse()
	if _, err := procs.RaiseFileLimit(FileLimit); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(parallel))
	}
	dir, err := os.MkdirTemp("", "parley-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	*bin, err = procs.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// FileLimit is the open-file limit Run asks for: enough for the crowd tests
// and everything that runs beside them.
const FileLimit = 65536

// Speed is the pace of the offline demo model: tokens per second and answer
// length in tokens.
type Speed struct {
	TPS    float64
	Tokens int
}

// ShutdownTimeout is the -shutdown-timeout every app gets unless a test
// overrides it.
const ShutdownTimeout = 5 * time.Second

// App is one Parley process started by Launch.
type App struct {
	*procs.Proc
	t testing.TB
}

// Launch runs the binary as a test's app: on a private redis-server (a new
// one when redisURL is empty) given as REDIS_URL, with env besides (secrets,
// such as PARLEY_ACCESS_CODE, have no flags) and nothing else from the
// environment, on free ports for the app and its metrics, with the demo
// model at pace s. extra flags come last, so they override these. It waits
// until the app serves, and at the end of the test stops it with SIGTERM and
// fails the test if it does not exit cleanly.
func Launch(t testing.TB, bin string, s Speed, redisURL string, env map[string]string, extra ...string) *App {
	t.Helper()
	if redisURL == "" {
		redisURL = testredis.Start(t).URL()
	}
	args := []string{
		"-addr", "127.0.0.1:0",
		"-model", "demo",
		"-demo-tokens-per-second", strconv.FormatFloat(s.TPS, 'f', -1, 64),
		"-demo-tokens", strconv.Itoa(s.Tokens),
		"-log-level", "warn",
		"-shutdown-timeout", ShutdownTimeout.String(),
		"-metrics-addr", "127.0.0.1:0",
	}
	vars := map[string]string{"REDIS_URL": redisURL}
	for k, v := range env {
		vars[k] = v
	}
	return Exec(t, bin, "parley", append(args, extra...), vars)
}

// Exec runs the binary with exactly args and env, waits until it serves, and
// at the end of the test stops it as Launch does.
func Exec(t testing.TB, bin, name string, args []string, env map[string]string) *App {
	t.Helper()
	a := &App{Proc: procs.Exec(t, bin, name, args, env), t: t}
	t.Cleanup(a.Shutdown) // before procs' cleanup, which kills what is left
	return a
}

// Shutdown sends SIGTERM, as main's signal handling expects from a platform,
// waits for the process to exit, and fails the test unless it exits cleanly
// within 30 s. Called again, it reports the same exit.
func (a *App) Shutdown() {
	if err := a.Terminate(30 * time.Second); err != nil {
		a.t.Errorf("%s: %v", a.Name, err)
	}
}

// WaitUntil polls cond every 20 ms until it holds, and fails the test if it
// does not within timeout.
func WaitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
