package generation_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

const testOwner = "AAAAAAAAAAAAAAAAAAAAAA"

// faults sits in the Redis client of a test: it counts the pipelines that
// carry appends and the appends in them, and can fail or hold them. It
// leaves lease renewals alone (isRenewal).
type faults struct {
	pipelines atomic.Int64 // pipelines holding at least one append
	appends   atomic.Int64 // EVALSHAs in them
	inflight  atomic.Int64 // such pipelines running now
	maxFlight atomic.Int64 // the most that ever ran at once

	mu sync.Mutex
	// conv counts each conversation's appends in flight; maxConv is the
	// most any ever had.
	conv    map[string]int
	maxConv int
	// loseReplies makes that many append pipelines that Redis ran report
	// an error, as when a connection breaks before the reply arrives.
	loseReplies int
	// dropRequests makes that many fail without reaching Redis, first.
	dropRequests int
	// hold, when not nil, makes append pipelines wait until it is closed.
	hold chan struct{}
}

var errInjected = errors.New("injected: connection lost")

func (f *faults) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (f *faults) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (f *faults) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, c := range cmds {
			if c.Name() == "evalsha" {
				n++
			}
		}
		if n == 0 || isRenewal(cmds) {
			return next(ctx, cmds)
		}
		f.pipelines.Add(1)
		f.appends.Add(int64(n))
		f.mu.Lock()
		if f.conv == nil {
			f.conv = map[string]int{}
		}
		for _, c := range cmds {
			meta := c.Args()[3].(string) // evalsha sha numkeys meta ...
			f.conv[meta]++
			f.maxConv = max(f.maxConv, f.conv[meta])
		}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			for _, c := range cmds {
				f.conv[c.Args()[3].(string)]--
			}
			f.mu.Unlock()
		}()
		now := f.inflight.Add(1)
		defer f.inflight.Add(-1)
		for {
			m := f.maxFlight.Load()
			if now <= m || f.maxFlight.CompareAndSwap(m, now) {
				break
			}
		}
		f.mu.Lock()
		hold := f.hold
		drop := f.dropRequests > 0
		if drop {
			f.dropRequests--
		}
		f.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if drop {
			for _, c := range cmds {
				c.SetErr(errInjected)
			}
			return errInjected
		}
		if err := next(ctx, cmds); err != nil {
			return err
		}
		f.mu.Lock()
		lose := f.loseReplies > 0
		if lose {
			f.loseReplies--
		}
		f.mu.Unlock()
		if lose {
			for _, c := range cmds {
				c.SetErr(errInjected)
			}
			return errInjected
		}
		return nil
	}
}

// stopper is a Stopper whose stop requests the test sends itself; store
// stops reach generations through their appends and lease renewals.
type stopper struct {
	mu    sync.Mutex
	stops map[string]func()
}

func (s *stopper) OnStop(_ context.Context, conv, _ string, stop func()) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stops == nil {
		s.stops = map[string]func(){}
	}
	s.stops[conv] = stop
	return func() {}, nil
}

