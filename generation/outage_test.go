package generation_test

// Redis out of reach for longer than a lease, as each process sees it: a
// hook in each process's Redis client fails its commands while the process
// is cut off, so the tests decide who comes back when (the real Redis runs on
// and lets the leases run out). See redispause_test.go in the root package
// for the same with a paused redis-server.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

var errCutOff = errors.New("injected: redis does not answer")

// cutoff fails the commands of one process's Redis client while on (all of
// them, or those match says) without sending them.
type cutoff struct {
	on    atomic.Bool
	match func(args []any) bool // nil: every command
}

func (c *cutoff) cut(cmds ...redis.Cmder) bool {
	if !c.on.Load() {
		return false
	}
	if c.match == nil {
		return true
	}
	for _, cmd := range cmds {
		if c.match(cmd.Args()) {
			return true
		}
	}
	return false
}

func (c *cutoff) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cutoff) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if c.cut(cmd) {
			cmd.SetErr(errCutOff)
			return errCutOff
		}
		return next(ctx, cmd)
	}
}

func (c *cutoff) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if c.cut(cmds...) {
			for _, cmd := range cmds {
				cmd.SetErr(errCutOff)
			}
			return errCutOff
		}
		return next(ctx, cmds)
	}
}

// carries returns a match for the commands whose arguments hold s.
func carries(s string) func([]any) bool {
	return func(args []any) bool {
		return slices.ContainsFunc(args, func(a any) bool { v, ok := a.(string); return ok && v == s })
	}
}

// logBuffer is a log destination the test can read while processes write.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const (
	outageLease = time.Second
	outageSweep = 50 * time.Millisecond
)

// process is one Parley process's generation side: its own Redis client
// (with a cutoff), store, manager and sweeper.
type process struct {
	st   *store.Store
	m    *generation.Manager
	cut  *cutoff
	logs *logBuffer
}

