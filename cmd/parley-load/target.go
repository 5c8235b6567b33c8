package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

// target is one server under load: Parley or the naive baseline, with the
// private redis-server it uses, or a server given by URL.
type target struct {
	name       string // "parley" or "naive"
	url        string
	pid        int    // 0 when the server is not ours: stats come from metricsURL
	metricsURL string // Prometheus text endpoint, "" when none
	rdb        *redis.Client
	redisPID   int
	counter    *counterProc // between the server and Redis; nil with -url
	pprofURL   string       // the server's profiler, when started with one
	cpus       *unix.CPUSet // where the server and its redis-server run; nil: anywhere
	affinity   string       // where the server's threads may run, read after its start

	procs []*exec.Cmd
	logs  []*os.File
}

// serverOptions are what a started server is configured with.
type serverOptions struct {
	Model  string  // clock or demo
	TPS    float64 // default pace (answers override it in the prompt)
	Tokens int
	Extra  []string // more flags for parley
	Env    []string // more environment for parley
	Pprof  bool     // serve the profiler
}

// profile records a CPU profile of the server for d into path, in the
// background; wait returns once it is written.
func (t *target) profile(ctx context.Context, d time.Duration, path string) (wait func()) {
	if t.pprofURL == "" || path == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(d.Seconds()+0.5))
		req, err := http.NewRequestWithContext(ctx, "GET", t.pprofURL+"/profile?seconds="+strconv.Itoa(secs), nil)
		if err != nil {
			return
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer res.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, res.Body)
	}()
	return func() { <-done }
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// buildParley compiles the server into dir.
func buildParley(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "parley")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/parley-chat/parley")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build parley (run the tool from the repository): %w", err)
	}
	return bin, nil
}

// startRedis runs a private redis-server on a free port. It persists nothing.
func (t *target) startRedis(ctx context.Context, dir string, count bool) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--maxclients", "60000", "--dir", dir)
	if err := t.start(cmd, filepath.Join(dir, t.name+"-redis.log")); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	t.redisPID = cmd.Process.Pid
	t.rdb = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := t.rdb.Ping(ctx).Err(); err == nil {
			break
		} else if time.Now().After(deadline) {
			return "", fmt.Errorf("redis-server did not answer: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !count {
		return "redis://127.0.0.1:" + strconv.Itoa(port), nil
	}
	// The server talks to Redis through a counter of its round trips.
	t.counter, err = t.startCounter("127.0.0.1:"+strconv.Itoa(port), filepath.Join(dir, t.name+"-counter.log"))
	if err != nil {
		return "", err
	}
	return "redis://" + t.counter.addr, nil
}

// startParley runs the Parley binary against redisURL.
func (t *target) startParley(ctx context.Context, bin, dir, redisURL string, o serverOptions) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	mport, err := freePort()
	if err != nil {
		return err
	}
	args := []string{
		"-addr", "127.0.0.1:" + strconv.Itoa(port), "-redis-url", redisURL,
		"-model", o.Model, "-demo-tokens-per-second", fmtFloat(o.TPS), "-demo-tokens", strconv.Itoa(o.Tokens),
		"-max-viewers", "50000", "-max-generations", "2000", "-log-level", "warn",
		// Every load comes from one address: the limits per client address
		// (and the deployment's token budget) would stop it.
		"-max-viewers-per-address", "0", "-posts-per-minute-per-address", "0",
		"-max-generations-per-address", "0", "-conversations-per-hour-per-address", "0",
		"-conversations-per-hour", "0", "-daily-tokens", "0", "-max-stored-bytes-per-browser", "0",
	}
	if o.Pprof {
		pport, err := freePort()
		if err != nil {
			return err
		}
		args = append(args, "-pprof-addr", "127.0.0.1:"+strconv.Itoa(pport))
		t.pprofURL = "http://127.0.0.1:" + strconv.Itoa(pport) + "/debug/pprof"
	}
	args = append(args, o.Extra...)
	cmd := exec.Command(bin, args...)
	// /metrics, where the server has it, on a port of our own.
	maddr := "127.0.0.1:" + strconv.Itoa(mport)
	cmd.Env = append(append(os.Environ(), "METRICS_ADDR="+maddr, "PARLEY_METRICS_ADDR="+maddr), o.Env...)
	if err := t.start(cmd, filepath.Join(dir, t.name+".log")); err != nil {
		return fmt.Errorf("start parley: %w", err)
	}
	t.pid = cmd.Process.Pid
	t.url = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitHealthy(ctx, t.url); err != nil {
		return err
	}
	t.affinity = affinityOf(t.pid)
	if scrape(ctx, "http://"+maddr+"/metrics") != nil {
		t.metricsURL = "http://" + maddr + "/metrics"
	}
	return nil
}

// startNaive runs this program's naive server (a subcommand) against redisURL.
func (t *target) startNaive(ctx context.Context, dir, redisURL string, o serverOptions) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the load tool's binary: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "serve-naive", "-addr", "127.0.0.1:"+strconv.Itoa(port), "-redis-url", redisURL,
		"-model", o.Model, "-tps", fmtFloat(o.TPS), "-tokens", strconv.Itoa(o.Tokens))
	if err := t.start(cmd, filepath.Join(dir, t.name+".log")); err != nil {
		return fmt.Errorf("start naive server: %w", err)
	}
	t.pid = cmd.Process.Pid
	t.url = "http://127.0.0.1:" + strconv.Itoa(port)
	t.metricsURL = t.url + "/metrics"
	if err := waitHealthy(ctx, t.url); err != nil {
		return err
	}
	t.affinity = affinityOf(t.pid)
	return nil
}

