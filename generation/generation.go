// Package generation runs answers: it reads tokens from a model and appends
// them to the conversation in small batches, detached from the request that
// asked for the answer and from whoever is watching. Each generation holds a
// lease in Redis; a sweeper in every process ends the answers of generations
// whose process died, so no message stays "streaming" forever.
//
// A process that lives keeps its answers when Redis does not answer for a
// while (paused, stalled, restarting), however long that is against the
// lease:
//
//   - The generation goes on: the model's text waits in memory (bounded by
//     the answer's size limit), appends and renewals are retried (renewals
//     every renewRetry while they fail), and its end is written once Redis
//     answers again, for up to endWait.
//   - Its first write that goes through renews its lease, or re-takes it if it
//     ran out, as long as nobody ended or superseded the answer (the renew and
//     append scripts check meta.active); then it renews at once, which
//     registers the lease with the sweepers again.
//   - No sweeper ends it first: the sweeper of its own process skips the
//     generations running here, and every process's sweeper finds nothing for
//     a lease after an outage that no process could reach Redis through
//     (store.SweepLeases: a gap in the sweeps, measured on Redis's clock).
//     A process that reached Redis all along (the owner alone was cut off)
//     ends the answer as before: to everyone else its owner is gone.
//   - An answer whose time ran out (MaxDuration) while Redis did not answer
//     ends failed, saying so: "The answer stopped: the database (Redis) was
//     unreachable for N s; the text so far is kept."
//
// The answer of a process that died is still ended as interrupted ("went
// away") by the sweepers, a lease after its last renewal (plus a lease when
// Redis itself was away meanwhile).
package generation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// ErrAtCapacity means this process runs as many generations as it may.
var ErrAtCapacity = errors.New("this server is writing as many answers as it can")

// Causes a generation's context can end with.
var (
	errStopped  = errors.New("stopped by a person")
	errStale    = errors.New("lease lost")
	errShutdown = errors.New("server shutting down")
	errFull     = errors.New("answer reached its size limit")
	errTimeout  = errors.New("answer took too long")
)

// Texts people see under an answer that did not finish normally.
const (
	shutdownText = "The server restarted while writing this answer; the text so far is kept."
	readFailText = "The conversation could not be read to write an answer. Please try again."
)

// unreachableText is shown under an answer whose time ran out while Redis did
// not answer, for d.
func unreachableText(d time.Duration) string {
	return fmt.Sprintf("The answer stopped: the database (Redis) was unreachable for %d s; the text so far is kept.",
		max(1, int64(d.Round(time.Second)/time.Second)))
}

// Config holds the generation limits and timings.
type Config struct {
	// FlushInterval: each answer's tokens are batched for this long; the
	// process's appender sends the batches of many answers in one round trip.
	FlushInterval time.Duration
	// FrameBudget bounds the bytes of an answer's frames to about this many
	// times the answer's size, by writing a long growing block less often
	// (see pacer); 0 writes at every FlushInterval. FrameMaxHold bounds how
	// long text may wait for that.
	FrameBudget   float64
	FrameMaxHold  time.Duration
	MaxConcurrent int           // generations per process
	LeaseTTL      time.Duration // renewed every third of it
	SweepInterval time.Duration // how often dead generations are looked for
	MaxDuration   time.Duration // an answer is cut off after this long
	SystemPrompt  string        // sent before the conversation, when set
	Observer      Observer      // told when generations start and end; nil for nobody
}

// Observer is told when this process's generations start and end, for
// metrics; it must return quickly. Each started generation ends exactly once,
// with the status it wrote (store.StatusDone, StatusStopped, StatusFailed,
// StatusInterrupted), or StatusInterrupted when it could not write its end
// (lease lost, Redis gone): a sweeper then ends it as interrupted.
type Observer interface {
	GenerationStarted()
	GenerationEnded(outcome string)
}

type nopObserver struct{}

func (nopObserver) GenerationStarted()     {}
func (nopObserver) GenerationEnded(string) {}

// Stopper delivers stop requests from any process (live.Hub implements it).
type Stopper interface {
	OnStop(ctx context.Context, conv, gen string, stop func()) (release func(), err error)
}

