package pubsub

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

func TestRedirect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  string
		slot int
		addr string
		ok   bool
	}{
		{"MOVED 3999 127.0.0.1:6381", 3999, "127.0.0.1:6381", true},
		{"ASK 12 10.0.0.2:7000", 12, "", true},
		{"MOVED 16384 127.0.0.1:6381", 0, "", false},
		{"MOVED x 127.0.0.1:6381", 0, "", false},
		{"CROSSSLOT Keys in request don't hash to the same slot", 0, "", false},
		{"EOF", 0, "", false},
	} {
		slot, addr, ok := redirect(errors.New(tc.err))
		if slot != tc.slot || addr != tc.addr || ok != tc.ok {
			t.Errorf("redirect(%q) = %d %q %v, want %d %q %v", tc.err, slot, addr, ok, tc.slot, tc.addr, tc.ok)
		}
	}
}

func TestMasterAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		nodes []redis.Node
		want  string
	}{
		{[]redis.Node{{Endpoint: "10.0.0.2", Port: 7001, Role: "replica"}, {Endpoint: "10.0.0.1", Port: 7000, Role: "master"}}, "10.0.0.1:7000"},
		{[]redis.Node{{Endpoint: "?", IP: "::1", Port: 7000, Role: "master"}}, "[::1]:7000"},
		{[]redis.Node{{Endpoint: "h", TLSPort: 7443, Role: "master"}}, "h:7443"},
		{[]redis.Node{{Endpoint: "h", Port: 7000, Role: "replica"}}, ""},
	} {
		if got := masterAddr(tc.nodes); got != tc.want {
			t.Errorf("masterAddr(%+v) = %q, want %q", tc.nodes, got, tc.want)
		}
	}
}

// TestClusterFollowsMoved plays go-redis issue 3099 on a real cluster: the
// slot map is out of date (it says one master serves every slot), so the
// first SSUBSCRIBE for a channel on another master goes to the wrong node
// and is refused with MOVED. The subscription must take the hint, open a
// connection to the right master and subscribe there, so that a message
// published to the channel, which only travels through sharded pub/sub,
// arrives.
func TestClusterFollowsMoved(t *testing.T) {
	t.Parallel()
	c := testredis.StartCluster(t)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })

	// keySlot must agree with the server, hash tags included.
	for _, key := range []string{"", "a", "123456789", "{c:abc}:n", "x{c:abc}:meta", "{}z", "{{a}}", store.Channel(store.NewID())} {
		if got, want := keySlot(key), c.Slot(t, key); got != want {
			t.Errorf("keySlot(%q) = %d, the cluster says %d", key, got, want)
		}
	}

	masters := c.Masters(t)
	stale, right := masters[0], masters[1]
	host, port, err := net.SplitHostPort(stale)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.ParseInt(port, 10, 64)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newCluster(cc, Config{Probe: "parley:probe:" + store.NewID(), Refresh: time.Hour, Log: log})
	s.shards = func(context.Context) ([]redis.ClusterShard, error) {
		return []redis.ClusterShard{{
			Slots: []redis.SlotRange{{Start: 0, End: numSlots - 1}},
			Nodes: []redis.Node{{Endpoint: host, Port: p, Role: "master"}},
		}}, nil
	}
	s.start()
	t.Cleanup(func() { _ = s.Close() })

	channel := store.Channel(store.NewID())
	for c.MasterFor(t, channel) != right {
		channel = store.Channel(store.NewID())
	}
	if err := s.Subscribe(ctx, channel); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for confirmed := false; !confirmed; {
		ev, err := s.Receive(rctx)
		if err != nil {
			t.Fatalf("the channel was never confirmed behind a stale slot map: %v", err)
		}
		confirmed = ev.Kind == Confirmed && ev.Channel == channel
	}
	if err := s.Publish(ctx, channel, "stop"); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := s.Receive(rctx)
		if err != nil {
			t.Fatalf("the message never arrived: the channel is silent: %v", err)
		}
		if ev.Kind == Message && ev.Channel == channel && ev.Payload == "stop" {
			break
		}
	}

	// One connection on each of the two masters it knows of, the channel on
	// the right one.
	for addr, want := range map[string]string{stale: " ssub=1 ", right: " ssub=2 "} {
		reply, err := testredis.Command(addr, "CLIENT", "LIST", "TYPE", "PUBSUB")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(reply.(string)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0]+" ", want) {
			t.Errorf("%s: subscription connections %q, want one with%s", addr, lines, want)
		}
	}
	// The stale map may also send a probe channel to the wrong node, and
	// so open a connection to the third master: at least two, then.
	if ch, conns := s.Counts(); ch < 3 || conns < 2 {
		t.Errorf("Counts() = %d channels, %d connections; want the channel and a probe per connection, at least two", ch, conns)
	}
}