func (t *target) start(cmd *exec.Cmd, logPath string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	if cmd.Stdout == nil { // else the caller reads it
		cmd.Stdout = f
	}
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startPinned(cmd, t.cpus); err != nil {
		f.Close()
		return err
	}
	t.procs = append(t.procs, cmd)
	t.logs = append(t.logs, f)
	return nil
}

// stop ends what the target started, newest first, and waits for each.
func (t *target) stop() {
	if t.rdb != nil {
		_ = t.rdb.Close()
	}
	for i := len(t.procs) - 1; i >= 0; i-- {
		p := t.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	for _, f := range t.logs {
		_ = f.Close()
	}
	t.counter = nil
	t.procs, t.logs = nil, nil
}

func waitHealthy(ctx context.Context, base string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/healthz", nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server at %s did not become healthy: %v", base, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// procStats are what /proc tells about a process.
type procStats struct {
	CPU     float64 // user+system seconds since start
	RSS     int64   // resident bytes now
	HWM     int64   // peak resident bytes
	Threads int
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func readProc(pid int) (procStats, error) {
	var s procStats
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return s, err
	}
	// The command name may hold spaces; fields after its ")" are fixed.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	s.CPU = (utime + stime) / clockTicks
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "VmRSS":
			s.RSS = n << 10
		case "VmHWM":
			s.HWM = n << 10
		case "Threads":
			s.Threads = int(n)
		}
	}
	return s, nil
}

// sampler watches a server while a scenario runs: peak RSS and goroutines.
type sampler struct {
	t    *target
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	peakRSS    float64
	peakGo     float64
	peakThread int
	lastRSS    float64
	lastGo     float64
}

func (t *target) sample(ctx context.Context, every time.Duration) *sampler {
	s := &sampler{t: t, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		n := 0
		for {
			s.once(ctx, n%10 == 0)
			n++
			select {
			case <-s.stop:
				s.once(ctx, true)
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// once takes one sample; metrics are scraped only now and then (withMetrics),
// since a scrape costs the server more than reading /proc.
func (s *sampler) once(ctx context.Context, withMetrics bool) {
	var rss, gor float64
	var threads int
	if s.t.pid != 0 {
		if p, err := readProc(s.t.pid); err == nil {
			rss, threads = float64(p.RSS), p.Threads
		}
	}
	if withMetrics && s.t.metricsURL != "" {
		if p := scrape(ctx, s.t.metricsURL); p != nil {
			gor = p.Goroutines
			if s.t.pid == 0 {
				rss = p.RSS
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rss > 0 {
		s.lastRSS = rss
		s.peakRSS = max(s.peakRSS, rss)
	}
	if gor > 0 {
		s.lastGo = gor
		s.peakGo = max(s.peakGo, gor)
	}
	s.peakThread = max(s.peakThread, threads)
}

func (s *sampler) finish() {
	close(s.stop)
	<-s.done
}

// serverCPU returns the server's CPU seconds so far, and redis-server's.
func (t *target) serverCPU(ctx context.Context) (server, redisCPU float64) {
	if t.pid != 0 {
		if p, err := readProc(t.pid); err == nil {
			server = p.CPU
		}
	} else if t.metricsURL != "" {
		if p := scrape(ctx, t.metricsURL); p != nil {
			server = p.CPU
		}
	}
	if t.redisPID != 0 {
		if p, err := readProc(t.redisPID); err == nil {
			redisCPU = p.CPU
		}
	}
	return server, redisCPU
}

// redisStats are Redis's command counters and its subscribers.
type redisStats struct {
	Calls       map[string]int64
	Subscribers int // client connections with at least one (s)subscription
	Clients     int
}

// ownCommands are the tool's own, left out of the counts.
var ownCommands = map[string]bool{"info": true, "client|list": true, "client": true, "config|resetstat": true, "xlen": true}

func readRedis(ctx context.Context, rdb *redis.Client) (redisStats, error) {
	st := redisStats{Calls: map[string]int64{}}
	if rdb == nil {
		return st, errors.New("no redis")
	}
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return st, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		cmd, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd || ownCommands[cmd] {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				st.Calls[cmd] = n
			}
		}
	}
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		return st, fmt.Errorf("redis CLIENT LIST: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if line == "" {
			continue
		}
		st.Clients++
		subs := 0
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			if k == "sub" || k == "psub" || k == "ssub" {
				n, _ := strconv.Atoi(v)
				subs += n
			}
		}
		if subs > 0 {
			st.Subscribers++
		}
	}
	return st, nil
}

// diff is after minus before, per command, with the total.
func (a redisStats) diff(b redisStats) (map[string]int64, int64) {
	return diffCalls(a.Calls, b.Calls)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// connectRedis uses a Redis the tool did not start (with -url).
func (t *target) connectRedis(u string) error {
	opts, err := redis.ParseURL(u)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	t.rdb = redis.NewClient(opts)
	return nil
}