// Manager starts and supervises the generations of this process.
type Manager struct {
	store   *store.Store
	stopper Stopper
	model   llm.Model
	log     *slog.Logger
	cfg     Config
	appends *appender

	slots      chan struct{}
	base       context.Context
	cancelBase context.CancelCauseFunc
	wg         sync.WaitGroup

	mu      sync.Mutex
	closing bool
	// running counts the generations of each conversation that run in this
	// process: they are alive, so this process's sweeper leaves them alone.
	running map[string]int

	// endBy is when generations must have written their end, once a
	// shutdown has cut them off (Unix ns; 0 before).
	endBy atomic.Int64
}

// New returns a Manager.
func New(st *store.Store, stopper Stopper, model llm.Model, log *slog.Logger, cfg Config) *Manager {
	base, cancel := context.WithCancelCause(context.Background())
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Manager{
		store: st, stopper: stopper, model: model, log: log, cfg: cfg,
		appends: newAppender(st, cfg.FlushInterval),
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		base:    base, cancelBase: cancel,
	}
}

// Model returns the model answers are written with.
func (m *Manager) Model() llm.Model { return m.model }

// Slot is a reserved place for one generation.
type Slot struct {
	m    *Manager
	once sync.Once
}

// Release gives the place back when the generation was not started.
func (s *Slot) Release() { s.once.Do(func() { <-s.m.slots }) }

// Reserve takes a place for a generation before the message is stored, so a
// post is refused with a clear error instead of storing a message nobody
// will answer.
func (m *Manager) Reserve() (*Slot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return nil, ErrAtCapacity
	}
	select {
	case m.slots <- struct{}{}:
		m.wg.Add(1)
		return &Slot{m: m}, nil
	default:
		return nil, ErrAtCapacity
	}
}

// Start runs generation gen of conv in the background, in slot.
// ended, when not nil, is called when the generation has ended, whatever
// the way; conversation naming then runs outside the slot.
func (m *Manager) Start(slot *Slot, conv, gen string, ended func()) {
	if ended == nil {
		ended = func() {}
	}
	ended = sync.OnceFunc(ended)
	go func() {
		defer m.wg.Done()
		m.cfg.Observer.GenerationStarted()
		outcome, history := m.run(conv, gen, ended)
		m.cfg.Observer.GenerationEnded(outcome)
		slot.Release()
		ended()
		if outcome == store.StatusDone {
			m.nameConversation(conv, history)
		}
	}()
}

// Abandon gives back a slot that was reserved but not started.
func (m *Manager) Abandon(slot *Slot) {
	slot.Release()
	m.wg.Done()
}

// shutdownEndWait is how long the generations still running when a
// shutdown's context ends get to write their end (as interrupted): every
// Redis call they make from then on is bounded by it, so that a Redis that
// is down or paused cannot hold the shutdown, and Shutdown returns within it.
const shutdownEndWait = 1500 * time.Millisecond

// Shutdown stops taking generations and lets the running ones finish until
// ctx is done; those still running then end as interrupted, keeping their
// text. It returns when all have written their end, or at most
// shutdownEndWait (less when the lease is shorter) after ctx is done: those
// that could not write it (Redis is away) are left to other processes'
// sweepers.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	wait := shutdownEndWait
	if m.cfg.LeaseTTL > 0 {
		wait = min(wait, m.cfg.LeaseTTL)
	}
	m.endBy.Store(time.Now().Add(wait).UnixNano())
	m.cancelBase(errShutdown)
	t := time.NewTimer(wait + 100*time.Millisecond)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		m.log.Error("generations did not end after shutdown; the sweeper of another process will end them")
	}
}

// writeBudget bounds one Redis write of a generation: writeTimeout, or what
// is left of a shutdown's end wait (nothing, at or below 0).
func (m *Manager) writeBudget() time.Duration {
	if by := m.endBy.Load(); by != 0 {
		return min(writeTimeout, time.Until(time.Unix(0, by)))
	}
	return writeTimeout
}

// defaultEndWait is endWait when answers have no time limit.
const defaultEndWait = 10 * time.Minute

