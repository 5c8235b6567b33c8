package live

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/live/gzipwire"
	"github.com/parley-chat/parley/render"
	"github.com/parley-chat/parley/store"
)

// inboxSize bounds the notices a room holds while it is busy. Overflow is not
// an error: the room marks itself for a resync and reads Redis instead.
const inboxSize = 512

// Room is one conversation as seen by this process: its viewers, the
// generations listening for stop, and (while anyone watches) the rendered
// state that frames are computed from.
type Room struct {
	hub  *Hub
	conv string

	// Guarded by hub.mu.
	refs int

	confirmed   chan struct{}
	confirmOnce atomic.Bool
	ctx         context.Context
	cancel      context.CancelFunc

	inbox   chan string
	wake    chan struct{}
	resync  atomic.Bool
	retryAt atomic.Bool // a retry timer is pending

	// Presence: the number of viewers here is reported to Redis (debounced,
	// and refreshed before it expires); watching is the total across
	// processes, as last published.
	presence chan struct{}
	watching atomic.Int64

	mu       sync.Mutex
	hist     gzipwire.History // the frames broadcast last, for compression
	viewers  map[*viewer]struct{}
	stoppers map[int]stopper
	nextStop int

	// Owned by the run goroutine.
	state     *convState
	lastFrame time.Time // when the last frame of log events was broadcast
}

type stopper struct {
	gen  string
	stop func()
}

// convState is the conversation as of log position last.
type convState struct {
	last  store.ID
	title string
	msgs  []*render.Message
}

func newRoom(h *Hub, conv string) *Room {
	ctx, cancel := context.WithCancel(h.ctx)
	return &Room{
		hub: h, conv: conv,
		confirmed: make(chan struct{}),
		ctx:       ctx, cancel: cancel,
		inbox:    make(chan string, inboxSize),
		wake:     make(chan struct{}, 1),
		presence: make(chan struct{}, 1),
		viewers:  map[*viewer]struct{}{},
		stoppers: map[int]stopper{},
	}
}

// deliver hands a notice to the room without ever blocking the subscription.
func (r *Room) deliver(payload string) {
	select {
	case r.inbox <- payload:
	default:
		r.requestResync()
	}
}

func (r *Room) requestResync() {
	r.resync.Store(true)
	r.poke()
}

func (r *Room) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Room) addViewer(v *viewer) {
	r.mu.Lock()
	r.viewers[v] = struct{}{}
	first := len(r.viewers) == 1
	r.mu.Unlock()
	if first {
		r.poke() // load the state frames are computed from
	}
	r.presenceChanged()
}

func (r *Room) removeViewer(v *viewer) {
	r.mu.Lock()
	delete(r.viewers, v)
	r.mu.Unlock()
	r.presenceChanged()
}

func (r *Room) viewerCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.viewers)
}

func (r *Room) presenceChanged() {
	select {
	case r.presence <- struct{}{}:
	default:
	}
}

func (r *Room) hasViewers() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.viewers) > 0
}

func (r *Room) addStopper(gen string, stop func()) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextStop++
	r.stoppers[r.nextStop] = stopper{gen: gen, stop: stop}
	return r.nextStop
}

func (r *Room) removeStopper(id int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.stoppers, id)
}

// broadcast gives f to every viewer. A viewer whose queue is full is not
// waited for: it is marked to be fast-forwarded to the current state.
func (r *Room) broadcast(f *Frame) {
	r.hub.frames.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	f.z = r.hist.Add(f.Data)
	for v := range r.viewers {
		v.offer(f)
	}
}

// Presence timings: changes are reported at most this often, and a
// process's count is refreshed well before it expires, so a dead process's
// viewers stop counting after presenceTTL.
const (
	presenceDebounce    = 250 * time.Millisecond
	presenceMaxDebounce = 5 * time.Second
	presenceRefresh     = 10 * time.Second
	presenceTTL         = 30 * time.Second
)

// presenceDelay is how long a room gathers presence changes before it
// reports them. Every report ends as a frame to every viewer of the
// conversation, so a big room reports less often: otherwise a crowd coming
// and going gets more presence frames than answer frames, and a count that
// lags a few seconds in a crowd is not noticed.
func presenceDelay(viewers int) time.Duration {
	return min(presenceDebounce*time.Duration(1+viewers/100), presenceMaxDebounce)
}

// frameGap is the least time between two frames of a room with n viewers.
// Fan-out costs frames x viewers writes, each a syscall of some 10 µs: at one
// frame per generation flush (25 ms), 5,000 viewers would need 200,000 writes
// a second, more than two cores can do, and everyone would fall behind. So a
// room sends at most writesPerSecond writes' worth of frames: a small room
// gets every flush as a frame, a crowd gets fewer, bigger frames, which carry
// the same text (frames hold state, so nothing is lost by merging them).
func frameGap(n, writesPerSecond int) time.Duration {
	if writesPerSecond <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second/time.Duration(writesPerSecond), maxFrameGap)
}

