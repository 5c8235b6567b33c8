package pubsub

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

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
