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
// So cluster keeps its own map of slots to masters (CLUSTER SHARDS) and one
// subscription connection per master, made by the cluster client's own
// client of that master (so it has every option the cluster client has),
// with each
// channel subscribed by its own SSUBSCRIBE. The map is read again
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
	"fmt"
	"log/slog"
	"maps"
	"net"
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
	addr string

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

// fetchTopology reads which master serves each slot.
func (s *cluster) fetchTopology(ctx context.Context) (*topology, error) {
	t := &topology{}
	for i := range t.owner {
		t.owner[i] = -1
	}
	ctx, cancel := context.WithTimeout(ctx, topologyTimeout)
	defer cancel()
	read := s.shards
	if read == nil {
		read = func(ctx context.Context) ([]redis.ClusterShard, error) { return s.client.ClusterShards(ctx).Result() }
	}
	shards, err := read(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster shards: %w", err)
	}
	for _, sh := range shards {
		addr := masterAddr(sh.Nodes)
		if addr == "" {
			continue
		}
		for _, r := range sh.Slots {
			if r.Start < 0 || r.End >= numSlots || r.Start > r.End {
				continue
			}
			for slot := r.Start; slot <= r.End; slot++ {
				t.setOwner(int(slot), addr)
			}
		}
	}
	if len(t.addrs) == 0 {
		return nil, errors.New("cluster shards: no master serves any slot")
	}
	return t, nil
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

// write sends one SSUBSCRIBE or SUNSUBSCRIBE on a node's connection. A
// failed write breaks the connection: a new one subscribes everything again.
func (s *cluster) write(ctx context.Context, n *shardNode, ps *redis.PubSub, subscribe bool, channel string) {
	var err error
	if subscribe {
		err = ps.SSubscribe(ctx, channel)
	} else {
		err = ps.SUnsubscribe(ctx, channel)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("redis subscription change failed", "node", n.addr, "channel", channel, "subscribe", subscribe, "err", err)
		s.broke(n, ps, err)
	}
}

// connectBroken starts a new connection for each node without a working one
// whose retry time has come.
func (s *cluster) connectBroken(ctx context.Context) {
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
func (s *cluster) connect(ctx context.Context, n *shardNode) {
	s.mu.Lock()
	probe := n.probe
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, shardConnectTimeout)
	var ps *redis.PubSub
	client, err := s.nodeClient(cctx, n.addr)
	if err == nil {
		ps = client.SSubscribe(ctx)
		if err = ps.SSubscribe(cctx, probe); err != nil {
			_ = ps.Close()
			ps = nil
		}
	}
	cancel()
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
func (s *cluster) install(ctx context.Context, r connResult) {
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
			s.log.Warn("redis subscription connection failed; retrying", "node", n.addr, "retry_in", n.backoff, "err", r.err)
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
	s.log.Debug("redis subscription connection open", "node", n.addr, "channels", len(channels))
}

// broke marks n's connection ps as broken, unless it was replaced already.
func (s *cluster) broke(n *shardNode, ps *redis.PubSub, err error) {
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
	s.log.Warn("redis subscription interrupted; reconnecting", "node", n.addr, "err", err)
	s.wake()
}

// receive is the reader of one connection. It never blocks on a room.
func (s *cluster) receive(ctx context.Context, n *shardNode, ps *redis.PubSub) {
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
			if strings.HasPrefix(m.Channel, s.probe) {
				continue
			}
			switch m.Kind {
			case "ssubscribe":
				s.emit(ctx, Event{Kind: Confirmed, Channel: m.Channel})
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
			s.emit(ctx, Event{Kind: Message, Channel: m.Channel, Payload: m.Payload})
		}
	}
}

func (s *cluster) current(n *shardNode, ps *redis.PubSub) bool {
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
func (s *cluster) probeFor(addr string) string {
	if s.topo == nil {
		return ""
	}
	for i := range 1 << 20 {
		tag := strconv.Itoa(i)
		if s.topo.ownerOf(keySlot(tag)) == addr {
			return s.probe + ":{" + tag + "}"
		}
	}
	return ""
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

// masterAddr is the address of the master among a shard's nodes, "" when
// none is listed.
func masterAddr(nodes []redis.Node) string {
	for _, n := range nodes {
		if n.Role != "master" {
			continue
		}
		host, port := n.Endpoint, n.Port
		if host == "" || host == "?" {
			host = n.IP
		}
		if port == 0 {
			port = n.TLSPort
		}
		return net.JoinHostPort(host, strconv.FormatInt(port, 10))
	}
	return ""
}

// nodeClient returns the cluster client's own client of the node at addr,
// so that a subscription connection has every option the cluster client
// was given (TLS, credentials, dialer, protocol). The client belongs to the
// cluster client: it is never closed here.
func (s *cluster) nodeClient(ctx context.Context, addr string) (*redis.Client, error) {
	for attempt := range 2 {
		var (
			mu    sync.Mutex
			found *redis.Client
		)
		err := s.client.ForEachShard(ctx, func(_ context.Context, c *redis.Client) error {
			if c.Options().Addr == addr {
				mu.Lock()
				found = c
				mu.Unlock()
			}
			return nil
		})
		if found != nil {
			return found, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cluster nodes: %w", err)
		}
		if attempt == 0 {
			s.client.ReloadState(ctx) // a new master it has not seen yet
		}
	}
	return nil, fmt.Errorf("node %s is not among the cluster client's nodes", addr)
}
