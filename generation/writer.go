package generation

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/store"
)

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

	received bool // the model sent text: it is not asked again (retry.go)
	cut      bool // the model stopped at its length limit (store.Ending.Cut)

	ended string // the status this generation wrote as its end, if it did
	onEnd func() // called once its end is written (start's ended)
}

// newWriter returns the writer of generation gen of conv, for m's appender.
func newWriter(m *Manager, conv, gen string, log *slog.Logger) *writer {
	w := &writer{m: m, conv: conv, gen: gen, log: log,
		pace:   pacer{budget: m.cfg.FrameBudget, maxHold: m.cfg.FrameMaxHold},
		halted: make(chan struct{}), settledc: make(chan struct{}, 1), recovered: make(chan struct{}, 1), onEnd: func() {}}
	if n := m.cfg.MaxAnswerBytes; n > 0 {
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
	w.received = w.received || text != ""
	w.mu.Unlock()
	return nil
}

// hasText reports whether the model sent any text.
func (w *writer) hasText() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.received
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
		err := w.m.store.Finish(ctx, store.Ending{Conv: w.conv, Gen: w.gen, Status: status, Error: errText(), Cut: w.cut})
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
