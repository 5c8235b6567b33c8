package generation

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-chat/parley/store"
)

// renewer renews the leases of all this process's generations, in batches:
// every renewal period (a third of the lease) one pipelined round trip
// (store.RenewBatch) renews every running generation's lease, reads its stop
// flag and registers them all with the sweepers in one ZADD. A generation
// renewing alone cost two round trips per period each (the script and the
// ZADD); now a period costs one, however many generations run.
//
// The renewals are due on one grid (start + k*every), so that all of them
// go together: a generation that starts waits for the next point of the
// grid (less than a period: its post took a whole lease). A renewal that
// fails is tried again renewRetry later (the failed ones of a batch
// together), and one whose generation's append went through after Redis
// failed is sent at once (hurry), so that a lease that ran out meanwhile is
// registered again; once one succeeds the generation is back on the grid.
//
// Each generation has at most one renewal in flight. On a Redis Cluster
// each batch goes per shard (the master serving a conversation, as the
// client knows it), as the appender's do, so that a master that fails holds
// up the renewals of its own answers only.
//
// Its loop runs while any generation of the process does.
type renewer struct {
	store *store.Store
	log   *slog.Logger
	every time.Duration // the renewal period
	retry time.Duration // how soon a failed renewal goes again

	mu      sync.Mutex
	leases  map[*writer]*lease
	running bool      // loop is running
	start   time.Time // the grid's origin
	wake    chan struct{}
	settled *sync.Cond // broadcast when a renewal in flight is settled
	// failing holds the shards whose last batch failed: an outage is
	// logged once, not at every retry of every generation.
	failing map[string]bool
}

// lease is one generation's place in the renewer.
type lease struct {
	cancel   context.CancelCauseFunc // ends the generation (stale, stopped)
	due      time.Time               // when it is renewed next
	inflight bool                    // a renewal of it is out
	again    bool                    // hurried while in flight: renew once it is back
	removed  bool                    // its generation is past its loop
}

// renewBatch is the renewals of one shard in one tick.
type renewBatch struct {
	shard string
	due   []*writer
	calls []store.RenewCall
}

// newRenewer returns a renewer that renews each lease every period. Its
// loop starts with the first generation.
func newRenewer(st *store.Store, log *slog.Logger, every time.Duration) *renewer {
	every = max(every, time.Millisecond) // a zero lease must not spin the loop
	r := &renewer{store: st, log: log, every: every, retry: min(every, renewRetry),
		leases: map[*writer]*lease{}, wake: make(chan struct{}, 1), failing: map[string]bool{}}
	r.settled = sync.NewCond(&r.mu)
	return r
}

// add renews w's lease from the next point of the grid on; a lost answer or
// a stop request found by a renewal cancels the generation with cancel.
func (r *renewer) add(w *writer, cancel context.CancelCauseFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.running {
		r.running, r.start = true, now
		go r.loop()
	}
	r.leases[w] = &lease{cancel: cancel, due: r.next(now)}
	r.poke()
}

// remove stops renewing w's lease. It waits for a renewal of it still in
// flight, whose reply then changes nothing: the generation's end is written
// after it, so that its ZADD cannot register again an answer that ended.
func (r *renewer) remove(w *writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.leases[w]
	if l == nil {
		return
	}
	l.removed = true
	for l.inflight {
		r.settled.Wait()
	}
	delete(r.leases, w)
	r.poke() // the loop ends at once when it was the last
}

// hurry renews w's lease now: its append went through after Redis failed.
func (r *renewer) hurry(w *writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.leases[w]; l != nil {
		l.due, l.again = time.Time{}, l.inflight
		r.poke()
	}
}

// poke wakes the loop to look at the due times again. r.mu is held.
func (r *renewer) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// next is the first point of the grid after now. r.mu is held.
func (r *renewer) next(now time.Time) time.Time {
	return r.start.Add((now.Sub(r.start)/r.every + 1) * r.every)
}

// loop sends the due renewals and sleeps until the next are due, until no
// generation is left.
func (r *renewer) loop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait, ok := r.tick(time.Now())
		if !ok {
			return
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-r.wake:
		}
	}
}

// tick sends the renewals due at now, one batch per shard, and returns how
// long until the next are due. It reports false, having marked the loop
// stopped, when no generation is left.
func (r *renewer) tick(now time.Time) (time.Duration, bool) {
	r.mu.Lock()
	if len(r.leases) == 0 {
		r.running = false
		r.mu.Unlock()
		return 0, false
	}
	var due []*writer
	wait := r.every
	for w, l := range r.leases {
		switch {
		case l.inflight || l.removed:
		case !l.due.After(now):
			l.inflight = true
			due = append(due, w)
		default:
			wait = min(wait, l.due.Sub(now))
		}
	}
	r.mu.Unlock()
	if len(due) == 0 {
		return wait, true
	}
	// Shards are looked up outside the lock: the cluster client may have
	// to learn the cluster's layout first.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	batches := map[string]*renewBatch{}
	for _, w := range due {
		shard := r.store.Shard(ctx, w.conv)
		b := batches[shard]
		if b == nil {
			b = &renewBatch{shard: shard}
			batches[shard] = b
		}
		b.due = append(b.due, w)
		b.calls = append(b.calls, store.RenewCall{Conv: w.conv, Gen: w.gen})
	}
	cancel()
	for _, b := range batches {
		go r.send(b)
	}
	return wait, true
}

// send renews b's leases in one round trip and settles each reply.
func (r *renewer) send(b *renewBatch) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	replies := r.store.RenewBatch(ctx, b.calls, make([]store.RenewReply, 0, len(b.calls)))
	cancel()
	now := time.Now()
	var failed error
	for i, rep := range replies {
		if rep.Err != nil && !errors.Is(rep.Err, store.ErrStale) && failed == nil {
			failed = rep.Err
		}
		r.settle(b.due[i], rep, now)
	}
	r.mu.Lock()
	warn := failed != nil && !r.failing[b.shard]
	if failed != nil {
		r.failing[b.shard] = true
	} else {
		delete(r.failing, b.shard)
	}
	r.settled.Broadcast()
	r.poke()
	r.mu.Unlock()
	if warn {
		r.log.Warn("renew leases; retrying while Redis fails", "err", failed, "leases", len(b.calls), "retry_every", r.retry)
	}
}

// settle takes the reply to w's renewal: a lost answer or a stop request
// ends the generation, a failure has the renewal tried again soon.
func (r *renewer) settle(w *writer, rep store.RenewReply, now time.Time) {
	r.mu.Lock()
	l := r.leases[w]
	failed := rep.Err != nil && !errors.Is(rep.Err, store.ErrStale)
	switch {
	case l.again:
		l.due = time.Time{}
	case failed:
		l.due = now.Add(r.retry)
	default:
		l.due = r.next(now)
	}
	l.inflight, l.again = false, false
	removed := l.removed
	r.mu.Unlock()
	switch {
	case failed:
		w.failed(now)
		return
	case removed:
		// Past its loop: its end is being written, by what it knows.
	case errors.Is(rep.Err, store.ErrStale):
		l.cancel(errStale)
	case rep.Stop:
		l.cancel(errStopped)
	}
	if rep.Err == nil {
		if d, ok := w.succeeded(now); ok {
			w.log.Info("redis answers again", "redis_failed_for", d.Round(time.Millisecond))
		}
	}
}