func (s *stopper) stop(conv string) {
	s.mu.Lock()
	stop := s.stops[conv]
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// countingModel counts the streams that have ended.
type countingModel struct {
	*llm.Demo
	ended atomic.Int64
}

func (m *countingModel) Stream(ctx context.Context, req llm.Request, emit func(string) error) (llm.Finish, error) {
	defer m.ended.Add(1)
	return m.Demo.Stream(ctx, req, emit)
}

type env struct {
	st      *store.Store
	rdb     *redis.Client
	faults  *faults
	stopper *stopper
	model   *countingModel
	m       *generation.Manager
}

func newEnv(t *testing.T, tps float64, tokens int) *env {
	t.Helper()
	return newEnvLease(t, tps, tokens, 10*time.Second)
}

// newEnvLease is newEnv with leases of lease.
func newEnvLease(t *testing.T, tps float64, tokens int, lease time.Duration) *env {
	t.Helper()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	f := &faults{}
	rdb.AddHook(f)
	st := store.New(rdb, store.Config{
		LogMaxLen: 100000, LeaseTTL: lease, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour,
	})
	e := &env{st: st, rdb: rdb, faults: f, stopper: &stopper{}, model: &countingModel{Demo: llm.NewDemo(llm.DemoConfig{TokensPerSecond: tps, Tokens: tokens})}}
	e.m = generation.New(st, e.stopper, e.model, slog.New(slog.NewTextHandler(io.Discard, nil)), generation.Config{
		FlushInterval: 25 * time.Millisecond, MaxConcurrent: 1000, LeaseTTL: lease,
		SweepInterval: time.Second, MaxDuration: time.Minute, MaxAnswerBytes: 1 << 20,
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.m.Shutdown(ctx)
	})
	return e
}

// answer is one started generation.
type answer struct {
	conv, gen, question string
	ended               chan struct{}
}

// start posts question in a new conversation and runs its answer.
func (e *env) start(t *testing.T, question string) *answer {
	t.Helper()
	conv := store.NewID()
	res, err := e.st.Post(context.Background(), store.Post{Conv: conv, Owner: testOwner, Text: question, Key: store.NewID(), Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	a := &answer{conv: conv, gen: res.Gen, question: question, ended: make(chan struct{})}
	if err := e.m.RunStored(conv, res.Gen, func() { close(a.ended) }); err != nil {
		t.Fatal(err)
	}
	return a
}

// reply is what the model says to question.
func (e *env) reply(question string) string {
	return e.model.Reply([]llm.Message{{Role: llm.RoleUser, Content: question}})
}

// wait waits for a to end and returns its stored answer.
func (e *env) wait(t *testing.T, a *answer) store.Message {
	t.Helper()
	return e.waitWithin(t, a, 30*time.Second)
}

// waitWithin is wait, failing the test if a takes longer than d to end.
func (e *env) waitWithin(t *testing.T, a *answer, d time.Duration) store.Message {
	t.Helper()
	select {
	case <-a.ended:
	case <-time.After(d):
		t.Fatalf("answer to %q did not end within %v", a.question, d)
	}
	snap, err := e.st.Snapshot(context.Background(), a.conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return snap.Messages[1]
}

// TestManyGenerationsShareRoundTrips: answers written at once each end with
// exactly the model's text, and their appends share round trips: a few
// pipelines per flush interval carry the due text of all of them, and no
// answer ever has two appends in flight.
func TestManyGenerationsShareRoundTrips(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100, 120)
	var answers []*answer
	for i := range 50 {
		answers = append(answers, e.start(t, fmt.Sprintf("question %d", i)))
	}
	for _, a := range answers {
		m := e.wait(t, a)
		if want := e.reply(a.question); m.Status != store.StatusDone || m.Text != want {
			t.Fatalf("answer to %q: status %s, text\n%q\nwant\n%q", a.question, m.Status, m.Text, want)
		}
	}
	p, n := e.faults.pipelines.Load(), e.faults.appends.Load()
	t.Logf("%d appends in %d round trips (%.1f per round trip)", n, p, float64(n)/float64(p))
	// 50 answers of 120 tokens at 100 tokens/s: 1.2 s, about 50 flush
	// intervals, each with something due for almost every answer, spread
	// over a few batches.
	if float64(n)/float64(p) < 5 {
		t.Errorf("%d appends took %d round trips: they are not batched", n, p)
	}
	e.checkInFlight(t)
}

// checkInFlight fails t if an answer ever had two appends in flight. (The
// batches out at once are usually one per phase, but not always: a batch
// slower than an interval lets the next sub-ticks send the answers whose
// appends are back. That is logged, not bounded.)
func (e *env) checkInFlight(t *testing.T) {
	t.Helper()
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	if e.faults.maxConv != 1 {
		t.Errorf("an answer had %d appends in flight at once, want 1", e.faults.maxConv)
	}
	t.Logf("at most %d batches were in flight at once", e.faults.maxFlight.Load())
}

// TestLostRepliesAreRetriedWithoutDoubling: when a batch's round trip
// fails, whether before Redis ran it or after (its replies lost), every
// generation in it sends its text again, and each answer is stored once.
func TestLostRepliesAreRetriedWithoutDoubling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 200, 100)
	e.faults.mu.Lock()
	e.faults.loseReplies, e.faults.dropRequests = 4, 4
	e.faults.mu.Unlock()
	var answers []*answer
	for i := range 10 {
		answers = append(answers, e.start(t, fmt.Sprintf("question %d", i)))
	}
	for _, a := range answers {
		m := e.wait(t, a)
		if want := e.reply(a.question); m.Status != store.StatusDone || m.Text != want {
			t.Fatalf("answer to %q: status %s, text\n%q\nwant\n%q", a.question, m.Status, m.Text, want)
		}
	}
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	if e.faults.loseReplies != 0 || e.faults.dropRequests != 0 {
		t.Fatalf("faults left unused: %d lost replies, %d dropped requests", e.faults.loseReplies, e.faults.dropRequests)
	}
}

// TestStaleGenerationIsRefusedAlone: a generation that lost its answer
// (here another process ended it) is refused in the batch it shares with
// live ones; it stops writing, and the others go on to the end.
func TestStaleGenerationIsRefusedAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100, 300)
	var answers []*answer
	for i := range 5 {
		answers = append(answers, e.start(t, fmt.Sprintf("question %d", i)))
	}
	victim := answers[2]
	ctx := context.Background()
	waitFor(t, "the answers to start", func() bool {
		snap, err := e.st.Snapshot(ctx, victim.conv, store.ID{})
		return err == nil && len(snap.Messages[1].Text) > 0
	})
	if err := e.st.Finish(ctx, store.Ending{Conv: victim.conv, Gen: victim.gen, Status: store.StatusInterrupted, Error: "ended elsewhere"}); err != nil {
		t.Fatal(err)
	}
	ended, err := e.st.Snapshot(ctx, victim.conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	// Its next append is refused: it stops long before its model would
	// have finished (300 tokens at 100 per second).
	e.waitWithin(t, victim, time.Second)
	for _, a := range answers {
		m := e.wait(t, a)
		if a == victim {
			// Nothing was written after the end: not text, not another end.
			if m.Status != store.StatusInterrupted || m.Text != ended.Messages[1].Text || m.Rev != ended.Last.String() {
				t.Errorf("stale generation wrote after its answer ended: %+v, was %+v", m, ended.Messages[1])
			}
			continue
		}
		if want := e.reply(a.question); m.Status != store.StatusDone || m.Text != want {
			t.Errorf("answer to %q: status %s, text\n%q\nwant\n%q", a.question, m.Status, m.Text, want)
		}
	}
}

