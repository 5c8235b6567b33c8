package pubsub

// Sharded pub/sub on Redis Cluster.
//
// A sharded channel lives on the master that owns its hash slot, and a
// subscription connection hears only the channels of the slots its server
// owns. go-redis's ClusterClient.SSubscribe pins a PubSub to the node of its
// first channel (go-redis issue 3099): a later SSUBSCRIBE for another node's
// slot is refused with MOVED and that channel stays silent; and when a PubSub
// reconnects it re-subscribes all its channels in one SSUBSCRIBE, which Redis
// refuses with CROSSSLOT as soon as they span two slots.
//
// So cluster keeps its own map of slots to masters (CLUSTER SHARDS,
// topology.go) and one subscription connection per master (clusternode.go),
// made by the cluster client's own client of that master, so that it has
// every option the cluster client has; each channel is subscribed by its own
// SSUBSCRIBE. The map is read again
// periodically, when a node answers MOVED, when a node drops a channel
// (Redis unsubscribes a slot's channels when the slot leaves the node, as in
// a fail-over), and when a connection breaks; channels then move to the
// connection of their new master. A broken connection is never reused: it is
// replaced by a new one that subscribes channel by channel. Each connection is
// probed on its own, through a probe channel in a slot of its node. Every
// confirmation after a channel's first one means messages may have been
// missed: the hub's rooms re-read the log then, which covers every move.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// numSlots is the number of hash slots of every Redis Cluster.
	numSlots = 16384
	// shardConnectTimeout bounds opening one subscription connection, so
	// that a node that went away costs little before the map is read again.
	shardConnectTimeout = 2 * time.Second
	// topologyTimeout bounds one read of the slot map.
	topologyTimeout = 2 * time.Second
	// defaultTopologyEvery is how often the slot map is read when the hub has
	// no probe interval to follow.
	defaultTopologyEvery = 10 * time.Second
	minShardBackoff      = 100 * time.Millisecond
	maxShardBackoff      = time.Second
)

// cluster is Conn on Redis Cluster. One manager goroutine makes every
// change; each connection has a reader goroutine that hands messages to
// Receive and reports trouble to the manager.
type cluster struct {
	client *redis.ClusterClient
	probe  string
	log    *slog.Logger
	every  time.Duration // how often the slot map is read anyway
	// shards reads the slot map; nil means CLUSTER SHARDS through the
	// cluster client. Tests replace it to play a node whose view is out of
	// date.
	shards func(context.Context) ([]redis.ClusterShard, error)

	kick      chan struct{}
	connected chan connResult
	events    chan Event
	readers   sync.WaitGroup
	stop      context.CancelFunc
	done      chan struct{} // closed when the manager has closed everything

	mu    sync.Mutex
	ops   []op // subscription changes, in the order they were asked for
	topo  *topology
	nodes map[string]*shardNode
	where map[string]*shardNode // channel -> node it is subscribed on
	dirty bool                  // the slot map must be read again
	moved map[int]movedHint     // slot -> its master, from MOVED replies
	retry map[string]struct{}   // channels to subscribe again where they are
}

// op is a subscription change.
type op struct {
	subscribe bool
	channel   string
}

// newCluster returns a cluster Conn; start runs it.
func newCluster(c *redis.ClusterClient, cfg Config) *cluster {
	s := &cluster{
		client:    c,
		probe:     cfg.Probe,
		log:       cfg.Log,
		every:     cfg.Refresh,
		kick:      make(chan struct{}, 1),
		connected: make(chan connResult),
		events:    make(chan Event),
		done:      make(chan struct{}),
		nodes:     map[string]*shardNode{},
		where:     map[string]*shardNode{},
		moved:     map[int]movedHint{},
		retry:     map[string]struct{}{},
		dirty:     true,
	}
	if s.every <= 0 {
		s.every = defaultTopologyEvery
	}
	return s
}

func (s *cluster) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		defer close(s.done)
		s.run(ctx)
	}()
}

func (s *cluster) Subscribe(_ context.Context, channel string) error {
	s.enqueue(op{subscribe: true, channel: channel})
	return nil
}

func (s *cluster) Unsubscribe(_ context.Context, channel string) error {
	s.enqueue(op{subscribe: false, channel: channel})
	return nil
}

// enqueue hands a change to the manager, which makes it in order.
func (s *cluster) enqueue(o op) {
	s.mu.Lock()
	s.ops = append(s.ops, o)
	s.mu.Unlock()
	s.wake()
}

// Receive never reports a broken connection: the manager replaces it, and
// its channels are confirmed again on the new one.
func (s *cluster) Receive(ctx context.Context) (Event, error) {
	select {
	case ev := <-s.events:
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	case <-s.done:
		return Event{}, ErrClosed
	}
}

