// Command parley-load measures Parley the way browsers use it, next to a
// deliberately naive baseline measured in the same run.
//
// It creates conversations over HTTP (the home page's form, then the
// composer's), attaches SSE viewers that parse every Datastar frame (joining
// before, during and after an answer; some dropping their stream and
// reconnecting with Last-Event-ID; some reading slowly), and reports
// token-to-viewer latency, delivery rates, SSE bytes, exactness (each
// viewer's answer, rebuilt by applying its frames to its page, against the
// stored one), server CPU, memory and goroutines, and Redis commands.
//
// Latency comes from the "clock" model (llm.Clock): every token carries the
// time it was emitted, and viewers read it out of the frames they receive.
//
//	go run ./cmd/parley-load                       # every scenario, Parley and naive
//	go run ./cmd/parley-load -scenario fanout-1k   # one of them
//	go run ./cmd/parley-load -list                 # the scenarios and their targets
//	go run ./cmd/parley-load -url http://host:8080 -scenario redis -variants parley
//	go run ./cmd/parley-load -scenario fanout-5k -server-cpus 1 -load-cpus 0
//	go run ./cmd/parley-load -scenario fanout-100,fanout-2k,idle-5k -json a.json
//	go run ./cmd/parley-load plot -in a.json,b.json -out docs/plots
//
// By default the tool builds Parley, starts a private redis-server for each
// run, and starts the server with -model clock; the naive server is this
// program's own "serve-naive" subcommand. Results go to stdout as tables and,
// with -json, to a file. Load generator and server share the machine: every
// figure says so, and says where each ran: -server-cpus starts the server
// with its redis-server (and the Redis counter) on the CPUs given, and
// -load-cpus keeps this process on others, so that the server's figures are
// its own and not the load generator's. The plot subcommand draws SVG
// charts against viewers from the JSON of fanout-N and idle-N runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/internal/procs"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "parley-load:", err)
		os.Exit(1)
	}
}

