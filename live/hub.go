// Package live fans a conversation's events out to the people watching it.
//
// Each process holds ONE Redis subscription, whatever the number of viewers
// and conversations (on Redis Cluster, one per master: see sharded.go).
// Notices from it go to the local room of their
// conversation; a room renders each batch of events into one frame and hands
// the same bytes to every viewer. Pub/sub is only a doorbell: every notice
// carries its log ID and the ID before it, and a room that sees a hole, or
// whose subscription was (re)confirmed, re-reads the conversation from Redis.
// The same subscription carries each browser's conversation list to its tabs
// (lists.go). Nothing here ever blocks on a viewer.
package live

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// Errors Watch returns before a stream starts, or when it ends.
var (
	ErrTooManyViewers = errors.New("this server is at its viewer limit")
	ErrUnavailable    = errors.New("live updates are unavailable right now")
	ErrShutdown       = errors.New("server shutting down")
)

// Config holds the hub's limits and timings.
type Config struct {
	ViewerQueue      int           // frames queued per viewer before it is fast-forwarded
	MaxViewers       int           // live streams per process
	Heartbeat        time.Duration // SSE comment interval on a quiet stream
	SubscribeTimeout time.Duration // how long a join waits for SUBSCRIBE to be confirmed
	ProbeInterval    time.Duration // how often the subscription is proven alive; 0 disables
	Sharded          bool          // Redis Cluster: SSUBSCRIBE, one connection per master (sharded.go)
	// WriteTimeout bounds each batch of writes to a viewer's connection (when
	// the stream supports deadlines): a viewer that takes none for this long
	// is dropped, so a stalled client cannot hold its stream for ever.
	WriteTimeout time.Duration
	// RoomWritesPerSecond spaces a room's frames so that writing them to all
	// its viewers takes about this many writes a second (see frameGap); 0
	// sends a frame for every batch of events however many watch.
	RoomWritesPerSecond int
	Observer            Observer // told each frame's token-to-frame latency; nil for nobody
}

// Stats are counters for tests and metrics.
type Stats struct {
	Rooms         int64
	Viewers       int64
	Frames        int64 // frames rendered by rooms
	FastForwards  int64 // viewers that fell behind and were brought to current state
	Resyncs       int64 // rooms that re-read Redis after a hole or a resubscription
	Subscriptions int64 // channels subscribed now (one per room and per list room, plus the probe)
	ProbeFailures int64
	FramesWritten int64 // frames written to viewers (heartbeats not counted)
	BytesWritten  int64 // bytes written to viewers, heartbeats included
	Dropped       int64 // viewers dropped because a write timed out
	Lists         int64 // owners whose conversation list this process follows (lists.go)
	ListReads     int64 // reads of owners' lists, each shared by the owner's viewers here

	// SubscriptionConns is the number of Redis connections in pub/sub mode:
	// one, or on Redis Cluster one per master.
	SubscriptionConns int64
}

// Hub owns the process's Redis subscription and its rooms.
type Hub struct {
	rdb   redis.UniversalClient
	store *store.Store
	md    *markdown.Renderer
	log   *slog.Logger
	cfg   Config
	id    string // this process, for presence counts
	probe string // this process's probe channel

	started chan struct{}
	ctx     context.Context // Run's context; rooms live inside it

	mu    sync.Mutex
	ps    *redis.PubSub
	rooms map[string]*Room
	lists map[string]*listRoom // by owner
	ops   []subOp
	opsC  chan struct{}

	// lost is closed, and replaced, when the subscription breaks: every
	// live stream then ends (see Watch). Guarded by mu.
	lost chan struct{}

	probeSeen chan struct{}
	viewers   atomic.Int64
	frames    atomic.Int64
	ffwds     atomic.Int64
	resyncs   atomic.Int64
	subs      atomic.Int64
	probeFail atomic.Int64
	subConns  atomic.Int64
	written   atomic.Int64
	bytes     atomic.Int64
	dropped   atomic.Int64
	listReads atomic.Int64
}

type subOp struct {
	subscribe bool
	channel   string
}

// NewHub returns a hub; call Run before Watch.
func NewHub(rdb redis.UniversalClient, st *store.Store, md *markdown.Renderer, log *slog.Logger, cfg Config) *Hub {
	id := store.NewID()
	return &Hub{
		rdb: rdb, store: st, md: md, log: log, cfg: cfg,
		id:        id,
		probe:     "parley:probe:" + id,
		started:   make(chan struct{}),
		rooms:     map[string]*Room{},
		lists:     map[string]*listRoom{},
		opsC:      make(chan struct{}, 1),
		probeSeen: make(chan struct{}, 1),
		lost:      make(chan struct{}),
	}
}

// subscriptionLost ends every live stream. While the subscription is down
// the streams would look live but receive nothing; cut, they make their pages
// show "reconnecting" and retry (failing fast while Redis is away), then
// resume from their Last-Event-ID and lose nothing once it is back.
func (h *Hub) subscriptionLost() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.lost)
	h.lost = make(chan struct{})
}