// endWait is how long a generation whose model is done keeps trying to
// write its text and end while Redis does not answer: the answer's time
// limit (at least a lease). Its process lives, so it writes its own end with
// words that are true, rather than leave it to a sweeper ("went away").
func (m *Manager) endWait() time.Duration {
	d := m.cfg.MaxDuration
	if d <= 0 {
		d = defaultEndWait
	}
	return max(d, m.cfg.LeaseTTL)
}

// endDeadline is until when an end that began at from is tried: endWait
// later, or the shutdown's end wait, whichever comes first.
func (m *Manager) endDeadline(from time.Time) time.Time {
	d := from.Add(m.endWait())
	if by := m.endBy.Load(); by != 0 && time.Unix(0, by).Before(d) {
		return time.Unix(0, by)
	}
	return d
}

// runs counts a generation of conv in (d = 1) or out (d = -1).
func (m *Manager) runs(conv string, d int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running == nil {
		m.running = map[string]int{}
	}
	if m.running[conv] += d; m.running[conv] <= 0 {
		delete(m.running, conv)
	}
}

// runsHere reports whether a generation of conv runs in this process.
func (m *Manager) runsHere(conv string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running[conv] > 0
}

// sweepGap is how long without a sweep by any process means that no process
// could reach Redis (see store.SweepLeases): above the sweep interval, with
// room for a late sweep, so that a process sweeping alone never sees one;
// and at most half a lease, so that any outage long enough for a lease to
// run out (two thirds of one without a renewal) is seen.
func sweepGap(sweep, lease time.Duration) time.Duration {
	return max(min(2*sweep+time.Second, lease/2), sweep+sweep/2)
}

// RunSweeper ends, every SweepInterval, the answers whose generation lost its
// lease (its process died). Every process runs one; the script makes sure
// each answer is ended once. It leaves alone the generations running in this
// process, and finds nothing for a lease after no process could reach Redis
// (store.SweepLeases), so that living generations re-take their leases first.
func (m *Manager) RunSweeper(ctx context.Context) {
	t := time.NewTicker(m.cfg.SweepInterval)
	defer t.Stop()
	gap := sweepGap(m.cfg.SweepInterval, m.cfg.LeaseTTL)
	held := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, writeTimeout)
		ids, hold, err := m.store.SweepLeases(sctx, time.Now(), 100, gap)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("sweep generations", "err", err)
			}
			continue
		}
		if hold > 0 {
			if !held {
				// After a Redis outage, or when no process ran for a while
				// (this one is the first up).
				m.log.Info("no process swept for a while; sweeps wait a lease for living generations to renew theirs", "wait", hold)
			}
			held = true
			continue
		}
		held = false
		for _, conv := range ids {
			if m.runsHere(conv) {
				continue // alive: it renews or re-takes its lease itself
			}
			ectx, cancel := context.WithTimeout(ctx, writeTimeout)
			ended, err := m.store.Expire(ectx, conv)
			cancel()
			if err != nil {
				m.log.Warn("end a dead generation", "conversation", conv, "err", err)
				continue
			}
			if ended {
				m.log.Info("ended the answer of a generation whose process went away", "conversation", conv)
			}
		}
	}
}

// writeTimeout bounds each Redis write of a generation.
const writeTimeout = 5 * time.Second