type options struct {
	scenarios []string
	variants  []string
	url       string
	redisURL  string
	metrics   string
	bin       string
	jsonPath  string
	seed      uint64
	keep      bool
	pprof     bool
	count     bool
	gzip      bool     // viewers accept gzip, as browsers do
	extra     []string // more flags for the Parley server
	env       []string // more environment for the Parley server
	cpuprof   string   // the load tool's own CPU profile
	over      scenario // overrides, where set
	set       map[string]bool
	serverCPU *cpuList // where the servers and their redis-servers run; nil: anywhere
	loadCPU   *cpuList // where this process runs; nil: anywhere
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve-naive" {
		return runNaive(ctx, args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "plot" {
		return runPlot(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "count-redis" {
		return runCounter(ctx, args[1:], stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	o, err := parseFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	if o.loadCPU != nil {
		if err := pinSelf(o.loadCPU); err != nil {
			return err
		}
	}
	stopProfile, err := startCPUProfile(o.cpuprof)
	if err != nil {
		return err
	}
	defer stopProfile()
	limit, err := procs.RaiseFileLimit(200_000)
	if err != nil {
		fmt.Fprintln(stderr, "parley-load: warning:", err)
	}
	machine := machineLine(o)
	fmt.Fprintf(stdout, "parley-load: %s; open-file limit %d\n", machine, limit)

	dir, cleanup, err := workDir(o.keep, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	bin := o.bin
	if bin == "" && o.url == "" && contains(o.variants, "parley") {
		fmt.Fprintln(stderr, "building parley...")
		if bin, err = buildParley(ctx, dir); err != nil {
			return err
		}
	}
	flags := supportedFlags(ctx, bin)

	prog := newProgress(os.Stderr)
	r := &runner{log: stderr, prog: prog, gzip: o.gzip, rng: rand.New(rand.NewPCG(o.seed, 1))}
	if o.keep {
		r.dump = dir
	}
	if o.pprof {
		r.profile = dir
	}
	var pairs []pair
	var failures []error
	for _, s := range selectScenarios(o) {
		p, errs := r.runPair(ctx, s, o, bin, dir, flags)
		failures = append(failures, errs...)
		pairs = append(pairs, p)
		printTable(stdout, []pair{p}, machine)
		if o.jsonPath != "" {
			if err := writeJSON(o.jsonPath, pairs, machine, "go run ./cmd/parley-load "+strings.Join(args, " ")); err != nil {
				return err
			}
		}
	}
	return errors.Join(failures...)
}

// runPair runs s against each variant asked for, with the same plan.
func (r *runner) runPair(ctx context.Context, s scenario, o options, bin, dir string, flags map[string]bool) (pair, []error) {
	p := pair{Scenario: s.Name}
	var failures []error
	for _, variant := range o.variants {
		if ctx.Err() != nil {
			break
		}
		r.rng = rand.New(rand.NewPCG(o.seed, 1)) // both variants get the same plan
		loadBefore := loadAverage()
		res, err := r.runOne(ctx, s, variant, o, bin, dir, flags)
		if err != nil {
			failures = append(failures, fmt.Errorf("%s/%s: %w", s.Name, variant, err))
			fmt.Fprintf(r.log, "parley-load: %s/%s failed: %v\n", s.Name, variant, err)
			continue
		}
		res.Viewers, res.Kind = s.viewers(), s.Kind
		res.Pinning = pinningOf(o, r.serverAffinity)
		res.Notes = append(res.Notes, res.Pinning.describe()+"; load average before the run: "+loadBefore+", after: "+loadAverage())
		if variant == "parley" {
			p.Parley = res
		} else {
			p.Naive = res
		}
	}
	return p, failures
}

// workDir makes the directory for the servers' logs; cleanup removes it
// unless it is to be kept.
func workDir(keep bool, stderr io.Writer) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "parley-load-")
	if err != nil {
		return "", nil, fmt.Errorf("work directory: %w", err)
	}
	if keep {
		fmt.Fprintln(stderr, "logs kept in", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// startCPUProfile profiles this process into path until stop is called
// ("": no profile).
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// runOne starts the server of variant (unless -url), runs s, stops it.
func (r *runner) runOne(ctx context.Context, s scenario, variant string, o options, bin, dir string, flags map[string]bool) (*result, error) {
	t := &target{name: variant}
	defer t.stop()
	if o.serverCPU != nil {
		t.cpus = &o.serverCPU.set
	}
	defer func() { r.serverAffinity = t.affinity }()
	if o.url != "" {
		t.url, t.metricsURL = strings.TrimRight(o.url, "/"), o.metrics
		if o.redisURL != "" {
			if err := t.connectRedis(o.redisURL); err != nil {
				return nil, err
			}
		}
	} else {
		// Round trips are counted where they are reported: idle viewers
		// need none, and the counter would double this process's sockets.
		redisURL, err := t.startRedis(ctx, dir, o.count && s.Kind != "idle")
		if err != nil {
			return nil, err
		}
		so := serverOptions{Model: "clock", TPS: s.TPS, Tokens: s.Tokens, Pprof: o.pprof && flags["pprof-addr"]}
		// Limits a person would hit are lifted: here one "person" posts 100
		// messages in a row, and 200 answers run at once.
		for name, value := range map[string]string{
			"posts-per-minute": "100000", "owner-generations": "100000", "max-owner-generations": "100000",
		} {
			if flags[name] {
				so.Extra = append(so.Extra, "-"+name, value)
			}
		}
		if variant == "parley" {
			so.Extra, so.Env = append(so.Extra, o.extra...), o.env
			err = t.startParley(ctx, bin, dir, redisURL, so)
		} else {
			err = t.startNaive(ctx, dir, redisURL, so)
		}
		if err != nil {
			return nil, err
		}
	}
	r.prog.begin(s.Name + "/" + variant)
	defer r.prog.end()
	switch s.Kind {
	case "idle":
		return r.runIdle(ctx, s, t)
	case "page":
		return r.runPage(ctx, s, t)
	default:
		return r.runStream(ctx, s, t)
	}
}

func parseFlags(args []string, stdout, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("parley-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenario", "all", "comma-separated scenario names, or all (see -list)")
	variants := fs.String("variants", "parley,naive", "servers to measure: parley, naive or both")
	list := fs.Bool("list", false, "list the scenarios and exit")
	fs.StringVar(&o.url, "url", "", "measure a running Parley at this URL instead of starting one (its model must be clock)")
	fs.StringVar(&o.redisURL, "redis-url", "", "with -url: the server's Redis, for INFO commandstats")
	fs.StringVar(&o.metrics, "metrics-url", "", "with -url: the server's Prometheus endpoint (process CPU, RSS, goroutines)")
	fs.StringVar(&o.bin, "bin", "", "a Parley binary to run instead of building one")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of who joins when")
	fs.BoolVar(&o.pprof, "pprof", false, "record a CPU profile of Parley during each run (implies -keep; needs a server with -pprof-addr)")
	serverFlags := fs.String("server-flags", "", "more flags for the Parley server the tool starts, e.g. \"-frame-budget 0\"")
	serverEnv := fs.String("server-env", "", "more environment for the Parley server, e.g. \"GOGC=50\"")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write the load tool's own CPU profile to this file")
	fs.BoolVar(&o.gzip, "gzip", true, "viewers send Accept-Encoding: gzip, as browsers do (bytes are counted on the wire)")
	fs.BoolVar(&o.count, "count-redis", true, "count the server's Redis round trips through a relay process (adds a hop)")
	fs.BoolVar(&o.keep, "keep", false, "keep the servers' logs and what inexact viewers received (the directory is printed)")
	serverCPUs := fs.String("server-cpus", "", "CPUs for the server and its redis-server (and Redis counter), e.g. 1 or 0-1; default anywhere")
	loadCPUs := fs.String("load-cpus", "", "CPUs for this load generator (GOMAXPROCS follows), e.g. 0; default anywhere")
	fs.IntVar(&o.over.Convs, "convs", 0, "override: conversations")
	fs.IntVar(&o.over.Viewers, "viewers", 0, "override: viewers per conversation")
	fs.IntVar(&o.over.Tokens, "tokens", 0, "override: tokens per answer")
	fs.Float64Var(&o.over.TPS, "tps", 0, "override: tokens per second")
	fs.Float64Var(&o.over.During, "during", 0, "override: share of viewers joining mid-answer")
	fs.Float64Var(&o.over.After, "after", 0, "override: share joining after the end")
	fs.Float64Var(&o.over.Reconnect, "reconnect", 0, "override: share reconnecting once with Last-Event-ID")
	fs.Float64Var(&o.over.Slow, "slow", 0, "override: share reading slowly")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.pprof {
		o.keep = true
	}
	var err error
	if o.serverCPU, err = parseCPUList(*serverCPUs); err != nil {
		return o, fmt.Errorf("-server-cpus: %w", err)
	}
	if o.loadCPU, err = parseCPUList(*loadCPUs); err != nil {
		return o, fmt.Errorf("-load-cpus: %w", err)
	}
	if o.serverCPU != nil && o.url != "" {
		return o, errors.New("-server-cpus pins the servers this tool starts: with -url, pin the server where it runs")
	}
	o.extra = strings.Fields(*serverFlags)
	o.env = strings.Fields(*serverEnv)
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if *list {
		for _, s := range scenarios() {
			fmt.Fprintf(stdout, "%-12s %s\n             target: %s\n", s.Name, s.Title, s.Target)
		}
		fmt.Fprintf(stdout, "%-12s %s\n%-12s %s\n", "fanout-N", "as fanout-1k with N viewers (e.g. fanout-100, fanout-2k)",
			"idle-N", "as idle-10k with N viewers, 100 a conversation (e.g. idle-100, idle-5k)")
		return o, flag.ErrHelp
	}
	o.variants = strings.Split(*variants, ",")
	for _, v := range o.variants {
		if v != "parley" && v != "naive" {
			return o, fmt.Errorf("-variants: %q is neither parley nor naive", v)
		}
	}
	if o.url != "" && contains(o.variants, "naive") {
		return o, errors.New("-url measures one server: use -variants parley")
	}
	for _, name := range strings.Split(*scen, ",") {
		if name != "all" {
			if _, err := scenarioNamed(name); err != nil {
				return o, fmt.Errorf("-scenario: %w", err)
			}
		}
		o.scenarios = append(o.scenarios, name)
	}
	return o, nil
}

// selectScenarios are the scenarios asked for, in the order asked, with
// the overrides applied.
func selectScenarios(o options) []scenario {
	var out []scenario
	var chosen []scenario
	for _, name := range o.scenarios {
		if name == "all" {
			chosen = append(chosen, scenarios()...)
		} else if s, err := scenarioNamed(name); err == nil {
			chosen = append(chosen, s)
		}
	}
	for _, s := range chosen {
		if o.set["convs"] {
			s.Convs = o.over.Convs
		}
		if o.set["viewers"] {
			s.Viewers = o.over.Viewers
		}
		if o.set["tokens"] {
			s.Tokens = o.over.Tokens
		}
		if o.set["tps"] {
			s.TPS = o.over.TPS
		}
		if o.set["during"] {
			s.During = o.over.During
		}
		if o.set["after"] {
			s.After = o.over.After
		}
		if o.set["reconnect"] {
			s.Reconnect = o.over.Reconnect
		}
		if o.set["slow"] {
			s.Slow = o.over.Slow
		}
		out = append(out, s)
	}
	return out
}

// supportedFlags lists the flags the Parley binary accepts, so that limits
// are lifted only where the server has them.
func supportedFlags(ctx context.Context, bin string) map[string]bool {
	out := map[string]bool{}
	if bin == "" {
		return out
	}
	b, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput() // -h exits non-zero on some versions
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "-"); ok {
			name, _, _ = strings.Cut(name, " ")
			out[name] = true
		}
	}
	return out
}

// machineLine describes where the figures come from.
func machineLine(o options) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	where := "load generator on the same machine, neither pinned"
	if o.serverCPU != nil || o.loadCPU != nil {
		where = "load generator on the same machine; " + pinningOf(o, "").cpus()
	}
	return fmt.Sprintf("%d cores (%s), %s; %s", cores(), model, time.Now().Format("2006-01-02"), where)
}

// cores counts the machine's online CPUs (runtime.NumCPU counts only
// those this process may use, fewer once it is pinned).
func cores() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		b := a
		if isRange {
			b, _ = strconv.Atoi(hi)
		}
		n += b - a + 1
	}
	return n
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

// loadAverage is the 1-minute load average: other work on a shared machine
// shows up in every figure, so each result says how busy the machine was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}
