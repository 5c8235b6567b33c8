package live

// Fan-out on Redis Cluster, through sharded pub/sub.
//
// A sharded channel lives on the master that owns its hash slot, and a
// subscription connection hears only the channels of the slots its server
// owns. go-redis's ClusterClient.SSubscribe pins a PubSub to the node of its
// first channel (go-redis issue 3099): a later SSUBSCRIBE for another node's
// slot is refused with MOVED and that channel stays silent; and when a PubSub
// reconnects it re-subscribes all its channels in one SSUBSCRIBE, which Redis
// refuses with CROSSSLOT as soon as they span two slots.
//
// So the hub keeps its own map of slots to masters (CLUSTER SLOTS) and one
// subscription connection per master, to that master's address, with each
// channel subscribed by its own SSUBSCRIBE. The map is read again
// periodically, when a node answers MOVED, when a node drops a channel
// (Redis unsubscribes a slot's channels when the slot leaves the node, as in
// a fail-over), and when a connection breaks; channels then move to the
// connection of their new master. A broken connection is never reused: it is
// replaced by a new one that subscribes channel by channel. Each connection is
// probed on its own, through a probe channel in a slot of its node. Every
// confirmation a room receives after its first one means it may have missed
// notices, so the room re-reads the log: that covers every move.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
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

// topology says which master serves each slot.
type topology struct {
	addrs []string        // masters serving at least one slot
	owner [numSlots]int16 // index into addrs; -1 when no master serves it
}

func (t *topology) ownerOf(slot int) string {
	if i := t.owner[slot]; i >= 0 {
		return t.addrs[i]
	}
	return ""
}

// setOwner records that addr serves slot (a MOVED reply said so).
func (t *topology) setOwner(slot int, addr string) {
	i := slices.Index(t.addrs, addr)
	if i < 0 {
		t.addrs = append(t.addrs, addr)
		i = len(t.addrs) - 1
	}
	t.owner[slot] = int16(i)
}

// sameOwners reports whether o gives every slot the same master as t.
func (t *topology) sameOwners(o *topology) bool {
	for slot := range numSlots {
		if t.ownerOf(slot) != o.ownerOf(slot) {
			return false
		}
	}
	return true
}

// serves returns the masters that own at least one slot.
func (t *topology) serves() []string {
	used := make([]bool, len(t.addrs))
	for _, i := range t.owner {
		if i >= 0 {
			used[i] = true
		}
	}
	var out []string
	for i, a := range t.addrs {
		if used[i] {
			out = append(out, a)
		}
	}
	return out
}

// shardNode is the subscription connection to one master.
type shardNode struct {
	addr      string
	client    *redis.Client // owned: its only use is this node's PubSub
	probeSeen chan struct{}

	// Guarded by shards.mu.
	ps       *redis.PubSub // nil while connecting, or broken
	probe    string        // probe channel, in a slot of this node
	channels map[string]struct{}

	// Guarded by shards.mu too; changed by the manager, and marked broken
	// by readers and probes.
	connecting bool
	broken     bool
	retryAt    time.Time
	backoff    time.Duration
}

// connResult is the outcome of opening a node's connection.
type connResult struct {
	n     *shardNode
	ps    *redis.PubSub
	probe string
	err   error
}

// shards manages the hub's subscriptions on a cluster. One manager goroutine
// makes every change; each connection has a reader goroutine that hands
// notices to rooms and reports trouble to the manager.
type shards struct {
	h        *Hub
	cluster  *redis.ClusterClient
	nodeOpts func(addr string) *redis.Options
	every    time.Duration // how often the slot map is read anyway
	// slots reads the slot map; nil means CLUSTER SLOTS through the cluster
	// client. Tests replace it to play a node whose view is out of date.
	slots func(context.Context) ([]redis.ClusterSlot, error)

	kick      chan struct{}
	connected chan connResult
	readers   sync.WaitGroup

	mu    sync.Mutex
	topo  *topology
	nodes map[string]*shardNode
	where map[string]*shardNode // channel -> node it is subscribed on
	dirty bool                  // the slot map must be read again
	moved map[int]movedHint     // slot -> its master, from MOVED replies
	retry map[string]struct{}   // channels to subscribe again where they are
}

