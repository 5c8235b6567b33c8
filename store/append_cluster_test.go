package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

// TestAppendBatchOnRedisCluster: one batch holds appends for conversations
// on every master; the cluster client splits it by node and each append
// lands on its own. A master that lost the script (SCRIPT FLUSH there only)
// gets it loaded and its appends sent again; a slot moved to another master
// since the client last looked is followed (MOVED) within the batch.
func TestAppendBatchOnRedisCluster(t *testing.T) {
	t.Parallel()
	c := testredis.StartCluster(t)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	st := store.New(cc, store.Config{
		LogMaxLen: 1000, ConversationTTL: time.Hour, LeaseTTL: time.Minute,
		MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour, Sharded: true,
	})
	masters := c.Masters(t)
	var calls []store.AppendCall
	for _, m := range masters {
		for range 3 {
			conv := store.NewID()
			for c.MasterFor(t, store.Channel(conv)) != m {
				conv = store.NewID()
			}
			res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			calls = append(calls, store.AppendCall{Conv: conv, Gen: res.Gen})
		}
	}
	want := make([]string, len(calls))
	for round, word := range []string{"one ", "two ", "three "} {
		switch round {
		case 1:
			if _, err := testredis.Command(masters[1], "SCRIPT", "FLUSH"); err != nil {
				t.Fatal(err)
			}
		case 2:
			c.MoveSlot(t, c.Slot(t, store.Channel(calls[0].Conv)), masters[2])
		}
		for i := range calls {
			calls[i].Text, calls[i].Got = word, time.Now()
		}
		for i, r := range st.AppendBatch(ctx, calls, nil) {
			want[i] += word
			if r.Err != nil || r.Result != store.Appended || r.Length != len(want[i]) {
				t.Fatalf("round %d, append %d (master %s): %+v, want length %d", round, i, masters[i/3], r, len(want[i]))
			}
			calls[i].Offset = r.Length
		}
	}
	for i, call := range calls {
		snap, err := st.Snapshot(ctx, call.Conv, store.ID{})
		if err != nil {
			t.Fatal(err)
		}
		if got := snap.Messages[1].Text; got != want[i] {
			t.Errorf("answer %d: %q, want %q", i, got, want[i])
		}
	}
}
