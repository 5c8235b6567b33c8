package pubsub

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// single is one connection with SUBSCRIBE. go-redis reconnects it and
// subscribes its channels again by itself; Renew replaces it.
type single struct {
	rdb   redis.UniversalClient
	probe string

	mu       sync.Mutex
	ps       *redis.PubSub
	channels map[string]struct{}
	closed   bool
}

func newSingle(ctx context.Context, rdb redis.UniversalClient, cfg Config) *single {
	return &single{rdb: rdb, probe: cfg.Probe, ps: rdb.Subscribe(ctx, cfg.Probe), channels: map[string]struct{}{}}
}

// Subscribe and Unsubscribe write under mu, so that Renew, which subscribes
// every channel on a new connection, never races one of them.
func (s *single) Subscribe(ctx context.Context, channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[channel] = struct{}{}
	return s.ps.Subscribe(ctx, channel)
}

func (s *single) Unsubscribe(ctx context.Context, channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.channels, channel)
	return s.ps.Unsubscribe(ctx, channel)
}

func (s *single) current() (*redis.PubSub, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps, s.closed
}

func (s *single) Receive(ctx context.Context) (Event, error) {
	for {
		ps, closed := s.current()
		if closed {
			return Event{}, ErrClosed
		}
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			if now, closed := s.current(); closed {
				return Event{}, ErrClosed
			} else if now != ps {
				// Renew closed it: the new one subscribes every channel,
				// and each is confirmed again. Nothing to report.
				continue
			}
			return Event{}, err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				return Event{Kind: Confirmed, Channel: m.Channel}, nil
			}
		case *redis.Message:
			return Event{Kind: Message, Channel: m.Channel, Payload: m.Payload}, nil
		}
	}
}

func (s *single) Probes() []Probe {
	ps, _ := s.current()
	return []Probe{{Channel: s.probe, conn: ps}}
}

func (s *single) Publish(ctx context.Context, channel, payload string) error {
	return s.rdb.Publish(ctx, channel, payload).Err()
}

// Renew dials a new connection (outside the lock: every subscription change
// takes it), then moves every channel to it in one SUBSCRIBE.
func (s *single) Renew(ctx context.Context, p Probe) {
	ps := s.rdb.Subscribe(ctx, s.probe)
	s.mu.Lock()
	old := s.ps
	if s.closed || p.conn != any(old) {
		s.mu.Unlock()
		_ = ps.Close() // closed meanwhile, or renewed already
		return
	}
	s.ps = ps
	if len(s.channels) > 0 {
		// A failed write is healed as go-redis reconnects: it subscribes
		// every channel it was given again.
		_ = ps.Subscribe(ctx, slices.Collect(maps.Keys(s.channels))...)
	}
	s.mu.Unlock()
	_ = old.Close()
}

func (s *single) Counts() (channels, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.channels) + 1, 1
}

func (s *single) Close() error {
	s.mu.Lock()
	s.closed = true
	ps := s.ps
	s.mu.Unlock()
	return ps.Close()
}
