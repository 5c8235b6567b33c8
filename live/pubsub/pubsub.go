// Package pubsub is a process's subscription to Redis: channels subscribed
// and unsubscribed one at a time, their messages and confirmations as one
// stream of events, and a probe per connection to prove it alive.
//
// Two implementations sit behind Conn: single.go, one connection with
// SUBSCRIBE on a plain Redis; cluster.go, sharded pub/sub (SSUBSCRIBE) on
// Redis Cluster, one connection per master. New picks by the client's type.
package pubsub

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kind says what an Event is.
type Kind int

const (
	// Message is a payload published to a channel.
	Message Kind = iota + 1
	// Confirmed says a channel's subscription is in place: the first time
	// after Subscribe, and again after every reconnection (during which
	// messages may have been lost).
	Confirmed
)

// Event is what Receive returns.
type Event struct {
	Kind    Kind
	Channel string
	Payload string // for a Message
}

// Probe is a channel that one connection of a Conn hears: a message
// published to it and not received means that connection is silent.
type Probe struct {
	Channel string
	conn    any // the connection it proves, for Renew
}

// Conn is the subscription the hub uses. Subscribe and Unsubscribe must be
// called from one goroutine, in the order the channels are wanted; Receive
// from one goroutine too.
type Conn interface {
	// Subscribe adds channel; a Confirmed event follows once it is in place.
	// An error is logged by the caller and healed by the next reconnection.
	Subscribe(ctx context.Context, channel string) error
	// Unsubscribe drops channel.
	Unsubscribe(ctx context.Context, channel string) error
	// Receive waits for the next event. An error means the connection broke
	// and messages are being lost (it reconnects on the next call); after
	// Close, or when ctx is done, it returns an error at once.
	Receive(ctx context.Context) (Event, error)
	// Probes are the probe channels of the connections open now.
	Probes() []Probe
	// Publish publishes payload to channel, as the subscription hears it
	// (PUBLISH or SPUBLISH).
	Publish(ctx context.Context, channel, payload string) error
	// Renew replaces the connection of p, which did not hear its probe; its
	// channels are subscribed again (and so confirmed again).
	Renew(ctx context.Context, p Probe)
	// Counts are the channels subscribed, probes included, and the
	// connections in pub/sub mode.
	Counts() (channels, conns int)
	// Close closes every connection; Receive then returns an error.
	Close() error
}

// Config is what New needs besides the client.
type Config struct {
	// Probe is this process's probe channel; every probe channel starts
	// with it.
	Probe string
	// Refresh is how often a cluster's slot map is read anyway (0: every
	// 10 s).
	Refresh time.Duration
	Log     *slog.Logger
}

// ErrClosed is returned by Receive after Close.
var ErrClosed = errors.New("pubsub: closed")

// New opens the subscription: sharded, one connection per master, on a
// *redis.ClusterClient; one connection on any other client.
func New(ctx context.Context, rdb redis.UniversalClient, cfg Config) Conn {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		s := newCluster(c, cfg)
		s.start()
		return s
	}
	return newSingle(ctx, rdb, cfg)
}
