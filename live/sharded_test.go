package live

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

func TestRedirect(t *testing.T) {
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

// TestShardedHubFollowsMoved plays go-redis issue 3099 on a real cluster: the
// hub's slot map is out of date (it says one master serves every slot), so
// its first SSUBSCRIBE for a conversation on another master goes to the
// wrong node and is refused with MOVED. The hub must take the hint, open a
// connection to the right master and subscribe there, so that the stop
// notice, which only travels through sharded pub/sub, arrives.
func TestShardedHubFollowsMoved(t *testing.T) {
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
	st := store.New(cc, store.Config{LogMaxLen: 1000, LeaseTTL: time.Minute, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour, Sharded: true})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := NewHub(cc, st, markdown.NewRenderer(), log, Config{
		ViewerQueue: 16, MaxViewers: 10, Heartbeat: time.Minute,
		SubscribeTimeout: 10 * time.Second, ProbeInterval: time.Hour, Sharded: true,
	})
	s, err := newShards(h)
	if err != nil {
		t.Fatal(err)
	}
	s.slots = func(context.Context) ([]redis.ClusterSlot, error) {
		return []redis.ClusterSlot{{Start: 0, End: numSlots - 1, Nodes: []redis.ClusterNode{{Addr: stale}}}}, nil
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = h.runShards(runCtx, s, nil); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	conv := store.NewID()
	for c.MasterFor(t, store.Channel(conv)) != right {
		conv = store.NewID()
	}
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: "owner", Text: "hello", Key: "key", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	release, err := h.OnStop(ctx, conv, res.Gen, func() { close(stopped) })
	if err != nil {
		t.Fatalf("join behind a stale slot map: %v", err)
	}
	defer release()
	if r, err := st.Stop(ctx, conv); err != nil || r != store.StopSent {
		t.Fatalf("stop: %v %v", r, err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the stop notice never arrived: the channel is silent")
	}

	// One connection on each of the two masters the hub knows of, the
	// conversation's channel on the right one.
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
}
