package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuList is a set of CPUs as given on the command line ("0", "1", "0-1",
// "0,2-3"), kept with its text for the report.
type cpuList struct {
	text string
	set  unix.CPUSet
	n    int
}

// parseCPUList reads a list of CPUs in the kernel's notation. "" is no
// list (no pinning).
func parseCPUList(s string) (*cpuList, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	l := &cpuList{text: s}
	l.set.Zero()
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return nil, fmt.Errorf("%q is not a CPU list: write CPU numbers and ranges such as 0, 1 or 0-1", s)
		}
		for c := a; c <= b; c++ {
			if !l.set.IsSet(c) {
				l.set.Set(c)
				l.n++
			}
		}
	}
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err == nil {
		for c := range 1024 {
			if l.set.IsSet(c) && !all.IsSet(c) {
				return nil, fmt.Errorf("CPU %d in %q is not available to this process (it may use %s)", c, s, describeSet(&all))
			}
		}
	}
	return l, nil
}

// describeSet writes a CPU set as a list, e.g. "0-1".
func describeSet(set *unix.CPUSet) string {
	var parts []string
	for c := 0; c < 1024; c++ {
		if !set.IsSet(c) {
			continue
		}
		end := c
		for end+1 < 1024 && set.IsSet(end+1) {
			end++
		}
		if end == c {
			parts = append(parts, strconv.Itoa(c))
		} else {
			parts = append(parts, strconv.Itoa(c)+"-"+strconv.Itoa(end))
		}
		c = end
	}
	return strings.Join(parts, ",")
}

// pinSelf confines every thread of this process to l and sets GOMAXPROCS
// to its size. The affinity of a thread is per thread on Linux and a new
// thread inherits its creator's, so once every thread that exists is
// pinned, every later one is too; threads the runtime starts meanwhile are
// caught by going over the list again until a pass finds nothing to change.
func pinSelf(l *cpuList) error {
	for pass := 0; ; pass++ {
		changed, err := pinThreads(os.Getpid(), &l.set)
		if err != nil {
			return err
		}
		if changed == 0 {
			break
		}
		if pass == 20 {
			return fmt.Errorf("pin the load generator to CPUs %s: threads kept appearing", l.text)
		}
	}
	runtime.GOMAXPROCS(l.n)
	return nil
}

// pinThreads sets the affinity of each thread of pid that does not have
// set yet, and returns how many it changed.
func pinThreads(pid int, set *unix.CPUSet) (int, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list the threads of %d: %w", pid, err)
	}
	changed := 0
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var cur unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &cur); err == nil && cur == *set {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			if err == unix.ESRCH { // the thread ended meanwhile
				continue
			}
			return changed, fmt.Errorf("set the CPU affinity of thread %d to %s: %w", tid, describeSet(set), err)
		}
		changed++
	}
	return changed, nil
}

// startPinned starts cmd with its first thread already on set: the
// calling thread is locked, moved to set, and forks there (a child inherits
// the forking thread's affinity), then moved back. The child's runtime
// thus sees only set from its first instruction: Go sizes GOMAXPROCS from
// it, and no thread of the child ever runs elsewhere, which setting the
// affinity after the start could not promise. set nil starts cmd as is.
func startPinned(cmd *exec.Cmd, set *unix.CPUSet) error {
	if set == nil {
		return cmd.Start()
	}
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read this thread's CPU affinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, set); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("move to CPUs %s to start %s: %w", describeSet(set), cmd.Path, err)
	}
	startErr := cmd.Start()
	if err := unix.SchedSetaffinity(0, &old); err != nil {
		// The thread stays locked to this goroutine rather than run the
		// load generator's other work on the server's CPUs; the run fails.
		return fmt.Errorf("move back to CPUs %s: %w", describeSet(&old), err)
	}
	runtime.UnlockOSThread()
	return startErr
}

// affinityOf describes where the threads of pid may run, e.g. "1 (9
// threads)", or "mixed: ..." when they differ.
func affinityOf(pid int) string {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return "unknown"
	}
	seen := map[string]int{}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var set unix.CPUSet
		if unix.SchedGetaffinity(tid, &set) == nil {
			seen[describeSet(&set)]++
		}
	}
	if len(seen) == 1 {
		for k, n := range seen {
			return fmt.Sprintf("%s (all %d threads)", k, n)
		}
	}
	var parts []string
	for k, n := range seen {
		parts = append(parts, fmt.Sprintf("%d threads on %s", n, k))
	}
	return "mixed: " + strings.Join(parts, ", ")
}

// pinning is where a run's processes ran, as reported with its figures.
type pinning struct {
	ServerCPUs     string `json:"server_cpus,omitempty"` // asked for; "" anywhere
	LoadCPUs       string `json:"load_cpus,omitempty"`
	LoadGOMAXPROCS int    `json:"load_gomaxprocs"`
	ServerAffinity string `json:"server_affinity,omitempty"` // read from /proc after the server started
	LoadAffinity   string `json:"load_affinity,omitempty"`   // this process's threads, read after the run
}

func pinningOf(o options, serverAffinity string) pinning {
	p := pinning{LoadGOMAXPROCS: runtime.GOMAXPROCS(0), ServerAffinity: serverAffinity}
	p.LoadAffinity = affinityOf(os.Getpid())
	if o.serverCPU != nil {
		p.ServerCPUs = o.serverCPU.text
	}
	if o.loadCPU != nil {
		p.LoadCPUs = o.loadCPU.text
	}
	return p
}

// cpus says where each side was asked to run.
func (p pinning) cpus() string {
	server, load := "server unpinned", "load generator unpinned"
	if p.ServerCPUs != "" {
		server = "server, redis-server and Redis counter pinned to CPU " + p.ServerCPUs
	}
	if p.LoadCPUs != "" {
		load = "load generator pinned to CPU " + p.LoadCPUs
	}
	return fmt.Sprintf("%s; %s (GOMAXPROCS %d)", server, load, p.LoadGOMAXPROCS)
}

// describe is cpus with where the server's threads were found to run.
func (p pinning) describe() string {
	s := p.cpus()
	if p.ServerAffinity != "" {
		s += "; server threads allowed on CPU " + p.ServerAffinity
	}
	if p.LoadAffinity != "" {
		s += "; load generator threads on CPU " + p.LoadAffinity
	}
	return s
}