// run is one generation, from reading the conversation to its end event. It
// returns the status the answer ended with (see Observer) and the
// conversation the model was given.
// run runs one generation. ended is called as soon as its end is written
// (and again, harmlessly, by Start): the owner's reservation is then free
// at once, not after the cleanup that follows, so a person who stops an
// answer and sends another straight away is not told to wait.
func (m *Manager) run(conv, gen string, ended func()) (outcome string, history []llm.Message) {
	m.runs(conv, 1)
	defer m.runs(conv, -1)
	log := m.log.With("conversation", conv, "generation", gen)
	ctx, cancel := context.WithCancelCause(m.base)
	defer cancel(nil)
	if m.cfg.MaxDuration > 0 {
		var stopTimer context.CancelFunc
		ctx, stopTimer = context.WithTimeoutCause(ctx, m.cfg.MaxDuration, errTimeout)
		defer stopTimer()
	}

	release, err := m.stopper.OnStop(ctx, conv, gen, func() { cancel(errStopped) })
	if err != nil {
		// The stored stop flag is still read on every lease renewal.
		log.Warn("listen for stop; relying on the stored flag", "err", err)
	} else {
		defer release()
	}

	w := newWriter(m, conv, gen, log)
	w.onEnd = ended
	history, err = m.history(ctx, conv)
	if err != nil {
		log.Error("read conversation for the model", "err", err)
		w.finish(store.StatusFailed, readFailText)
		return w.outcome(), nil
	}

	// From here the process's appender writes the text, on its shared tick.
	m.appends.add(w)
	defer m.appends.remove(w)
	modelDone := make(chan error, 1)
	go func() {
		modelDone <- m.model.Stream(ctx, history, w.add)
	}()

	renew := time.NewTimer(m.cfg.LeaseTTL / 3)
	defer renew.Stop()
	halted := w.halted
	var modelErr error
loop:
	for {
		select {
		case <-halted:
			// An append was refused (stale, stopped, full): end the model's
			// stream, and the answer once it has ended.
			cancel(w.haltCause())
			halted = nil
		case <-w.recovered:
			// An append went through after Redis failed: renew at once, so
			// that a lease that ran out meanwhile is registered again.
			renew.Reset(0)
		case <-renew.C:
			renew.Reset(m.renew(ctx, cancel, w))
		case modelErr = <-modelDone:
			break loop
		}
	}

	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStopped):
		// What is pending is dropped, as the person asked; what is in
		// flight lands before the end, as it would have without batching.
		w.quiesce()
		w.finish(store.StatusStopped, "")
	case errors.Is(cause, errStale):
		w.quiesce()
		log.Warn("generation lost its lease; another process ends the answer")
	case errors.Is(cause, errFull):
		w.quiesce()
		w.finish(store.StatusFailed, m.fullText())
	case errors.Is(cause, errShutdown):
		if w.drain() {
			w.finish(store.StatusInterrupted, shutdownText)
		}
	case errors.Is(cause, errTimeout):
		// Redis not answering when the time ran out is what stopped the
		// answer, and what people are told (once Redis answers again).
		down := w.outage(time.Now()) >= time.Second
		if w.drain() {
			if down {
				w.finishWith(store.StatusFailed, w.unreachableText)
			} else {
				w.finish(store.StatusFailed, fmt.Sprintf("The answer took longer than %s and was cut off.", m.cfg.MaxDuration))
			}
		}
	case modelErr == nil:
		if w.drain() {
			w.finish(store.StatusDone, "")
		}
	default:
		if w.drain() {
			w.finish(store.StatusFailed, modelErrorText(modelErr))
		}
		log.Warn("model failed", "err", modelErr)
	}
	w.mu.Lock()
	stored := w.stored
	w.mu.Unlock()
	m.spend(log, history, stored)
	return w.outcome(), history
}

// renewRetry is how soon a renewal that failed is tried again: Redis that
// comes back finds the generation renewing (or re-taking) its lease at once.
const renewRetry = 500 * time.Millisecond

// renew renews w's lease, or takes it again after Redis was unreachable for
// longer than it, and returns when to renew next. A lost answer or a stop
// request cancels the generation.
func (m *Manager) renew(ctx context.Context, cancel context.CancelCauseFunc, w *writer) time.Duration {
	every := m.cfg.LeaseTTL / 3
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	stop, err := m.store.Renew(rctx, w.conv, w.gen)
	rcancel()
	now := time.Now()
	switch {
	case errors.Is(err, store.ErrStale):
		cancel(errStale)
	case err != nil:
		w.failed(now)
		w.log.Warn("renew lease", "err", err, "redis_failing_for", w.outage(now).Round(time.Millisecond))
		return min(every, renewRetry)
	case stop:
		cancel(errStopped)
	}
	if err == nil {
		if d, ok := w.succeeded(now); ok {
			w.log.Info("redis answers again", "redis_failed_for", d.Round(time.Millisecond))
		}
	}
	return every
}

