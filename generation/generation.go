// Package generation runs answers: it reads tokens from a model and appends
// them to the conversation in small batches, detached from the request that
// asked for the answer and from whoever is watching. Each generation holds a
// lease in Redis; a sweeper in every process ends the answers of generations
// whose process died, so no message stays "streaming" forever.
//
// An answer is asked for by one call, Post or Regenerate, which admits it
// (ownership, this process's capacity, the limits shared by every process),
// stores what asks for it and starts it; whatever it took is given back on
// every path that starts nothing, and when the answer ends.
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
	// DefaultModel writes the answers of conversations that chose none;
	// "" is the model's own default (llm.Model.Name).
	DefaultModel string
	Observer     Observer // told when generations start and end; nil for nobody
	// MaxAnswerBytes is the answer size the store cuts an answer off at
	// (store.Config's); text beyond it is not kept waiting. 0 is no limit.
	MaxAnswerBytes int
	// Limits are the shared limits that admit an answer (Post, Regenerate).
	Limits Limits
}

// Observer is told when this process's generations start and end, for
// metrics; it must return quickly. Each started generation ends exactly once,
// with the status it wrote (store.StatusDone, StatusStopped, StatusFailed,
// StatusInterrupted), or StatusInterrupted when it could not write its end
// (lease lost, Redis gone): a sweeper then ends it as interrupted.
type Observer interface {
	GenerationStarted()
	GenerationEnded(outcome string)
	// ProviderUp is told after each call to the model whether the
	// provider answered (false: it rejected the key, did not answer, or
	// failed on its side).
	ProviderUp(up bool)
}

type nopObserver struct{}

func (nopObserver) GenerationStarted()     {}
func (nopObserver) GenerationEnded(string) {}
func (nopObserver) ProviderUp(bool)        {}

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
	renews  *renewer

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
		renews:  newRenewer(st, log, cfg.LeaseTTL/3),
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		base:    base, cancelBase: cancel,
	}
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
	held, first := false, true
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
				// After a Redis outage, or when no process ran for a while.
				// At this process's first sweep that is only a start (the
				// first process up), not news for an operator.
				level := slog.LevelInfo
				if first {
					level = slog.LevelDebug
				}
				m.log.Log(ctx, level, "no process swept for a while; sweeps wait a lease for living generations to renew theirs", "wait", hold)
			}
			held, first = true, false
			continue
		}
		held, first = false, false
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
// returns the status the answer ended with (see Observer), what the model
// was asked, and whether the answer has text. ended is called as soon as its end is written
// (and again, harmlessly, by start): the owner's reservation is then free
// at once, not after the cleanup that follows, so a person who stops an
// answer and sends another straight away is not told to wait.
func (m *Manager) run(conv, gen string, ended func()) (outcome string, p prompt, answered bool) {
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
	p, err = m.prompt(ctx, conv)
	if err != nil {
		log.Error("read conversation for the model", "err", err)
		w.finish(store.StatusFailed, readFailText)
		return w.outcome(), prompt{}, false
	}
	w.stored = p.answered

	// From here the process's appender writes the text, on its shared tick.
	m.appends.add(w)
	defer m.appends.remove(w)
	modelDone := make(chan modelEnd, 1)
	go func() {
		finish, err := m.stream(ctx, w, p)
		modelDone <- modelEnd{finish, err}
	}()

	// And its renewer renews the lease, on the process's shared tick.
	m.renews.add(w, cancel)
	halted := w.halted
	var model modelEnd
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
			m.renews.hurry(w)
		case model = <-modelDone:
			break loop
		}
	}
	m.renews.remove(w)

	m.end(w, context.Cause(ctx), model)
	w.mu.Lock()
	stored := w.stored
	w.mu.Unlock()
	m.spend(log, promptBytes(p.messages)+stored-p.answered)
	return w.outcome(), p, stored > 0
}

// modelEnd is how the model's stream ended: how it finished, or its error.
type modelEnd struct {
	finish llm.Finish
	err    error
}

// cutOffText is shown under an answer whose stream ended without the
// provider saying it was complete.
const cutOffText = "The model's answer was cut off; the text so far is kept."

func isCutOff(err error) bool {
	var le *llm.Error
	return errors.As(err, &le) && le.Kind == llm.CutOff
}

// end writes the end of w's answer, by what ended the generation: cause,
// its context's, or else how the model's stream ended.
func (m *Manager) end(w *writer, cause error, model modelEnd) {
	modelErr := model.err
	switch {
	case errors.Is(cause, errStopped):
		// What is pending is dropped, as the person asked; what is in
		// flight lands before the end, as it would have without batching.
		w.quiesce()
		w.finish(store.StatusStopped, "")
	case errors.Is(cause, errStale):
		w.quiesce()
		w.log.Warn("generation lost its lease; another process ends the answer")
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
			// Cut at the model's length limit: done, said so, continuable.
			w.cut = model.finish == llm.FinishLength
			w.finish(store.StatusDone, "")
		}
	case isCutOff(modelErr):
		// The stream ended without saying it was complete: what came is
		// kept, and people are told the rest is missing.
		if w.drain() {
			w.finish(store.StatusInterrupted, cutOffText)
		}
		w.log.Warn("model's answer was cut off", "err", modelErr)
	default:
		if w.drain() {
			w.finish(store.StatusFailed, modelErrorText(modelErr))
		}
		w.log.Warn("model failed", "err", modelErr)
	}
}

// renewRetry is how soon a renewal that failed is tried again: Redis that
// comes back finds the generation renewing (or re-taking) its lease at once.
const renewRetry = 500 * time.Millisecond

// spend counts the answer's model tokens against the deployment's daily
// budget (store.CheckTokens refuses new answers past it). Providers bill
// the prompt (the whole history) and the answer; a token is taken as four
// bytes, which is close for English and errs high for code.
func (m *Manager) spend(log *slog.Logger, n int) {
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
	return fmt.Sprintf("The answer reached the size limit (%d KB) and was cut off.", m.cfg.MaxAnswerBytes/1024)
}

func modelErrorText(err error) string {
	var le *llm.Error
	if errors.As(err, &le) && le.Message != "" {
		return le.Message
	}
	return "The model failed while writing this answer."
}