// emit hands ev to Receive; the reader waits for it (Receive's caller
// never blocks for long).
func (s *cluster) emit(ctx context.Context, ev Event) {
	select {
	case s.events <- ev:
	case <-ctx.Done():
	}
}

// probeConn is what a cluster Probe proves: one connection of one node.
type probeConn struct {
	n  *shardNode
	ps *redis.PubSub
}

func (s *cluster) Probes() []Probe {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Probe
	for _, n := range s.nodes {
		if n.ps != nil {
			out = append(out, Probe{Channel: n.probe, conn: probeConn{n, n.ps}})
		}
	}
	return out
}

func (s *cluster) Publish(ctx context.Context, channel, payload string) error {
	return s.client.SPublish(ctx, channel, payload).Err()
}

func (s *cluster) Renew(_ context.Context, p Probe) {
	if c, ok := p.conn.(probeConn); ok && s.current(c.n, c.ps) {
		s.broke(c.n, c.ps, errors.New("probe not received: the subscription is silent"))
	}
}

func (s *cluster) Counts() (channels, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.ps != nil {
			conns++
		}
	}
	return len(s.where) + len(s.nodes), conns
}

func (s *cluster) Close() error {
	s.stop()
	<-s.done
	return nil
}

// run is the manager: it applies the rooms' subscription changes in order,
// reads the slot map when needed and moves channels to their master.
func (s *cluster) run(ctx context.Context) {
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	var (
		retry   <-chan time.Time
		backoff = minShardBackoff
	)
	for {
		s.step(ctx)
		if ctx.Err() != nil {
			break
		}
		if s.unsettled() {
			if retry == nil {
				retry = time.After(backoff)
				backoff = min(2*backoff, maxShardBackoff)
			}
		} else {
			retry, backoff = nil, minShardBackoff
		}
		select {
		case <-ctx.Done():
		case <-s.kick:
		case r := <-s.connected:
			s.install(ctx, r)
		case <-tick.C:
			s.setDirty()
		case <-retry:
			retry = nil
		}
	}
	s.closeAll()
	s.readers.Wait()
}

func (s *cluster) setDirty() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

func (s *cluster) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// unsettled reports whether the manager must try again soon: the slot map
// could not be read, or a node has no working connection.
func (s *cluster) unsettled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty || len(s.retry) > 0 {
		return true
	}
	for _, n := range s.nodes {
		if n.broken || n.connecting {
			return true
		}
	}
	return false
}

// step brings the subscriptions in line with the rooms and the slot map.
func (s *cluster) step(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	dirty := s.dirty
	s.mu.Unlock()
	var fresh *topology
	if dirty {
		t, err := s.fetchTopology(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("read the redis cluster slot map; retrying", "err", err)
		}
		fresh = t
	}
	s.mu.Lock()
	prev := s.topo
	if fresh != nil {
		s.topo, s.dirty = fresh, false
	}
	hinted := s.applyHints(fresh != nil)
	changed := prev != nil && fresh != nil && !prev.sameOwners(fresh)
	var masters []string
	if changed {
		masters = fresh.serves()
	}
	s.mu.Unlock()
	if changed {
		s.log.Info("redis cluster slot map changed", "masters", masters)
	}
	if changed || hinted {
		s.reloadClient(ctx)
	}

	s.placeNodes()
	s.applyOps(ctx)
	s.relocate(ctx)
	s.connectBroken(ctx)
}

// applyHints lays the MOVED replies over the slot map: the node that refused
// a subscription knows better than a map read from a node that may not have
// caught up yet. A hint is dropped once a freshly read map agrees with it, or
// when it expires. It reports whether a new hint was applied. It must be
// called with s.mu held.
func (s *cluster) applyHints(fresh bool) bool {
	if s.topo == nil {
		return false
	}
	now := time.Now()
	added := false
	for slot, h := range s.moved {
		switch {
		case now.After(h.until), fresh && s.topo.ownerOf(slot) == h.addr:
			delete(s.moved, slot)
		default:
			if !h.applied {
				h.applied, added = true, true
				s.moved[slot] = h
			}
			s.topo.setOwner(slot, h.addr)
		}
	}
	return added
}

// reloadClient makes the cluster client read the slot map again. go-redis
// does so by itself on MOVED, but not when a master dies: until its periodic
// reload (ClusterStateReloadInterval, 60 s by default) it keeps sending that
// slot's commands to the dead address. The hub notices a fail-over first, so
// it tells the client.
func (s *cluster) reloadClient(ctx context.Context) {
	s.client.ReloadState(ctx)
}

