// Package generation runs answers: it reads tokens from a model and appends
// them to the conversation in small batches, detached from the request that
// asked for the answer and from whoever is watching. Each generation holds a
// lease in Redis; a sweeper in every process ends the answers of generations
// whose process died, so no message stays "streaming" forever.
package generation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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

// Shutdown stops taking generations and lets the running ones finish until
// ctx is done; those still running then end as interrupted, keeping their
// text. It returns when all have written their end.
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
	m.cancelBase(errShutdown)
	select {
	case <-done:
	case <-time.After(m.cfg.LeaseTTL):
		m.log.Error("generations did not end after shutdown; the sweeper of another process will end them")
	}
}

// RunSweeper ends, every SweepInterval, the answers whose generation lost its
// lease (its process died). Every process runs one; the script makes sure
// each answer is ended once.
func (m *Manager) RunSweeper(ctx context.Context) {
	t := time.NewTicker(m.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids, err := m.store.ExpiredLeases(ctx, time.Now(), 100)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("sweep generations", "err", err)
			}
			continue
		}
		for _, conv := range ids {
			ended, err := m.store.Expire(ctx, conv)
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

	renew := time.NewTicker(m.cfg.LeaseTTL / 3)
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
		case <-renew.C:
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
			stop, err := m.store.Renew(rctx, conv, gen)
			rcancel()
			switch {
			case errors.Is(err, store.ErrStale):
				cancel(errStale)
			case err != nil:
				log.Warn("renew lease", "err", err)
			case stop:
				cancel(errStopped)
			}
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
		if w.drain() {
			w.finish(store.StatusFailed, fmt.Sprintf("The answer took longer than %s and was cut off.", m.cfg.MaxDuration))
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

// spend counts the answer's model tokens against the deployment's daily
// budget (store.CheckTokens refuses new answers past it). Providers bill
// the prompt (the whole history) and the answer; a token is taken as four
// bytes, which is close for English and errs high for code.
func (m *Manager) spend(log *slog.Logger, history []llm.Message, answerBytes int) {
	n := answerBytes
	for _, msg := range history {
		n += len(msg.Content)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
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
		halted: make(chan struct{}), settledc: make(chan struct{}, 1), onEnd: func() {}}
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
	case r.Result == store.StopRequested:
		cause = errStopped
	case r.Result == store.Full:
		cause = errFull
	default:
		w.failing = false
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
// retrying it for up to one lease. It reports whether the generation still
// owns its answer.
func (w *writer) drain() bool {
	w.mu.Lock()
	w.draining = true
	w.mu.Unlock()
	w.m.appends.hurry(w)
	deadline := time.NewTimer(w.m.cfg.LeaseTTL)
	defer deadline.Stop()
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
		case <-deadline.C:
			w.quiesce()
			w.log.Error("could not write the end of an answer; the sweeper will end it as interrupted")
			return false
		}
	}
}

// finish writes the end event, retrying while Redis is unreachable and the
// lease could still be ours.
func (w *writer) finish(status, errText string) {
	deadline := time.Now().Add(w.m.cfg.LeaseTTL)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := w.m.store.Finish(ctx, w.conv, w.gen, status, errText)
		cancel()
		switch {
		case err == nil:
			w.log.Info("answer ended", "status", status)
			w.ended = status
			w.onEnd()
			return
		case errors.Is(err, store.ErrStale):
			w.log.Info("answer was already ended elsewhere", "status", status)
			w.onEnd()
			return
		case time.Now().After(deadline):
			w.log.Error("could not end an answer; the sweeper will end it as interrupted", "err", err)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}
