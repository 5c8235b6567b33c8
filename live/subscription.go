package live

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/live/pubsub"
	"github.com/parley-chat/parley/store"
)

// Run receives notices until ctx is done. Rooms and streams end with it.
func (h *Hub) Run(ctx context.Context) error {
	conn := pubsub.New(ctx, h.rdb, pubsub.Config{Probe: h.probe, Refresh: h.cfg.ProbeInterval, Log: h.log})
	h.mu.Lock()
	h.ctx = ctx
	h.conn = conn
	h.mu.Unlock()
	close(h.started)

	var wg sync.WaitGroup
	wg.Go(func() { h.runOps(ctx, conn) })
	if h.cfg.ProbeInterval > 0 {
		wg.Go(func() { h.runProbe(ctx, conn) })
	}
	// go-redis's Receive does not return when its context is cancelled while
	// it waits for a message (it only honours deadlines): closing the
	// subscription makes it return, so that shutdown does not wait for ever.
	stopClose := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stopClose()
	h.receive(ctx, conn)
	wg.Wait()
	if err := conn.Close(); err != nil {
		h.log.Debug("close subscription", "err", err)
	}
	return nil
}

// receive is the one reader of the subscription. It never blocks on a room:
// a full room inbox makes the room re-read Redis instead.
func (h *Hub) receive(ctx context.Context, conn pubsub.Conn) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		ev, err := conn.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, pubsub.ErrClosed) {
				return
			}
			// It reconnects and resubscribes on the next Receive; every
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
		switch {
		case strings.HasPrefix(ev.Channel, h.probe):
			if ev.Kind == pubsub.Message {
				h.probeHeard(ev.Channel)
			}
		case ev.Kind == pubsub.Confirmed:
			h.confirmed(ev.Channel)
		case ev.Kind == pubsub.Message:
			h.notice(ev.Channel, ev.Payload)
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

// confirmed handles a subscription confirmation. The first one lets waiting
// joins read the log; any later one follows a reconnect, during which
// notices were lost, so the room re-reads the log.
func (h *Hub) confirmed(channel string) {
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

type subOp struct {
	subscribe bool
	channel   string
}

// runOps applies subscription changes in the order rooms were opened and
// closed, so an unsubscribe can never overtake the subscribe of a room that
// reopened the same conversation.
func (h *Hub) runOps(ctx context.Context, conn pubsub.Conn) {
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
			h.mu.Unlock()
			var err error
			if op.subscribe {
				err = conn.Subscribe(ctx, op.channel)
			} else {
				err = conn.Unsubscribe(ctx, op.channel)
			}
			// The subscription remembers its channels and subscribes them
			// again on reconnect, so a failed write is healed then.
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

// runProbe publishes to each connection's probe channel now and then. A
// subscription can look healthy (after a failover behind a proxy, say) and
// receive nothing; a connection that does not hear its own probe is
// replaced, and its rooms re-read the log.
//
// A Redis that is paused or stalled (CLIENT PAUSE, a long script, a fork)
// keeps the subscription's connection up and answers nothing: Receive
// neither errs nor returns, and every stream would stay open and silent for
// as long as it lasts. The probe's PUBLISH does not answer either: when it
// fails (within probeTimeout) the streams are ended, as when the connection
// breaks, so pages show "reconnecting" and retry (failing fast while Redis
// is away). A stall is so seen within ProbeInterval plus probeTimeout.
func (h *Hub) runProbe(ctx context.Context, conn pubsub.Conn) {
	t := time.NewTicker(h.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, p := range conn.Probes() {
			wg.Go(func() { h.probeOnce(ctx, conn, p) })
		}
		wg.Wait()
	}
}

// probeOnce publishes to one probe channel and waits for it to come back.
func (h *Hub) probeOnce(ctx context.Context, conn pubsub.Conn, p pubsub.Probe) {
	seen := make(chan struct{}, 1)
	h.probeMu.Lock()
	h.probeWait[p.Channel] = seen // a late answer to an earlier probe is forgotten
	h.probeMu.Unlock()
	defer func() {
		h.probeMu.Lock()
		delete(h.probeWait, p.Channel)
		h.probeMu.Unlock()
	}()

	pctx, cancel := context.WithTimeout(ctx, h.probeTimeout())
	err := conn.Publish(pctx, p.Channel, "ping")
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		// Unreachable (receive may see that too) or stalled (it does not).
		h.log.Warn("redis does not answer the subscription probe; live streams end and reconnect", "err", err)
		h.subscriptionLost()
		return
	}
	wait := time.NewTimer(h.probeTimeout())
	defer wait.Stop()
	select {
	case <-ctx.Done():
	case <-seen:
	case <-wait.C:
		h.probeFail.Add(1)
		h.log.Warn("redis subscription is silent; renewing it", "probe", p.Channel)
		conn.Renew(ctx, p)
	}
}

// probeHeard tells the prober of channel that its probe came back.
func (h *Hub) probeHeard(channel string) {
	h.probeMu.Lock()
	defer h.probeMu.Unlock()
	select {
	case h.probeWait[channel] <- struct{}{}:
	default:
	}
}

// probeTimeout bounds the probe's PUBLISH, and the wait for it to come back.
func (h *Hub) probeTimeout() time.Duration {
	return min(h.cfg.ProbeInterval, 5*time.Second)
}