// lostSignal is closed when the subscription next breaks.
func (h *Hub) lostSignal() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	rooms, lists := int64(len(h.rooms)), int64(len(h.lists))
	h.mu.Unlock()
	return Stats{
		Rooms: rooms, Viewers: h.viewers.Load(), Frames: h.frames.Load(),
		FastForwards: h.ffwds.Load(), Resyncs: h.resyncs.Load(),
		Subscriptions: h.subs.Load(), ProbeFailures: h.probeFail.Load(), SubscriptionConns: h.subConns.Load(),
		FramesWritten: h.written.Load(), BytesWritten: h.bytes.Load(), Dropped: h.dropped.Load(),
		Lists: lists, ListReads: h.listReads.Load(),
	}
}

// Run receives notices until ctx is done. Rooms and streams end with it.
func (h *Hub) Run(ctx context.Context) error {
	if h.cfg.Sharded {
		return h.runSharded(ctx) // sharded.go
	}
	h.mu.Lock()
	h.ctx = ctx
	h.ps = h.newPubSub(ctx)
	h.mu.Unlock()
	close(h.started)

	var wg sync.WaitGroup
	wg.Go(func() { h.runOps(ctx) })
	if h.cfg.ProbeInterval > 0 {
		wg.Go(func() { h.runProbe(ctx) })
	}
	// go-redis's Receive does not return when its context is cancelled while
	// it waits for a message (it only honours deadlines), so without this a
	// quiet subscription kept Run, and the process's shutdown, waiting for
	// ever. Closing the subscription makes the blocked Receive return.
	stopClose := context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		_ = h.ps.Close()
	})
	defer stopClose()
	h.receive(ctx)
	wg.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ps.Close(); err != nil {
		h.log.Debug("close subscription", "err", err)
	}
	return nil
}

func (h *Hub) newPubSub(ctx context.Context) *redis.PubSub {
	var ps *redis.PubSub
	if h.cfg.Sharded {
		ps = h.rdb.SSubscribe(ctx, h.probe)
	} else {
		ps = h.rdb.Subscribe(ctx, h.probe)
	}
	h.subs.Store(1)
	h.subConns.Store(1)
	return ps
}

// receive is the one reader of the subscription. It never blocks on a room:
// a full room inbox makes the room re-read Redis instead.
func (h *Hub) receive(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		h.mu.Lock()
		ps := h.ps
		h.mu.Unlock()
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.mu.Lock()
			replaced := h.ps != ps
			h.mu.Unlock()
			if replaced {
				// A rebuild closed it: the new one resubscribes every room,
				// and each re-reads Redis when confirmed. Streams go on.
				continue
			}
			// go-redis reconnects and resubscribes on the next Receive; every
			// room will see its channel confirmed again and re-read the log.
			h.log.Warn("redis subscription interrupted; live streams end and reconnect", "err", err, "retry_in", backoff)
			h.subscriptionLost()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				h.confirmed(m.Channel)
			}
		case *redis.Message:
			if m.Channel == h.probe {
				select {
				case h.probeSeen <- struct{}{}:
				default:
				}
				continue
			}
			h.notice(m.Channel, m.Payload)
		}
	}
}

func (h *Hub) roomOf(channel string) *Room {
	conv, ok := store.ConversationOf(channel)
	if !ok {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[conv]
}

func (h *Hub) notice(channel, payload string) {
	if r := h.roomOf(channel); r != nil {
		r.deliver(payload)
		return
	}
	if l := h.listOf(channel); l != nil {
		l.poke() // the payload says nothing more: the list is read
	}
}

// confirmed handles a SUBSCRIBE confirmation. The first one lets waiting
// joins read the log; any later one follows a reconnect, during which notices
// were lost, so the room re-reads the log.
func (h *Hub) confirmed(channel string) {
	if channel == h.probe {
		return
	}
	if l := h.listOf(channel); l != nil {
		l.listConfirmed()
		return
	}
	r := h.roomOf(channel)
	if r == nil {
		return
	}
	if r.confirmOnce.CompareAndSwap(false, true) {
		close(r.confirmed)
		return
	}
	r.requestResync()
}

// runOps applies subscription changes in the order rooms were opened and
// closed, so an UNSUBSCRIBE can never overtake the SUBSCRIBE of a room that
// reopened the same conversation.
func (h *Hub) runOps(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.opsC:
		}
		for {
			h.mu.Lock()
			if len(h.ops) == 0 {
				h.mu.Unlock()
				break
			}
			op := h.ops[0]
			h.ops = h.ops[1:]
			ps := h.ps
			h.mu.Unlock()
			var err error
			switch {
			case op.subscribe && h.cfg.Sharded:
				err = ps.SSubscribe(ctx, op.channel)
			case op.subscribe:
				err = ps.Subscribe(ctx, op.channel)
			case h.cfg.Sharded:
				err = ps.SUnsubscribe(ctx, op.channel)
			default:
				err = ps.Unsubscribe(ctx, op.channel)
			}
			if op.subscribe {
				h.subs.Add(1)
			} else {
				h.subs.Add(-1)
			}
			// go-redis remembers the channel set and replays it on reconnect,
			// so a failed write is healed by the next reconnection.
			if err != nil && ctx.Err() == nil {
				h.log.Warn("redis subscription change failed", "channel", op.channel, "subscribe", op.subscribe, "err", err)
			}
		}
	}
}