func startProcess(t *testing.T, addr string, model llm.Model, maxDuration time.Duration, cut *cutoff) *process {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(cut)
	st := store.New(rdb, store.Config{
		LogMaxLen: 100000, LeaseTTL: outageLease, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour,
	})
	p := &process{st: st, cut: cut, logs: &logBuffer{}}
	p.m = generation.New(st, &stopper{}, model, slog.New(slog.NewTextHandler(io.MultiWriter(p.logs, testWriter{t}), nil)), generation.Config{
		FlushInterval: 25 * time.Millisecond, MaxConcurrent: 10, LeaseTTL: outageLease,
		SweepInterval: outageSweep, MaxDuration: maxDuration, MaxAnswerBytes: 1 << 20,
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.m.RunSweeper(ctx); close(done) }()
	t.Cleanup(func() {
		stop()
		<-done
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.m.Shutdown(sctx)
	})
	return p
}

// testWriter logs a process's lines with the test's, for failures.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startAnswer posts question and runs its answer on p.
func (p *process) startAnswer(t *testing.T, question string) *answer {
	t.Helper()
	conv := store.NewID()
	res, err := p.st.Post(context.Background(), store.Post{Conv: conv, Owner: testOwner, Text: question, Key: store.NewID(), Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	a := &answer{conv: conv, gen: res.Gen, question: question, ended: make(chan struct{})}
	if err := p.m.RunStored(conv, res.Gen, func() { close(a.ended) }); err != nil {
		t.Fatal(err)
	}
	return a
}

// storedAnswer reads a's answer through rdb (never cut off).
func storedAnswer(t *testing.T, st *store.Store, a *answer) store.Message {
	t.Helper()
	snap, err := st.Snapshot(context.Background(), a.conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return snap.Messages[1]
}

// waitNoHold waits until the sweepers' hold of their very first sweep (no
// sweep was ever recorded) is over, so that a test's outage is what holds
// them, if anything.
func waitNoHold(t *testing.T, rdb *redis.Client) {
	t.Helper()
	waitFor(t, "the first sweeps' hold to end", func() bool {
		n, err := rdb.Exists(context.Background(), "{parley:gens}:hold").Result()
		return err == nil && n == 0
	})
}

// TestOutageLetsNoSweeperEndALiveAnswer: processes A and B share a Redis;
// A writes an answer. Neither reaches Redis for well over a lease (the
// lease runs out on Redis's clock), then B comes back first, sweeping every
// 50 ms, and A only half a second later. B must not end A's answer: it
// holds its sweeps for a lease after such an outage, A re-takes its lease,
// and the answer ends done with the model's whole text. Then, when A never
// comes back, B does end the answer as interrupted, once the hold is over,
// and A, back after that, writes nothing more.
func TestOutageLetsNoSweeperEndALiveAnswer(t *testing.T) {
	// Not parallel: its sweeps every 50 ms must not run late by half a
	// lease, which a busy process makes them.
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	model := llm.NewDemo(llm.DemoConfig{TokensPerSecond: 20, Tokens: 100})
	a := startProcess(t, srv.Addr, model, time.Minute, &cutoff{})
	b := startProcess(t, srv.Addr, model, time.Minute, &cutoff{})
	check := store.New(rdb, store.Config{})
	waitNoHold(t, rdb)

	t.Run("the owner comes back after the others", func(t *testing.T) {
		ans := a.startAnswer(t, "Does my answer survive a long outage?")
		waitFor(t, "some text", func() bool { return storedAnswer(t, check, ans).Text != "" })
		a.cut.on.Store(true)
		b.cut.on.Store(true)
		time.Sleep(2*outageLease + 500*time.Millisecond) // the outage itself: well over a lease
		if n, _ := rdb.Exists(context.Background(), "{c:"+ans.conv+"}:lease").Result(); n != 0 {
			t.Fatal("the lease did not run out during the outage: the test proves nothing")
		}
		b.cut.on.Store(false)
		time.Sleep(outageLease / 2) // B sweeps ten times; A is still away
		if m := storedAnswer(t, check, ans); m.Status != store.StatusStreaming {
			t.Fatalf("B ended A's answer while A was still alive: %s %q", m.Status, m.Error)
		}
		a.cut.on.Store(false)
		select {
		case <-ans.ended:
		case <-time.After(20 * time.Second):
			t.Fatal("the answer did not end")
		}
		m := storedAnswer(t, check, ans)
		if want := model.Reply([]llm.Message{{Role: llm.RoleUser, Content: ans.question}}); m.Status != store.StatusDone || m.Text != want {
			t.Fatalf("after the outage the answer is %s (%q), %d of %d bytes", m.Status, m.Error, len(m.Text), len(want))
		}
		if strings.Contains(b.logs.String(), "ended the answer") {
			t.Errorf("B's sweeper ended an answer")
		}
	})

	t.Run("the owner never comes back in time", func(t *testing.T) {
		waitNoHold(t, rdb)
		ans := a.startAnswer(t, "What if my server is cut off for good?")
		waitFor(t, "some text", func() bool { return storedAnswer(t, check, ans).Text != "" })
		before := storedAnswer(t, check, ans).Text
		a.cut.on.Store(true)
		b.cut.on.Store(true)
		time.Sleep(2*outageLease + 500*time.Millisecond) // the outage itself: well over a lease
		b.cut.on.Store(false)
		back := time.Now()
		var m store.Message
		deadline := time.Now().Add(10 * time.Second)
		for m = storedAnswer(t, check, ans); m.Status == store.StatusStreaming; m = storedAnswer(t, check, ans) {
			if time.Now().After(deadline) {
				t.Fatal("B never ended the answer of a process that did not come back")
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(back)
		t.Logf("B ended the answer %v after Redis was back for it (hold: a lease, %v)", took.Round(time.Millisecond), outageLease)
		if m.Status != store.StatusInterrupted || !strings.Contains(m.Error, "went away") || !strings.HasPrefix(m.Text, before) {
			t.Fatalf("the answer of a process that went away: %s %q, text %q (before %q)", m.Status, m.Error, m.Text, before)
		}
		if took < outageLease-100*time.Millisecond {
			t.Errorf("B ended it %v after the outage, before its hold of a lease was over", took)
		}
		// A comes back: its answer is no longer its own.
		a.cut.on.Store(false)
		select {
		case <-ans.ended:
		case <-time.After(10 * time.Second):
			t.Fatal("A's generation did not stop")
		}
		if after := storedAnswer(t, check, ans); after.Text != m.Text || after.Status != m.Status {
			t.Fatalf("A wrote after B had ended its answer: %s %q", after.Status, after.Text)
		}
	})
}

// TestOwnSweeperLeavesItsLiveGenerationsAlone: a generation's own writes
// fail for well over its lease while the rest of its process (its sweeper)
// reaches Redis. The process knows that the generation lives: its sweeper
// leaves it alone, and the generation re-takes its lease when its writes go
// through again and ends done, whole.
func TestOwnSweeperLeavesItsLiveGenerationsAlone(t *testing.T) {
	// Not parallel: its sweeps every 50 ms must not run late by half a
	// lease, which a busy process makes them.
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	model := llm.NewDemo(llm.DemoConfig{TokensPerSecond: 20, Tokens: 100})
	cut := &cutoff{}
	p := startProcess(t, srv.Addr, model, time.Minute, cut)
	check := store.New(rdb, store.Config{})
	waitNoHold(t, rdb)

	ans := p.startAnswer(t, "Will my own server end my answer?")
	waitFor(t, "some text", func() bool { return storedAnswer(t, check, ans).Text != "" })
	cut.match = carries(ans.gen) // its appends, renewals and end
	cut.on.Store(true)
	time.Sleep(2*outageLease + 500*time.Millisecond) // the outage itself: well over a lease
	if n, _ := rdb.Exists(context.Background(), "{c:"+ans.conv+"}:lease").Result(); n != 0 {
		t.Fatal("the lease did not run out: the test proves nothing")
	}
	if n, _ := rdb.Exists(context.Background(), "{parley:gens}:hold").Result(); n != 0 {
		t.Fatal("the sweeper is holding: the test proves nothing")
	}
	if m := storedAnswer(t, check, ans); m.Status != store.StatusStreaming {
		t.Fatalf("the process's own sweeper ended its live answer: %s %q", m.Status, m.Error)
	}
	cut.on.Store(false)
	select {
	case <-ans.ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the answer did not end")
	}
	m := storedAnswer(t, check, ans)
	if want := model.Reply([]llm.Message{{Role: llm.RoleUser, Content: ans.question}}); m.Status != store.StatusDone || m.Text != want {
		t.Fatalf("after its writes failed the answer is %s (%q), %d of %d bytes", m.Status, m.Error, len(m.Text), len(want))
	}
}

// TestAnswerTimeRunsOutDuringOutage: the answer's time limit passes while
// Redis does not answer. When Redis is back, the answer ends failed with
// the text the model wrote until then, and says what stopped it.
func TestAnswerTimeRunsOutDuringOutage(t *testing.T) {
	// Not parallel: its sweeps every 50 ms must not run late by half a
	// lease, which a busy process makes them.
	const maxDuration = 2 * time.Second
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	model := llm.NewDemo(llm.DemoConfig{TokensPerSecond: 20, Tokens: 200})
	cut := &cutoff{}
	p := startProcess(t, srv.Addr, model, maxDuration, cut)
	check := store.New(rdb, store.Config{})

	ans := p.startAnswer(t, "What if the database goes away while you write?")
	waitFor(t, "some text", func() bool { return storedAnswer(t, check, ans).Text != "" })
	before := storedAnswer(t, check, ans).Text
	cut.on.Store(true)
	const outage = 3500 * time.Millisecond
	time.Sleep(outage) // the time limit passes meanwhile
	cut.on.Store(false)
	select {
	case <-ans.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the answer did not end")
	}
	m := storedAnswer(t, check, ans)
	want := model.Reply([]llm.Message{{Role: llm.RoleUser, Content: ans.question}})
	t.Logf("the answer ended %s: %q, with %d bytes (%d before the outage, %d in the whole reply)", m.Status, m.Error, len(m.Text), len(before), len(want))
	re := regexp.MustCompile(`^The answer stopped: the database \(Redis\) was unreachable for (\d+) s; the text so far is kept\.$`)
	if m.Status != store.StatusFailed || !re.MatchString(m.Error) {
		t.Fatalf("the answer ended %s with %q, want failed saying that Redis was unreachable", m.Status, m.Error)
	}
	if n := re.FindStringSubmatch(m.Error)[1]; n != "3" && n != "4" {
		t.Errorf("it says Redis was unreachable for %s s; it was for about %v", n, outage)
	}
	if !strings.HasPrefix(want, m.Text) || len(m.Text) <= len(before) || len(m.Text) == len(want) {
		t.Errorf("the text kept is not what the model wrote until its time ran out: %d bytes, %d before the outage, %d in the reply", len(m.Text), len(before), len(want))
	}
}