// maxFrameGap bounds frameGap: beyond it, a reader sees the text stutter.
const maxFrameGap = 250 * time.Millisecond

func (r *Room) run() {
	go r.runPresence()
	hold := time.NewTimer(0)
	<-hold.C
	for {
		select {
		case <-r.ctx.Done():
			return
		case p := <-r.inbox:
			// A crowd gets frames less often: notices wait in the inbox
			// meanwhile, and the next frame covers them all.
			if wait := time.Until(r.lastFrame.Add(frameGap(r.viewerCount(), r.hub.cfg.RoomWritesPerSecond))); wait > 0 {
				hold.Reset(wait)
				select {
				case <-r.ctx.Done():
					return
				case <-hold.C:
				}
			}
			batch := []string{p}
		drain:
			for len(batch) < inboxSize {
				select {
				case p := <-r.inbox:
					batch = append(batch, p)
				default:
					break drain
				}
			}
			r.handle(batch)
		case <-r.wake:
			r.handle(nil)
		}
	}
}

// runPresence reports this process's viewer count of the room to Redis: on
// changes (debounced), and again before it expires. It has a goroutine of its
// own so that a slow Redis never holds up the room's frames. A report that
// fails is tried again at the next refresh.
func (r *Room) runPresence() {
	var (
		debounce <-chan time.Time
		reported = 0
		failed   bool
	)
	refresh := time.NewTicker(presenceRefresh)
	defer refresh.Stop()
	report := func(ctx context.Context, n int) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := r.hub.store.Presence(ctx, r.conv, r.hub.id, n, presenceTTL); err != nil {
			r.hub.log.Debug("report presence", "conversation", r.conv, "err", err)
			failed = true
			return
		}
		reported, failed = n, false
	}
	for {
		select {
		case <-r.ctx.Done():
			if reported > 0 || failed {
				// The room closed: this process watches no more. Best
				// effort; the count expires anyway.
				report(context.WithoutCancel(r.ctx), 0)
			}
			return
		case <-r.presence:
			if debounce == nil {
				debounce = time.After(presenceDelay(r.viewerCount()))
			}
		case <-debounce:
			debounce = nil
			if n := r.viewerCount(); n != reported || failed {
				report(r.ctx, n)
			}
		case <-refresh.C:
			if reported > 0 || failed {
				report(r.ctx, r.viewerCount())
			}
		}
	}
}

// handle applies a batch of notices and broadcasts one frame for all of them.
func (r *Room) handle(batch []string) {
	var events []store.Event
	for _, p := range batch {
		ev, err := store.DecodeEvent(p)
		if err != nil {
			r.hub.log.Warn("malformed notice; re-reading the log", "conversation", r.conv, "err", err)
			r.resync.Store(true)
			continue
		}
		switch ev.Type {
		case store.EventStop:
			r.stop(ev.Gen)
			continue
		case store.EventPresence:
			r.watching.Store(int64(ev.N))
			r.broadcast(presenceFrame(ev.N))
			continue
		case store.EventDeleted:
			r.state = nil
			r.broadcast(deletedFrame())
			continue
		}
		events = append(events, ev)
	}
	if !r.hasViewers() {
		r.state = nil // nobody to render for; reload when someone comes
		return
	}
	if r.state == nil {
		if !r.load() {
			return
		}
	}
	if r.resync.Swap(false) {
		if !r.refresh(true) {
			return
		}
	}
	from := r.state.last
	ch := newChanges()
	for _, ev := range events {
		id, err := store.ParseID(ev.ID)
		if err != nil || !r.state.last.Less(id) {
			continue // already applied (the load or a resync read it)
		}
		prev, err := store.ParseID(ev.Prev)
		lost := err != nil || prev != r.state.last
		if lost || rereads(ev.Type) || !r.state.apply(r, ev, ch) {
			// A notice was lost (or the log was trimmed), or it changed the
			// path (which its notice does not carry): the log is the truth,
			// so send what we have, then re-read from our position.
			r.emit(from, ch)
			if !r.refresh(lost || !rereads(ev.Type)) {
				return // retried by a timer; the refresh will cover these events
			}
			from, ch = r.state.last, newChanges()
			continue
		}
		r.state.last = id
	}
	r.emit(from, ch)
}

func (r *Room) emit(from store.ID, ch *changes) {
	if ch.empty() || from == r.state.last {
		return
	}
	id := r.state.last.String()
	data := mergeEvents(id, ch.render(r.state.msgs, r.state.title))
	if ch.status {
		data = append(data, busySignals(id, r.state.msgs)...)
	}
	r.lastFrame = time.Now()
	r.broadcast(&Frame{From: from, ID: r.state.last, Data: data, Appended: ch.appended, titled: ch.title, title: r.state.title})
}

func (r *Room) stop(gen string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.stoppers {
		if s.gen == gen {
			s.stop()
		}
	}
}