// enqueue must be called with h.mu held.
func (h *Hub) enqueue(op subOp) {
	h.ops = append(h.ops, op)
	select {
	case h.opsC <- struct{}{}:
	default:
	}
}

// runProbe publishes to this process's own probe channel now and then. A
// subscription can look healthy (after a failover behind a proxy, say) and
// receive nothing; if our own message does not come back, the subscription is
// rebuilt and every room re-reads the log.
//
// A Redis that is paused or stalled (CLIENT PAUSE, a long script, a fork)
// keeps the subscription's connection up and answers nothing: Receive
// neither errs nor returns, and every stream would stay open and silent for
// as long as it lasts. The probe's PUBLISH does not answer either: when it
// fails (within probeTimeout) the streams are ended, as when the connection
// breaks, so pages show "reconnecting" and retry (failing fast while Redis
// is away). A stall is so seen within ProbeInterval plus probeTimeout.
func (h *Hub) runProbe(ctx context.Context) {
	t := time.NewTicker(h.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select { // forget a late answer to an earlier probe
		case <-h.probeSeen:
		default:
		}
		pub := h.rdb.Publish
		if h.cfg.Sharded {
			pub = h.rdb.SPublish
		}
		pctx, cancel := context.WithTimeout(ctx, h.probeTimeout())
		err := pub(pctx, h.probe, "ping").Err()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Unreachable (receive sees that too) or stalled (it does not).
			h.log.Warn("redis does not answer the subscription probe; live streams end and reconnect", "err", err)
			h.subscriptionLost()
			continue
		}
		wait := time.NewTimer(h.probeTimeout())
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-h.probeSeen:
			wait.Stop()
		case <-wait.C:
			h.probeFail.Add(1)
			h.log.Warn("redis subscription is silent; rebuilding it")
			h.rebuild(ctx)
		}
	}
}

// probeTimeout bounds the probe's PUBLISH, and the wait for it to come back.
func (h *Hub) probeTimeout() time.Duration {
	return min(h.cfg.ProbeInterval, 5*time.Second)
}

// rebuild replaces the subscription with a new connection that subscribes to
// every open room's and list room's channel; their confirmations make each
// room resync and each list room read its list.
func (h *Hub) rebuild(ctx context.Context) {
	// Dial outside the lock: every notice, join and page render takes it.
	ps := h.newPubSub(ctx)
	h.mu.Lock()
	old := h.ps
	h.ps = ps
	h.ops = h.ops[:0]
	for conv := range h.rooms {
		h.enqueue(subOp{subscribe: true, channel: store.Channel(conv)})
	}
	for owner := range h.lists {
		h.enqueue(subOp{subscribe: true, channel: store.OwnerChannel(owner)})
	}
	h.mu.Unlock()
	if ctx.Err() != nil {
		_ = ps.Close() // shut down meanwhile: the closer saw the old one
	}
	if err := old.Close(); err != nil {
		h.log.Debug("close old subscription", "err", err)
	}
}

// join opens (or shares) the room of conv and waits until its subscription
// is confirmed: only then is it safe to read the log, since every event
// written afterwards will also be noticed.
func (h *Hub) join(ctx context.Context, conv string) (*Room, error) {
	select {
	case <-h.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		return nil, ErrShutdown
	}
	r := h.rooms[conv]
	if r == nil {
		r = newRoom(h, conv)
		h.rooms[conv] = r
		h.enqueue(subOp{subscribe: true, channel: store.Channel(conv)})
		go r.run()
	}
	r.refs++
	h.mu.Unlock()

	t := time.NewTimer(h.cfg.SubscribeTimeout)
	defer t.Stop()
	select {
	case <-r.confirmed:
		return r, nil
	case <-ctx.Done():
		h.leave(r)
		return nil, ctx.Err()
	case <-h.ctx.Done():
		h.leave(r)
		return nil, ErrShutdown
	case <-t.C:
		h.leave(r)
		h.log.Warn("redis subscribe not confirmed in time", "conversation", conv, "timeout", h.cfg.SubscribeTimeout)
		return nil, ErrUnavailable
	}
}

// leave drops one reference to r; the last one closes the room and releases
// its subscription.
func (h *Hub) leave(r *Room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.refs--
	if r.refs > 0 {
		return
	}
	if h.rooms[r.conv] == r {
		delete(h.rooms, r.conv)
		h.enqueue(subOp{subscribe: false, channel: store.Channel(r.conv)})
	}
	r.cancel()
}

// OnStop calls stop when a stop of generation gen of conv is requested from
// any process. The generation must also check the stored flag (Store.Renew):
// a notice can be lost, or come before this subscription exists.
func (h *Hub) OnStop(ctx context.Context, conv, gen string, stop func()) (release func(), err error) {
	r, err := h.join(ctx, conv)
	if err != nil {
		return nil, err
	}
	id := r.addStopper(gen, stop)
	return func() {
		r.removeStopper(id)
		h.leave(r)
	}, nil
}
