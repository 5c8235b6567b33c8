package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseCPUList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string
		n    int
	}{{"0", "0", 1}, {"0-1", "0-1", 2}, {" 1 ", "1", 1}, {"0,0-1", "0-1", 2}} {
		if !available(t, tc.n) {
			continue
		}
		l, err := parseCPUList(tc.in)
		if err != nil {
			t.Errorf("parseCPUList(%q): %v", tc.in, err)
			continue
		}
		if got := describeSet(&l.set); got != tc.want || l.n != tc.n {
			t.Errorf("parseCPUList(%q) = %s (%d CPUs), want %s (%d)", tc.in, got, l.n, tc.want, tc.n)
		}
	}
	if l, err := parseCPUList(""); l != nil || err != nil {
		t.Errorf(`parseCPUList("") = %v, %v; want no list`, l, err)
	}
	for _, bad := range []string{"a", "1-0", "-1", "0-", "2000", "0,,1"} {
		if _, err := parseCPUList(bad); err == nil || !strings.Contains(err.Error(), "CPU") {
			t.Errorf("parseCPUList(%q): %v, want an error that speaks of CPUs", bad, err)
		}
	}
	if _, err := parseCPUList("1023"); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf(`parseCPUList("1023") on this machine: %v, want "not available"`, err)
	}
}

// available says whether this process may use CPUs 0..n-1.
func available(t *testing.T, n int) bool {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for c := range n {
		if !set.IsSet(c) {
			return false
		}
	}
	return true
}

// TestStartPinnedChildRunsOnlyThere starts a Go program (this test binary,
// asked to run no test) on CPU 0 alone and reads where each of its threads
// may run, and its GOMAXPROCS, from inside it.
func TestStartPinnedChildRunsOnlyThere(t *testing.T) {
	t.Parallel()
	l, err := parseCPUList("0")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperReportAffinity$")
	cmd.Env = append(os.Environ(), "PARLEY_LOAD_HELPER=1")
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = out
	if err := startPinned(cmd, &l.set); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "affinity 0 (all ") || !strings.Contains(string(b), "gomaxprocs 1\n") {
		t.Fatalf("child reported %q, want all its threads on CPU 0 and GOMAXPROCS 1", b)
	}
	// This thread went back: the test process still has every CPU it had.
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if available(t, 2) && set.Count() < 2 {
		t.Fatalf("after startPinned this thread is left on %s", describeSet(&set))
	}
}

// TestPinSelfPinsEveryThread runs a child that pins itself to CPU 0 after
// it has started threads, and reads where its threads may run.
func TestPinSelfPinsEveryThread(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperReportAffinity$")
	cmd.Env = append(os.Environ(), "PARLEY_LOAD_HELPER=1", "PARLEY_LOAD_PIN_SELF=0")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "affinity 0 (all ") || !strings.Contains(string(b), "gomaxprocs 1\n") {
		t.Fatalf("child reported %q, want all its threads on CPU 0 and GOMAXPROCS 1", b)
	}
}

// TestHelperReportAffinity is the child of the test above; alone it does
// nothing.
func TestHelperReportAffinity(t *testing.T) {
	if os.Getenv("PARLEY_LOAD_HELPER") != "1" {
		return
	}
	if os.Getenv("PARLEY_LOAD_PIN_SELF") != "" {
		l, err := parseCPUList(os.Getenv("PARLEY_LOAD_PIN_SELF"))
		if err != nil {
			t.Fatal(err)
		}
		// Threads started before pinning: they must be caught too.
		done := make(chan struct{})
		for range 4 {
			go func() { runtime.LockOSThread(); <-done }()
		}
		if err := pinSelf(l); err != nil {
			t.Fatal(err)
		}
		close(done)
	}
	os.Stdout.WriteString("affinity " + affinityOf(os.Getpid()) + "\ngomaxprocs " + strconv.Itoa(runtime.GOMAXPROCS(0)) + "\n")
}

func TestPinningSaysWhereEachSideRan(t *testing.T) {
	t.Parallel()
	p := pinning{ServerCPUs: "1", LoadCPUs: "0", LoadGOMAXPROCS: 1, ServerAffinity: "1 (all 7 threads)"}
	got := p.describe()
	for _, want := range []string{"server, redis-server and Redis counter pinned to CPU 1", "load generator pinned to CPU 0 (GOMAXPROCS 1)", "server threads allowed on CPU 1 (all 7 threads)"} {
		if !strings.Contains(got, want) {
			t.Errorf("describe() = %q, want %q in it", got, want)
		}
	}
	if got := (pinning{LoadGOMAXPROCS: 2}).cpus(); got != "server unpinned; load generator unpinned (GOMAXPROCS 2)" {
		t.Errorf("unpinned: %q", got)
	}
	if got := shortPin(p.cpus()); got != "server on CPU 1" {
		t.Errorf("shortPin = %q", got)
	}
}