// load reads the whole conversation; frames are computed from it from now on.
func (r *Room) load() bool {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	snap, err := r.hub.store.Snapshot(ctx, r.conv, store.ID{})
	if err != nil {
		r.retryLater(err)
		return false
	}
	st := &convState{last: snap.Last, title: snap.Title}
	for _, m := range snap.Messages {
		st.msgs = append(st.msgs, render.NewMessage(r.hub.md, r.conv, m))
	}
	r.state = st
	r.resync.Store(false)
	// A viewer that joined just before this read its own snapshot, which may
	// be older than ours: events in between are in our state but were never
	// broadcast, and if nothing follows them (an answer's end, a rename) it
	// would stay behind. The full state, from any position, fixes that; a
	// viewer already at our position skips it by its ID.
	r.broadcast(CatchUp(r.hub.md, r.conv, store.ID{}, snap))
	return true
}

// rereads reports whether events of kind t are applied by reading the
// conversation again from the room's position: a branch (the notice does
// not carry the path it leads to), a note or new settings (rare, and small
// beside the re-read).
func rereads(t string) bool {
	return t == store.EventBranch || t == store.EventNote || t == store.EventSettings
}

// refresh re-reads every message changed since the room's position and
// broadcasts them as one frame; resync says it heals a lost notice (counted).
func (r *Room) refresh(resync bool) bool {
	if resync {
		r.hub.resyncs.Add(1)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	snap, err := r.hub.store.Snapshot(ctx, r.conv, r.state.last)
	if err != nil {
		r.resync.Store(true)
		r.retryLater(err)
		return false
	}
	if snap.Last == r.state.last {
		return true
	}
	from := r.state.last
	msgs := r.state.msgs[:min(snap.From, len(r.state.msgs))]
	for _, m := range snap.Messages {
		msgs = append(msgs, render.NewMessage(r.hub.md, r.conv, m))
	}
	r.state.msgs = msgs
	r.state.last = snap.Last
	r.state.title = snap.Title
	r.broadcast(CatchUp(r.hub.md, r.conv, from, snap))
	return true
}

// retryLater wakes the room again after a failed Redis read, so a room never
// stays stale after an outage even if no notice arrives.
func (r *Room) retryLater(err error) {
	if r.ctx.Err() != nil {
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		// Deleted (or expired): nothing to retry; the viewers' pages say so
		// and their streams end.
		r.broadcast(deletedFrame())
		return
	}
	r.hub.log.Warn("room could not read the conversation; retrying", "conversation", r.conv, "err", err)
	if !r.retryAt.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(time.Second, func() {
		r.retryAt.Store(false)
		r.poke()
	})
}

// apply changes the state by one event and records what changed. It reports
// false when the event does not fit the state, which calls for a resync.
func (s *convState) apply(r *Room, ev store.Event, ch *changes) bool {
	switch ev.Type {
	case store.EventMessage:
		if ev.Msg != len(s.msgs) {
			return false
		}
		s.msgs = append(s.msgs,
			render.NewMessage(r.hub.md, r.conv, store.Message{Index: ev.Msg, Role: "user", Status: store.StatusDone, Text: ev.Text, Rev: ev.ID, Version: 1, Versions: 1}),
			render.NewMessage(r.hub.md, r.conv, store.Message{Index: ev.Msg + 1, Role: "assistant", Status: store.StatusStreaming, Rev: ev.ID, Model: ev.Model, Version: 1, Versions: 1}))
		ch.replace(ev.Msg)
		ch.status = true
	case store.EventTitle:
		s.title = ev.Text
		ch.title = true
	case store.EventDelta:
		if ev.Msg < 0 || ev.Msg >= len(s.msgs) || !s.msgs[ev.Msg].Answer() {
			return false
		}
		first := s.msgs[ev.Msg].Append(ev.ID, ev.Text)
		if cur, ok := ch.blocks[ev.Msg]; !ok || first < cur {
			ch.blocks[ev.Msg] = first
		}
		ch.noteAppended(ev.Appended)
	case store.EventEnd:
		if ev.Msg < 0 || ev.Msg >= len(s.msgs) {
			return false
		}
		if first, ok := s.msgs[ev.Msg].End(ev.ID, ev.Status, ev.Error, ev.Cut); ok {
			if cur, ok := ch.blocks[ev.Msg]; !ok || first < cur {
				ch.blocks[ev.Msg] = first
			}
		}
		ch.foot[ev.Msg] = true
		ch.status = true
	default:
		return false
	}
	return true
}

// Watching returns how many people watch conv across processes, as last
// published, or 0 when nobody watches it here (the page then shows at least
// its own viewer, and the stream brings the count).
func (h *Hub) Watching(conv string) int {
	h.mu.Lock()
	r := h.rooms[conv]
	h.mu.Unlock()
	if r == nil {
		return 0
	}
	return int(r.watching.Load())
}
