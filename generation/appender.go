package generation

import (
	"context"
	"sync"
	"time"

	"github.com/parley-chat/parley/store"
)

// appender writes the text of all this process's generations to Redis, in
// batches: each batch is one pipelined round trip (store.AppendBatch) that
// carries the due text of many generations. With a ticker and a round trip
// per generation, 200 answers queued for the 20 pooled connections and a
// token waited for the ones ahead of it; now a batch costs one connection
// and one round trip, however many answers it holds.
//
// Every generation still writes once per interval, in its own phase of it:
// the interval is cut into appendPhases sub-ticks and the generations are
// spread over them, each sub-tick sending one batch. All of them in one
// batch per interval would make every process's hub render and send all
// the frames at once, and the last viewer of that burst would wait for the
// whole of it; spread, the same work comes in small, even steps.
//
// A generation has at most one append in flight: one whose turn comes
// while its last batch is out goes in the first batch after that one is
// back. So a slow Redis makes batches fewer and larger instead of piling up
// writes (usually at most appendPhases of them are out at once; more only
// while a batch is slower than an interval), while the model's
// stream only ever adds to its generation's pending text; and a batch that
// is slow holds up only the generations in it. On a Redis Cluster each
// sub-tick sends one batch per shard (the master serving a conversation, as
// the client knows it), so a master that fails stalls the answers it holds
// and no others.
//
// Its loop runs while any generation of the process does.
type appender struct {
	store    *store.Store
	interval time.Duration
	phases   int

	mu      sync.Mutex
	writers map[*writer]*member
	load    []int // writers per phase
	running bool  // loop is running
	start   time.Time
	next    int64 // the first sub-tick since start not handled yet

	// Reused from sub-tick to sub-tick; only loop touches them.
	turns  []*writer
	shards []string
}

// member is a writer's place in the appender.
type member struct {
	phase int
	// turn: its phase came since it was last offered to a batch. It waits
	// for its append in flight, if any, to come back.
	turn bool
}

// appendPhases is the number of sub-ticks, and batches, per interval: 5
// sends 200 answers' appends as 40 per round trip, every 5 ms at the
// default interval.
const appendPhases = 5

// batch is the appends of one shard in one sub-tick.
type batch struct {
	due   []*writer
	calls []store.AppendCall
}

// newAppender returns an appender that gives each generation a turn every
// interval. Its loop starts with the first generation.
func newAppender(st *store.Store, interval time.Duration) *appender {
	return &appender{store: st, interval: interval, phases: appendPhases,
		writers: map[*writer]*member{}, load: make([]int, appendPhases)}
}

// add makes w's text part of the batches of its phase, the one with the
// fewest writers.
func (a *appender) add(w *writer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := 0
	for i, n := range a.load {
		if n < a.load[p] {
			p = i
		}
	}
	a.writers[w] = &member{phase: p}
	a.load[p]++
	if !a.running {
		a.running = true
		a.start, a.next = time.Now(), 0
		go a.loop()
	}
}

// remove takes w out of the batches; an append of it still in flight is
// settled all the same.
func (a *appender) remove(w *writer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if m, ok := a.writers[w]; ok {
		a.load[m.phase]--
		delete(a.writers, w)
	}
}

// hurry gives w its turn now rather than at its phase: the end of an
// answer waits for its last text, and should not wait up to an interval
// more for its phase.
func (a *appender) hurry(w *writer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if m, ok := a.writers[w]; ok {
		m.turn = true
	}
}

// step is the time between sub-ticks; at least a millisecond, so that a tiny
// flush interval cannot make a ticker of zero (which panics).
func (a *appender) step() time.Duration {
	return max(a.interval/time.Duration(a.phases), time.Millisecond)
}

// loop runs a sub-tick every step until no generation is left.
func (a *appender) loop() {
	t := time.NewTicker(a.step())
	defer t.Stop()
	for range t.C {
		// Not the tick's own time: that is stale if the tick waited.
		if !a.tick(time.Now()) {
			return
		}
	}
}

// tick gives their turn to the generations whose phase came since the last
// sub-tick, and sends the due text of those with no append in flight, one
// batch per shard; each generation gets its reply. It reports false,
// having marked the loop stopped, when no generation is left.
func (a *appender) tick(now time.Time) bool {
	a.mu.Lock()
	if len(a.writers) == 0 {
		a.running = false
		a.mu.Unlock()
		return false
	}
	// The sub-tick nearest now: ticks come a hair early or late, or late
	// by several steps on a busy machine.
	from, to := a.next, int64((now.Sub(a.start)+a.step()/2)/a.step())
	if to < from {
		to = from
	}
	a.next = to + 1
	a.turns = a.turns[:0]
	for w, m := range a.writers {
		if to-from+1 >= int64(a.phases) || phaseIn(int64(m.phase), from, to, int64(a.phases)) {
			m.turn = true
		}
		if m.turn {
			a.turns = append(a.turns, w)
		}
	}
	a.mu.Unlock()
	if len(a.turns) == 0 {
		return true
	}

	// Shards are looked up outside the lock: the cluster client may have
	// to learn the cluster's layout first.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	a.shards = a.shards[:0]
	for _, w := range a.turns {
		a.shards = append(a.shards, a.store.Shard(ctx, w.conv))
	}
	cancel()

	var batches map[string]*batch
	a.mu.Lock()
	for i, w := range a.turns {
		m := a.writers[w]
		if m == nil {
			continue // ended meanwhile
		}
		c, ok, busy := w.take(now)
		if busy {
			continue // it keeps its turn for when its append is back
		}
		m.turn = false
		if !ok {
			continue
		}
		if batches == nil {
			batches = map[string]*batch{}
		}
		b := batches[a.shards[i]]
		if b == nil {
			b = &batch{}
			batches[a.shards[i]] = b
		}
		b.due = append(b.due, w)
		b.calls = append(b.calls, c)
	}
	a.mu.Unlock()
	clear(a.turns) // no reference kept to an ended generation

	for _, b := range batches {
		go b.send(a.store)
	}
	return true
}

// phaseIn reports whether phase p of n comes in sub-ticks from to to.
func phaseIn(p, from, to, n int64) bool {
	for s := from; s <= to; s++ {
		if s%n == p {
			return true
		}
	}
	return false
}

// send writes b in one round trip and hands each generation its reply.
func (b *batch) send(st *store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	for i, r := range st.AppendBatch(ctx, b.calls, make([]store.AppendReply, 0, len(b.calls))) {
		b.due[i].settle(r)
	}
}