func newShards(h *Hub) (*shards, error) {
	s := &shards{
		h:         h,
		kick:      make(chan struct{}, 1),
		connected: make(chan connResult),
		nodes:     map[string]*shardNode{},
		where:     map[string]*shardNode{},
		moved:     map[int]movedHint{},
		retry:     map[string]struct{}{},
		dirty:     true,
		every:     h.cfg.ProbeInterval,
	}
	if s.every <= 0 {
		s.every = defaultTopologyEvery
	}
	c, ok := h.rdb.(*redis.ClusterClient)
	if !ok {
		return nil, fmt.Errorf("sharded pub/sub needs a Redis Cluster client, not %T", h.rdb)
	}
	s.cluster = c
	o := c.Options()
	s.nodeOpts = func(addr string) *redis.Options {
		return &redis.Options{
			Addr: addr, ClientName: o.ClientName, Dialer: o.Dialer, OnConnect: o.OnConnect,
			Protocol: o.Protocol, Username: o.Username, Password: o.Password,
			CredentialsProvider: o.CredentialsProvider, CredentialsProviderContext: o.CredentialsProviderContext,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			TLSConfig: o.TLSConfig, DisableIdentity: o.DisableIdentity, IdentitySuffix: o.IdentitySuffix,
			UnstableResp3: o.UnstableResp3, PoolSize: 1,
		}
	}
	return s, nil
}

// runSharded is Run on Redis Cluster.
func (h *Hub) runSharded(ctx context.Context) error {
	s, err := newShards(h)
	return h.runShards(ctx, s, err)
}

func (h *Hub) runShards(ctx context.Context, s *shards, err error) error {
	h.mu.Lock()
	h.ctx = ctx
	if err != nil {
		// Joins must not wait for a hub that will never run.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		h.ctx = cctx
	}
	h.mu.Unlock()
	close(h.started)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	if h.cfg.ProbeInterval > 0 {
		wg.Go(func() { s.runProbe(ctx) })
	}
	s.run(ctx)
	wg.Wait()
	return nil
}

