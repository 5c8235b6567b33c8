// Package live fans a conversation's events out to the people watching it:
// the hub (hub.go, subscription.go), the rooms that render each
// conversation's frames once (room.go, frames.go), the viewers that write
// them (viewer.go, stream.go; detach.go for streams that outlive their
// request's goroutine) and the owners' conversation lists (lists.go).
//
// Each process holds ONE Redis subscription (live/pubsub), whatever the
// number of viewers and conversations; on Redis Cluster, one connection per
// master. Notices from it go to the local room of their conversation; a room
// renders each batch of events into one frame (messages as package render
// shows them on pages) and hands the same bytes to every viewer, compressed
// once for all of them (live/gzipwire). Pub/sub is only a doorbell: every
// notice carries its log ID and the ID before it, and a room that sees a
// hole, or whose subscription was (re)confirmed, re-reads the conversation
// from Redis. The same subscription carries each browser's conversation list
// to its tabs. Nothing here ever blocks on a viewer.
package live

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/live/pubsub"
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
	// ProbeInterval is how often the subscription is proven alive (0
	// disables), and on Redis Cluster how often its slot map is read.
	ProbeInterval time.Duration
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
	// Detached is the number of open streams written from a goroutine of
	// their own (DetachedStream: hijacked HTTP/1.1 connections), among
	// Viewers.
	Detached int64

	// SubscriptionConns is the number of Redis connections in pub/sub mode:
	// one, or on Redis Cluster one per master (live/pubsub).
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
	conn  pubsub.Conn // set by Run
	rooms map[string]*Room
	lists map[string]*listRoom // by owner
	ops   []subOp
	opsC  chan struct{}

	// lost is closed, and replaced, when the subscription breaks: every
	// live stream then ends (see Watch). Guarded by mu.
	lost chan struct{}

	probeMu   sync.Mutex
	probeWait map[string]chan struct{} // probe channel -> its prober, waiting
	viewers   atomic.Int64
	frames    atomic.Int64
	ffwds     atomic.Int64
	resyncs   atomic.Int64
	probeFail atomic.Int64
	written   atomic.Int64
	bytes     atomic.Int64
	dropped   atomic.Int64
	listReads atomic.Int64
	detached  atomic.Int64
}

// NewHub returns a hub; call Run before Watch. On a *redis.ClusterClient
// it subscribes with sharded pub/sub, one connection per master, as the
// store publishes there (store.Config.Sharded); on any other client, with
// one SUBSCRIBE connection.
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
		probeWait: map[string]chan struct{}{},
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
	conn := h.conn
	h.mu.Unlock()
	var subs, conns int
	if conn != nil {
		subs, conns = conn.Counts()
	}
	return Stats{
		Rooms: rooms, Viewers: h.viewers.Load(), Frames: h.frames.Load(),
		FastForwards: h.ffwds.Load(), Resyncs: h.resyncs.Load(),
		Subscriptions: int64(subs), ProbeFailures: h.probeFail.Load(), SubscriptionConns: int64(conns),
		FramesWritten: h.written.Load(), BytesWritten: h.bytes.Load(), Dropped: h.dropped.Load(),
		Lists: lists, ListReads: h.listReads.Load(), Detached: h.detached.Load(),
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