// spend counts the answer's model tokens against the deployment's daily
// budget (store.CheckTokens refuses new answers past it). Providers bill
// the prompt (the whole history) and the answer; a token is taken as four
// bytes, which is close for English and errs high for code.
func (m *Manager) spend(log *slog.Logger, history []llm.Message, answerBytes int) {
	n := answerBytes
	for _, msg := range history {
		n += len(msg.Content)
	}
	budget := m.writeBudget()
	if budget <= 0 {
		log.Warn("count model tokens: no time left in the shutdown")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if err := m.store.SpendTokens(ctx, int64((n+3)/4)); err != nil {
		log.Warn("count model tokens", "err", err)
	}
}

// fullText is shown under an answer cut off at the size limit.
func (m *Manager) fullText() string {
	return fmt.Sprintf("The answer reached the size limit (%d KB) and was cut off.", m.store.Config().MaxAnswerBytes/1024)
}

func modelErrorText(err error) string {
	var le *llm.Error
	if errors.As(err, &le) && le.Message != "" {
		return le.Message
	}
	return "The model failed while writing this answer."
}

// history is the conversation as the model sees it: every message but the
// answer being written, and failed or empty answers left out.
func (m *Manager) history(ctx context.Context, conv string) ([]llm.Message, error) {
	snap, err := m.store.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		return nil, err
	}
	var msgs []llm.Message
	if m.cfg.SystemPrompt != "" {
		msgs = append(msgs, llm.Message{Role: llm.RoleSystem, Content: m.cfg.SystemPrompt})
	}
	for _, msg := range snap.Messages {
		if msg.Status == store.StatusStreaming || msg.Text == "" {
			continue
		}
		role := llm.RoleUser
		if msg.Role == "assistant" {
			role = llm.RoleAssistant
		}
		msgs = append(msgs, llm.Message{Role: role, Content: msg.Text})
	}
	return msgs, nil
}

// writer holds a generation's text until the appender writes it, and what
// the generation knows of its answer in Redis. The model's stream adds text;
// the appender takes the due text on its tick and settles the reply; the
// generation's own goroutine waits for the end (drain, quiesce) and writes
// it (finish).
type writer struct {
	m    *Manager
	conv string
	gen  string
	log  *slog.Logger

	mu      sync.Mutex
	pending strings.Builder
	since   time.Time // when the oldest pending text arrived
	// maxPending bounds pending: text beyond the answer's size limit could
	// never be stored, so a Redis that is away does not make it grow.
	maxPending int

	// stored is the answer's length in Redis as the last append reported it
	// (answers start empty). Each append says where its text goes, so a batch
	// retried after an error whose first try was in fact run is not doubled.
	stored int
	pace   pacer

	inflight bool      // the appender has taken text it has not settled yet
	sent     string    // that text: a prefix of pending
	taken    time.Time // when it was taken
	draining bool      // the answer is ending: all pending text is due now
	closed   bool      // nothing more is taken (halted, drained or quiesced)
	failing  bool      // an append failed; logged once until one succeeds
	cause    error     // why an append halted the generation, once halted

	// downSince is when the generation's writes (appends, renewals, its
	// end) began to fail, zero while they go through; lastOutage is how long
	// the last such run of failures lasted, once a write went through.
	downSince  time.Time
	lastOutage time.Duration
	// recovered is signalled when an append goes through after failures.
	recovered chan struct{}

	// halted is closed when an append was refused for good (stale,
	// stopped, full); haltCause then says why.
	halted chan struct{}
	// settledc is signalled after each reply to this writer's appends.
	settledc chan struct{}

	ended string // the status this generation wrote as its end, if it did
	onEnd func() // called once its end is written (Start's ended)
}

// newWriter returns the writer of generation gen of conv, for m's appender.
func newWriter(m *Manager, conv, gen string, log *slog.Logger) *writer {
	w := &writer{m: m, conv: conv, gen: gen, log: log,
		pace:   pacer{budget: m.cfg.FrameBudget, maxHold: m.cfg.FrameMaxHold},
		halted: make(chan struct{}), settledc: make(chan struct{}, 1), recovered: make(chan struct{}, 1), onEnd: func() {}}
	if n := m.store.Config().MaxAnswerBytes; n > 0 {
		w.maxPending = n + 1 // one byte over: the append then says Full
	}
	return w
}