// TestStop: a stop stored in Redis reaches the generation through the
// reply to its append; one delivered by the hub (the Stopper) ends it
// directly. Either way that answer ends stopped, keeping a prefix of the
// model's text, and the others in the same batches are not disturbed.
func TestStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100, 300)
	var answers []*answer
	for i := range 4 {
		answers = append(answers, e.start(t, fmt.Sprintf("question %d", i)))
	}
	ctx := context.Background()
	byStore, byHub := answers[1], answers[2]
	waitFor(t, "the answers to start", func() bool {
		for _, a := range []*answer{byStore, byHub} {
			snap, err := e.st.Snapshot(ctx, a.conv, store.ID{})
			if err != nil || len(snap.Messages[1].Text) == 0 {
				return false
			}
		}
		return true
	})
	if r, err := e.st.Stop(ctx, byStore.conv); err != nil || r != store.StopSent {
		t.Fatalf("stop: %v %v", r, err)
	}
	e.stopper.stop(byHub.conv)
	// Long before their models would have finished (300 tokens at 100 per
	// second).
	e.waitWithin(t, byStore, time.Second)
	e.waitWithin(t, byHub, time.Second)
	for _, a := range answers {
		m := e.wait(t, a)
		want := e.reply(a.question)
		if a == byStore || a == byHub {
			if m.Status != store.StatusStopped || !strings.HasPrefix(want, m.Text) || len(m.Text) == len(want) {
				t.Errorf("stopped answer to %q: status %s, %d of %d bytes", a.question, m.Status, len(m.Text), len(want))
			}
			continue
		}
		if m.Status != store.StatusDone || m.Text != want {
			t.Errorf("answer to %q: status %s, text\n%q\nwant\n%q", a.question, m.Status, m.Text, want)
		}
	}
}

// TestSlowRedisHoldsOneBatch: while Redis does not answer, each generation
// has one append outstanding, no more, and the models stream on: their text
// waits in memory, and goes in the batch after Redis answers.
func TestSlowRedisHoldsOneBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 200, 60)
	var answers []*answer
	for i := range 10 {
		answers = append(answers, e.start(t, fmt.Sprintf("question %d", i)))
	}
	ctx := context.Background()
	waitFor(t, "the answers to start", func() bool {
		for _, a := range answers {
			snap, err := e.st.Snapshot(ctx, a.conv, store.ID{})
			if err != nil || len(snap.Messages[1].Text) == 0 {
				return false
			}
		}
		return true
	})
	hold := make(chan struct{})
	e.faults.mu.Lock()
	e.faults.hold = hold
	e.faults.mu.Unlock()
	before := e.faults.pipelines.Load()
	waitFor(t, "every model to finish streaming", func() bool { return e.model.ended.Load() == int64(len(answers)) })
	// Ten appender ticks more, in which no further batch may go out.
	time.Sleep(250 * time.Millisecond)
	// One per phase: the generations' first appends after the hold.
	if n := e.faults.pipelines.Load() - before; n > 5 {
		t.Errorf("%d batches were sent while Redis did not answer, want at most 5", n)
	}
	if n := e.model.ended.Load(); n != int64(len(answers)) {
		t.Errorf("%d of %d models finished streaming while Redis did not answer", n, len(answers))
	}
	e.faults.mu.Lock()
	e.faults.hold = nil
	e.faults.mu.Unlock()
	close(hold)
	for _, a := range answers {
		m := e.wait(t, a)
		if want := e.reply(a.question); m.Status != store.StatusDone || m.Text != want {
			t.Fatalf("answer to %q: status %s, text\n%q\nwant\n%q", a.question, m.Status, m.Text, want)
		}
	}
	e.checkInFlight(t)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