// placeNodes opens a connection to every master that serves slots and
// closes those to nodes that serve none any more.
func (s *cluster) placeNodes() {
	s.mu.Lock()
	if s.topo == nil {
		s.mu.Unlock()
		return
	}
	masters := s.topo.serves()
	for _, addr := range masters {
		if s.nodes[addr] == nil {
			s.nodes[addr] = &shardNode{
				addr: addr, channels: map[string]struct{}{},
				broken: true, // no connection yet: connectBroken opens one
			}
		}
	}
	var gone []*shardNode
	for addr, n := range s.nodes {
		if !slices.Contains(masters, addr) {
			delete(s.nodes, addr)
			gone = append(gone, n)
		}
	}
	var closing []*redis.PubSub
	for _, n := range gone {
		if n.ps != nil {
			closing = append(closing, n.ps)
			n.ps = nil
		}
		// Its channels stay mapped to it until relocate moves them.
	}
	s.mu.Unlock()
	for _, n := range gone {
		s.log.Info("redis node serves no slots any more; dropping its subscription", "node", n.addr)
	}
	for _, ps := range closing {
		_ = ps.Close()
	}
}

// applyOps applies the rooms' subscribe and unsubscribe requests in order.
func (s *cluster) applyOps(ctx context.Context) {
	for {
		s.mu.Lock()
		if len(s.ops) == 0 {
			s.mu.Unlock()
			return
		}
		op := s.ops[0]
		s.ops = s.ops[1:]
		if !op.subscribe {
			n := s.where[op.channel]
			delete(s.where, op.channel)
			delete(s.retry, op.channel)
			var ps *redis.PubSub
			if n != nil {
				delete(n.channels, op.channel)
				ps = n.ps
			}
			s.mu.Unlock()
			if ps != nil {
				s.write(ctx, n, ps, false, op.channel)
			}
			continue
		}
		n := s.ownerNode(op.channel)
		if old := s.where[op.channel]; old != nil && old != n {
			delete(old.channels, op.channel)
		}
		s.where[op.channel] = n
		var ps *redis.PubSub
		if n != nil {
			n.channels[op.channel] = struct{}{}
			ps = n.ps
		}
		// With no node (no slot map yet) or no connection, the channel is
		// subscribed when there is one.
		s.mu.Unlock()
		if ps != nil {
			s.write(ctx, n, ps, true, op.channel)
		}
	}
}

// ownerNode returns the node serving channel's slot, nil when unknown. It
// must be called with s.mu held.
func (s *cluster) ownerNode(channel string) *shardNode {
	if s.topo == nil {
		return nil
	}
	return s.nodes[s.topo.ownerOf(keySlot(channel))]
}

// relocate moves every channel whose slot is now served by another node, and
// subscribes again those a node dropped or refused.
func (s *cluster) relocate(ctx context.Context) {
	type move struct {
		channel  string
		from, to *shardNode
		fromPS   *redis.PubSub
		toPS     *redis.PubSub
	}
	var moves []move
	s.mu.Lock()
	for ch, cur := range s.where {
		to := s.ownerNode(ch)
		_, again := s.retry[ch]
		if to == cur && !again {
			continue
		}
		if to == nil {
			continue // nobody serves it now; kept for when somebody does
		}
		delete(s.retry, ch)
		m := move{channel: ch, from: cur, to: to, toPS: to.ps}
		if cur != nil && cur != to {
			delete(cur.channels, ch)
			if s.nodes[cur.addr] == cur {
				m.fromPS = cur.ps
			}
		}
		to.channels[ch] = struct{}{}
		s.where[ch] = to
		moves = append(moves, m)
	}
	// A node's probe channel must stay in one of its slots.
	var probes []*shardNode
	for _, n := range s.nodes {
		if n.ps != nil && s.topo != nil && s.topo.ownerOf(keySlot(n.probe)) != n.addr {
			probes = append(probes, n)
		}
	}
	s.mu.Unlock()

	for _, m := range moves {
		if m.fromPS != nil {
			s.write(ctx, m.from, m.fromPS, false, m.channel)
		}
		if m.toPS != nil {
			s.write(ctx, m.to, m.toPS, true, m.channel)
		}
	}
	if len(moves) > 0 {
		s.log.Info("moved sharded subscriptions to their new masters", "channels", len(moves))
	}
	for _, n := range probes {
		s.mu.Lock()
		ps, old := n.ps, n.probe
		probe := s.probeFor(n.addr)
		n.probe = probe
		s.mu.Unlock()
		if ps == nil || probe == "" {
			continue
		}
		s.write(ctx, n, ps, false, old)
		s.write(ctx, n, ps, true, probe)
	}
}

// closeAll closes every connection when the hub stops.
func (s *cluster) closeAll() {
	s.mu.Lock()
	var pss []*redis.PubSub
	for _, n := range s.nodes {
		if n.ps != nil {
			pss = append(pss, n.ps)
			n.ps = nil
		}
	}
	clear(s.nodes)
	s.mu.Unlock()
	for _, ps := range pss {
		_ = ps.Close()
	}
}