// outcome is how the generation ended, as Observer reports it.
func (w *writer) outcome() string {
	if w.ended == "" {
		return store.StatusInterrupted
	}
	return w.ended
}

// failed records that a write of the generation failed at now.
func (w *writer) failed(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failedLocked(now)
}

func (w *writer) failedLocked(now time.Time) {
	if w.downSince.IsZero() {
		w.downSince = now
	}
}

// succeeded records that a write went through at now; after failures it
// returns for how long they went on, and true.
func (w *writer) succeeded(now time.Time) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.succeededLocked(now)
}

func (w *writer) succeededLocked(now time.Time) (time.Duration, bool) {
	if w.downSince.IsZero() {
		return 0, false
	}
	w.lastOutage = now.Sub(w.downSince)
	w.downSince = time.Time{}
	return w.lastOutage, true
}

// outage is how long the generation's writes have been failing at now (0
// while they go through).
func (w *writer) outage(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.downSince.IsZero() {
		return 0
	}
	return now.Sub(w.downSince)
}

// unreachableText says for how long Redis did not answer: the outage going
// on, or the last one if it is over.
func (w *writer) unreachableText() string {
	w.mu.Lock()
	d := w.lastOutage
	if !w.downSince.IsZero() {
		d = time.Since(w.downSince)
	}
	w.mu.Unlock()
	return unreachableText(d)
}

// add is the model's emit callback: it only buffers, so a slow Redis never
// slows the model's stream, and many tokens share one round trip.
func (w *writer) add(text string) error {
	w.mu.Lock()
	if w.pending.Len() == 0 {
		w.since = time.Now()
	}
	if w.maxPending > 0 && w.pending.Len()+len(text) > w.maxPending {
		text = text[:max(0, w.maxPending-w.pending.Len())]
	}
	w.pending.WriteString(text)
	w.mu.Unlock()
	return nil
}

// take returns the append of the text due at now, if any, and marks it in
// flight: the pacer decides, except while the answer is ending. busy says
// that an append of it is in flight already, so that nothing is due yet.
func (w *writer) take(now time.Time) (c store.AppendCall, ok, busy bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight || w.closed {
		return store.AppendCall{}, false, w.inflight
	}
	text := w.pending.String()
	if text == "" || !w.draining && !w.pace.ready(text, w.since, now) {
		return store.AppendCall{}, false, false
	}
	w.inflight, w.sent, w.taken = true, text, now
	return store.AppendCall{Conv: w.conv, Gen: w.gen, Text: text, Offset: w.stored, Got: w.since}, true, false
}

// settle takes the reply to the append in flight. On a Redis error the
// text stays pending and goes again, with what came since, on a next tick:
// nothing is dropped while the lease holds.
func (w *writer) settle(r store.AppendReply) {
	var warn, cause error
	recovered, outage := false, time.Duration(0)
	now := time.Now()
	w.mu.Lock()
	text := w.sent
	w.inflight, w.sent = false, ""
	switch {
	case errors.Is(r.Err, store.ErrStale):
		cause = errStale
	case r.Err != nil:
		if !w.failing {
			warn = r.Err
			w.failing = true
		}
		w.failedLocked(now)
	case r.Result == store.StopRequested:
		cause = errStopped
	case r.Result == store.Full:
		cause = errFull
	default:
		w.failing = false
		outage, recovered = w.succeededLocked(now)
		w.stored = r.Length
		w.pace.wrote(text)
		rest := w.pending.String()[len(text):]
		w.pending.Reset()
		w.pending.WriteString(rest)
		// What came during the write arrived after the text was taken:
		// counting from then overstates its latency by at most one round
		// trip, never less.
		w.since = w.taken
	}
	if cause != nil && w.cause == nil {
		w.cause, w.closed = cause, true
		close(w.halted)
	}
	w.mu.Unlock()
	if warn != nil {
		w.log.Warn("append to answer; will retry", "err", warn)
	}
	if recovered {
		w.log.Info("redis answers again", "redis_failed_for", outage.Round(time.Millisecond))
		select {
		case w.recovered <- struct{}{}:
		default:
		}
	}
	select {
	case w.settledc <- struct{}{}:
	default: // a signal is already waiting
	}
}