// run is the manager: it applies the rooms' subscription changes in order,
// reads the slot map when needed and moves channels to their master.
func (s *shards) run(ctx context.Context) {
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
		case <-s.h.opsC:
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

func (s *shards) setDirty() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

func (s *shards) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// unsettled reports whether the manager must try again soon: the slot map
// could not be read, or a node has no working connection.
func (s *shards) unsettled() bool {
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
func (s *shards) step(ctx context.Context) {
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
			s.h.log.Warn("read the redis cluster slot map; retrying", "err", err)
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
		s.h.log.Info("redis cluster slot map changed", "masters", masters)
	}
	if changed || hinted {
		s.reloadClient(ctx)
	}

	s.placeNodes()
	s.applyOps(ctx)
	s.relocate(ctx)
	s.connectBroken(ctx)

	s.mu.Lock()
	s.h.subs.Store(int64(len(s.where) + len(s.nodes)))
	conns := 0
	for _, n := range s.nodes {
		if n.ps != nil {
			conns++
		}
	}
	s.h.subConns.Store(int64(conns))
	s.mu.Unlock()
}

// movedHint is what a MOVED reply said: addr serves the slot now.
type movedHint struct {
	addr    string
	until   time.Time // then forgotten, in case addr itself went away
	applied bool
}

// hintTTL bounds how long a MOVED reply overrides the slot map.
const hintTTL = 10 * time.Second

// applyHints lays the MOVED replies over the slot map: the node that refused
// a subscription knows better than a map read from a node that may not have
// caught up yet. A hint is dropped once a freshly read map agrees with it, or
// when it expires. It reports whether a new hint was applied. It must be
// called with s.mu held.
func (s *shards) applyHints(fresh bool) bool {
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
func (s *shards) reloadClient(ctx context.Context) {
	s.cluster.ReloadState(ctx)
}

// fetchTopology reads which master serves each slot.
func (s *shards) fetchTopology(ctx context.Context) (*topology, error) {
	t := &topology{}
	for i := range t.owner {
		t.owner[i] = -1
	}
	ctx, cancel := context.WithTimeout(ctx, topologyTimeout)
	defer cancel()
	read := s.slots
	if read == nil {
		read = func(ctx context.Context) ([]redis.ClusterSlot, error) { return s.cluster.ClusterSlots(ctx).Result() }
	}
	slots, err := read(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster slots: %w", err)
	}
	for _, r := range slots {
		if len(r.Nodes) == 0 || r.Start < 0 || r.End >= numSlots || r.Start > r.End {
			continue
		}
		addr := r.Nodes[0].Addr // the master comes first
		for slot := r.Start; slot <= r.End; slot++ {
			t.setOwner(slot, addr)
		}
	}
	if len(t.addrs) == 0 {
		return nil, errors.New("cluster slots: no master serves any slot")
	}
	return t, nil
}

// placeNodes opens a connection to every master that serves slots and
// closes those to nodes that serve none any more.
func (s *shards) placeNodes() {
	s.mu.Lock()
	if s.topo == nil {
		s.mu.Unlock()
		return
	}
	masters := s.topo.serves()
	for _, addr := range masters {
		if s.nodes[addr] == nil {
			s.nodes[addr] = &shardNode{
				addr: addr, client: redis.NewClient(s.nodeOpts(addr)),
				probeSeen: make(chan struct{}, 1), channels: map[string]struct{}{},
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
		s.h.log.Info("redis node serves no slots any more; dropping its subscription", "node", n.addr)
	}
	for _, ps := range closing {
		_ = ps.Close()
	}
	for _, n := range gone {
		_ = n.client.Close()
	}
}

// applyOps applies the rooms' subscribe and unsubscribe requests in order.
func (s *shards) applyOps(ctx context.Context) {
	for {
		s.h.mu.Lock()
		if len(s.h.ops) == 0 {
			s.h.mu.Unlock()
			return
		}
		op := s.h.ops[0]
		s.h.ops = s.h.ops[1:]
		s.h.mu.Unlock()

		s.mu.Lock()
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
func (s *shards) ownerNode(channel string) *shardNode {
	if s.topo == nil {
		return nil
	}
	return s.nodes[s.topo.ownerOf(keySlot(channel))]
}

// relocate moves every channel whose slot is now served by another node, and
// subscribes again those a node dropped or refused.
func (s *shards) relocate(ctx context.Context) {
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
		s.h.log.Info("moved sharded subscriptions to their new masters", "channels", len(moves))
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

// write sends one SSUBSCRIBE or SUNSUBSCRIBE on a node's connection. A
// failed write breaks the connection: a new one subscribes everything again.
func (s *shards) write(ctx context.Context, n *shardNode, ps *redis.PubSub, subscribe bool, channel string) {
	var err error
	if subscribe {
		err = ps.SSubscribe(ctx, channel)
	} else {
		err = ps.SUnsubscribe(ctx, channel)
	}
	if err != nil && ctx.Err() == nil {
		s.h.log.Warn("redis subscription change failed", "node", n.addr, "channel", channel, "subscribe", subscribe, "err", err)
		s.broke(n, ps, err)
	}
}

// connectBroken starts a new connection for each node without a working one
// whose retry time has come.
func (s *shards) connectBroken(ctx context.Context) {
	now := time.Now()
	s.mu.Lock()
	var start []*shardNode
	for _, n := range s.nodes {
		if n.broken && !n.connecting && !now.Before(n.retryAt) {
			probe := s.probeFor(n.addr)
			if probe == "" {
				continue
			}
			n.connecting = true
			n.probe = probe
			start = append(start, n)
		}
	}
	s.mu.Unlock()
	for _, n := range start {
		s.readers.Go(func() { s.connect(ctx, n) })
	}
}

// connect opens n's connection by subscribing to its probe channel, off the
// manager goroutine, so a node that does not answer holds up nobody else.
func (s *shards) connect(ctx context.Context, n *shardNode) {
	s.mu.Lock()
	probe := n.probe
	s.mu.Unlock()
	ps := n.client.SSubscribe(ctx)
	cctx, cancel := context.WithTimeout(ctx, shardConnectTimeout)
	err := ps.SSubscribe(cctx, probe)
	cancel()
	if err != nil {
		_ = ps.Close()
		ps = nil
	}
	select {
	case s.connected <- connResult{n: n, ps: ps, probe: probe, err: err}:
	case <-ctx.Done():
		if ps != nil {
			_ = ps.Close()
		}
	}
}

// install puts a new connection to use: it subscribes every channel the node
// serves, one SSUBSCRIBE each, and starts its reader.
func (s *shards) install(ctx context.Context, r connResult) {
	n := r.n
	s.mu.Lock()
	n.connecting = false
	current := s.nodes[n.addr] == n
	if r.err != nil || !current {
		if current {
			n.backoff = min(max(2*n.backoff, minShardBackoff), maxShardBackoff)
			n.retryAt = time.Now().Add(n.backoff)
			s.dirty = true // it may have failed over: read the slot map again
		}
		s.mu.Unlock()
		if r.ps != nil {
			_ = r.ps.Close()
		}
		if r.err != nil && current && ctx.Err() == nil {
			s.h.log.Warn("redis subscription connection failed; retrying", "node", n.addr, "retry_in", n.backoff, "err", r.err)
		}
		return
	}
	n.broken, n.backoff = false, 0
	n.ps, n.probe = r.ps, r.probe
	channels := slices.Collect(maps.Keys(n.channels))
	s.mu.Unlock()

	s.readers.Go(func() { s.receive(ctx, n, r.ps) })
	for _, ch := range channels {
		s.write(ctx, n, r.ps, true, ch)
	}
	s.h.log.Debug("redis subscription connection open", "node", n.addr, "channels", len(channels))
}

// broke marks n's connection ps as broken, unless it was replaced already.
func (s *shards) broke(n *shardNode, ps *redis.PubSub, err error) {
	s.mu.Lock()
	if n.ps != ps {
		s.mu.Unlock()
		return
	}
	n.ps = nil
	n.broken = true
	s.dirty = true
	s.mu.Unlock()
	_ = ps.Close()
	s.h.log.Warn("redis subscription interrupted; reconnecting", "node", n.addr, "err", err)
	s.wake()
}

// receive is the reader of one connection. It never blocks on a room.
func (s *shards) receive(ctx context.Context, n *shardNode, ps *redis.PubSub) {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || !s.current(n, ps) {
				return
			}
			if slot, addr, ok := redirect(err); ok {
				// The node refused a subscription: the slot moved (MOVED),
				// or is moving (ASK, then addr is ""); the connection is fine.
				s.mu.Lock()
				if addr != "" {
					s.moved[slot] = movedHint{addr: addr, until: time.Now().Add(hintTTL)}
				}
				s.dirty = true
				for ch, at := range s.where {
					if at == n && keySlot(ch) == slot {
						s.retry[ch] = struct{}{}
					}
				}
				s.mu.Unlock()
				s.wake()
				continue
			}
			// Anything else: go-redis may already have reconnected and sent
			// every channel in one SSUBSCRIBE, which fails across slots, so
			// this connection is not trusted again.
			s.broke(n, ps, err)
			return
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if strings.HasPrefix(m.Channel, s.h.probe) {
				continue
			}
			switch m.Kind {
			case "ssubscribe":
				s.h.confirmed(m.Channel)
			case "sunsubscribe":
				// Unasked for when the channel is still wanted here: its slot
				// left this node (a fail-over or a resharding).
				s.mu.Lock()
				_, wanted := n.channels[m.Channel]
				if wanted && n.ps == ps {
					s.retry[m.Channel] = struct{}{}
					s.dirty = true
				}
				s.mu.Unlock()
				if wanted {
					s.wake()
				}
			}
		case *redis.Message:
			if strings.HasPrefix(m.Channel, s.h.probe) {
				select {
				case n.probeSeen <- struct{}{}:
				default:
				}
				continue
			}
			s.h.notice(m.Channel, m.Payload)
		}
	}
}

func (s *shards) current(n *shardNode, ps *redis.PubSub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return n.ps == ps && s.nodes[n.addr] == n
}

// redirect reads a MOVED or ASK error reply: "MOVED 3999 127.0.0.1:6381".
func redirect(err error) (slot int, addr string, ok bool) {
	f := strings.Fields(err.Error())
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return 0, "", false
	}
	slot, perr := strconv.Atoi(f[1])
	if perr != nil || slot < 0 || slot >= numSlots {
		return 0, "", false
	}
	if f[0] == "MOVED" {
		addr = f[2]
	}
	return slot, addr, true
}

// probeFor returns a probe channel of this process in one of addr's slots,
// "" when addr serves none. It must be called with s.mu held.
func (s *shards) probeFor(addr string) string {
	if s.topo == nil {
		return ""
	}
	for i := range 1 << 20 {
		tag := strconv.Itoa(i)
		if s.topo.ownerOf(keySlot(tag)) == addr {
			return s.h.probe + ":{" + tag + "}"
		}
	}
	return ""
}

// runProbe proves each connection alive now and then: a subscription can
// look healthy and receive nothing. It publishes to each node's probe
// channel; a connection that does not hear its own probe is replaced.
func (s *shards) runProbe(ctx context.Context) {
	t := time.NewTicker(s.h.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		type target struct {
			n     *shardNode
			ps    *redis.PubSub
			probe string
		}
		var targets []target
		s.mu.Lock()
		for _, n := range s.nodes {
			if n.ps != nil {
				targets = append(targets, target{n, n.ps, n.probe})
			}
		}
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, tg := range targets {
			wg.Go(func() {
				select { // forget a late answer to an earlier probe
				case <-tg.n.probeSeen:
				default:
				}
				if err := s.h.rdb.SPublish(ctx, tg.probe, "ping").Err(); err != nil {
					return // unreachable: the reader or the next step sees it
				}
				wait := time.NewTimer(min(s.h.cfg.ProbeInterval, 5*time.Second))
				defer wait.Stop()
				select {
				case <-ctx.Done():
				case <-tg.n.probeSeen:
				case <-wait.C:
					if s.current(tg.n, tg.ps) {
						s.h.probeFail.Add(1)
						s.broke(tg.n, tg.ps, errors.New("probe not received: the subscription is silent"))
					}
				}
			})
		}
		wg.Wait()
	}
}

// closeAll closes every connection when the hub stops.
func (s *shards) closeAll() {
	s.mu.Lock()
	nodes := slices.Collect(maps.Values(s.nodes))
	var pss []*redis.PubSub
	for _, n := range nodes {
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
	for _, n := range nodes {
		_ = n.client.Close()
	}
}

// keySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag (the part between the first "{" and the next "}" when
// not empty), modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % numSlots
}