// haltCause is why an append halted the generation (errStale, errStopped,
// errFull), once halted is closed.
func (w *writer) haltCause() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cause
}

// quiesce lets no more text be taken and waits for the append in flight,
// if any, to be settled, so that the end event comes after it. An append
// ends within writeTimeout.
func (w *writer) quiesce() {
	w.mu.Lock()
	w.closed = true
	for w.inflight {
		w.mu.Unlock()
		<-w.settledc
		w.mu.Lock()
	}
	w.mu.Unlock()
}

// drain has all pending text written before the end event, the appender
// retrying it while Redis does not answer, for up to endWait (a shutdown
// cuts that to its end wait). It reports whether the generation still owns
// its answer.
func (w *writer) drain() bool {
	w.mu.Lock()
	w.draining = true
	w.mu.Unlock()
	w.m.appends.hurry(w)
	start := time.Now()
	deadline := time.NewTimer(time.Until(w.m.endDeadline(start)))
	defer deadline.Stop()
	shutdown := w.m.base.Done()
	for {
		w.mu.Lock()
		done := w.pending.Len() == 0 && !w.inflight && w.cause == nil
		if done {
			w.closed = true
		}
		w.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-w.halted:
			// Stopped or full: keep what was written, end accordingly.
			switch cause := w.haltCause(); {
			case errors.Is(cause, errStopped):
				w.finish(store.StatusStopped, "")
			case errors.Is(cause, errFull):
				w.finish(store.StatusFailed, w.m.fullText())
			}
			return false
		case <-w.settledc:
		case <-shutdown:
			shutdown = nil
			deadline.Reset(time.Until(w.m.endDeadline(start)))
		case <-deadline.C:
			// Not waiting for an append in flight: it ends within
			// writeTimeout, and nothing is written after it.
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			w.log.Error("could not write the end of an answer; the sweeper will end it as interrupted")
			return false
		}
	}
}

// finish writes the end event, retrying while Redis is unreachable, for up
// to endWait (a shutdown cuts that to its end wait), as long as the answer is
// still this generation's.
func (w *writer) finish(status, errText string) {
	w.finishWith(status, func() string { return errText })
}

// finishWith is finish with the text people see made at each try.
func (w *writer) finishWith(status string, errText func() string) {
	start := time.Now()
	shutdown := w.m.base.Done()
	pause := 250 * time.Millisecond
	for {
		budget := min(w.m.writeBudget(), time.Until(w.m.endDeadline(start)))
		if budget <= 0 {
			w.log.Error("could not end an answer in time; the sweeper will end it as interrupted")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		err := w.m.store.Finish(ctx, store.Ending{Conv: w.conv, Gen: w.gen, Status: status, Error: errText()})
		cancel()
		switch {
		case err == nil:
			w.succeeded(time.Now())
			w.log.Info("answer ended", "status", status)
			w.ended = status
			w.onEnd()
			return
		case errors.Is(err, store.ErrStale):
			w.log.Info("answer was already ended elsewhere", "status", status)
			w.onEnd()
			return
		case time.Now().After(w.m.endDeadline(start)):
			w.log.Error("could not end an answer; the sweeper will end it as interrupted", "err", err)
			return
		}
		w.failed(time.Now())
		t := time.NewTimer(min(pause, time.Until(w.m.endDeadline(start))))
		select {
		case <-t.C:
		case <-shutdown:
			shutdown = nil // try again now, within the shutdown's end wait
			t.Stop()
		}
		// Backing off, but never so far that Redis back finds the answer
		// unended for long: other processes' sweepers wait only a lease.
		pause = min(pause*2, 2*time.Second, max(w.m.cfg.LeaseTTL/4, 250*time.Millisecond))
	}
}
