package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

// TestStoreOnRedisCluster runs every store script on a real Redis Cluster,
// for a conversation on each master: each script touches several keys of
// one conversation (one hash tag, so one slot) and publishes its notice with
// SPUBLISH on that slot's master, where a sharded subscriber receives every
// logged event in log order, each naming the one before it. The writes that
// span slots (an owner's list, the generation index) go through the cluster
// client as separate commands, and the owner's channel, in a slot of its
// own, rings with SPUBLISH on its master after each change of the list.
// It is long because it walks one conversation through every operation in
// order on each master, on one cluster: a cluster takes seconds to start.
func TestStoreOnRedisCluster(t *testing.T) {
	t.Parallel()
	c := testredis.StartCluster(t)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	cfg := store.Config{
		LogMaxLen: 1000, ConversationTTL: time.Hour, LeaseTTL: time.Minute,
		MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour, Sharded: true,
	}
	st := store.New(cc, cfg)
	short := cfg
	short.LeaseTTL = 200 * time.Millisecond
	stShort := store.New(cc, short) // for leases that must run out

	ownerMaster := c.MasterFor(t, store.OwnerChannel(testOwner))
	ownerNode := redis.NewClient(&redis.Options{Addr: ownerMaster})
	t.Cleanup(func() { _ = ownerNode.Close() })
	owner := ownerNode.SSubscribe(ctx, store.OwnerChannel(testOwner))
	t.Cleanup(func() { _ = owner.Close() })
	if _, err := owner.Receive(ctx); err != nil {
		t.Fatalf("%s: ssubscribe the owner's channel: %v", ownerMaster, err)
	}
	ownerRang := func(master, what string) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		msg, err := owner.ReceiveMessage(rctx)
		if err != nil || msg.Payload != "list" {
			t.Fatalf("%s: %s: owner notice on %s: %v %v", master, what, ownerMaster, msg, err)
		}
	}

	for _, master := range c.Masters(t) {
		conv := store.NewID()
		for c.MasterFor(t, store.Channel(conv)) != master {
			conv = store.NewID()
		}
		node := redis.NewClient(&redis.Options{Addr: master})
		ps := node.SSubscribe(ctx, store.Channel(conv))
		if _, err := ps.Receive(ctx); err != nil { // confirmed on the master
			t.Fatalf("%s: ssubscribe: %v", master, err)
		}

		// post, idempotency, append, title, renew, stop, finish
		res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "question", Key: "k1", Gen: store.NewID(), Create: true})
		must(t, master, "post", err)
		if dup, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "question", Key: "k1", Gen: store.NewID()}); err != nil || !dup.Duplicate {
			t.Fatalf("%s: second post with the same key: %+v %v", master, dup, err)
		}
		offset := 0
		for _, w := range []string{"Hello ", "world"} {
			r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: w, Offset: offset, Got: time.Now()})
			must(t, master, "append", err)
			if r.Result != store.Appended {
				t.Fatalf("%s: append: %v", master, r.Result)
			}
			offset = r.Length
		}
		ok, err := st.SetTitle(ctx, store.Title{Conv: conv, Owner: testOwner, Text: "A title", IfEmpty: true})
		must(t, master, "title", err)
		if !ok {
			t.Fatalf("%s: title not set", master)
		}
		ownerRang(master, "title")
		if stop, err := st.Renew(ctx, conv, res.Gen); err != nil || stop {
			t.Fatalf("%s: renew: %v %v", master, stop, err)
		}
		if r, err := st.Stop(ctx, conv); err != nil || r != store.StopSent {
			t.Fatalf("%s: stop: %v %v", master, r, err)
		}
		if stop, err := st.Renew(ctx, conv, res.Gen); err != nil || !stop {
			t.Fatalf("%s: renew after stop: %v %v", master, stop, err)
		}
		must(t, master, "finish", st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusStopped}))

		// regenerate, then a lease that runs out and the sweeper's expire
		snap, err := st.Snapshot(ctx, conv, store.ID{})
		must(t, master, "snapshot", err)
		if len(snap.Messages) != 2 || snap.Messages[1].Text != "Hello world" || snap.Title != "A title" {
			t.Fatalf("%s: snapshot: %+v", master, snap)
		}
		mid := snap.Last
		gen2 := store.NewID()
		started, err := stShort.Regenerate(ctx, store.Regen{Conv: conv, Owner: testOwner, Gen: gen2, Rev: snap.Messages[1].Rev})
		must(t, master, "regenerate", err)
		if !started {
			t.Fatalf("%s: regenerate did not start", master)
		}
		if _, err := stShort.Append(ctx, store.AppendCall{Conv: conv, Gen: gen2, Text: "Again"}); err != nil {
			t.Fatalf("%s: append after regenerate: %v", master, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ids, err := st.ExpiredLeases(ctx, time.Now(), 100)
			must(t, master, "expired leases", err)
			if slices.Contains(ids, conv) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the lease never showed as expired", master)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The lease key itself expires too (Redis's clock, not the score's).
		for n, _ := cc.Exists(ctx, "{c:"+conv+"}:lease").Result(); n != 0; n, _ = cc.Exists(ctx, "{c:"+conv+"}:lease").Result() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the lease key never expired", master)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ended, err := st.Expire(ctx, conv); err != nil || !ended {
			t.Fatalf("%s: expire: %v %v", master, ended, err)
		}

		// a snapshot after a cursor, presence, the owner's list and limits
		after, err := st.Snapshot(ctx, conv, mid)
		must(t, master, "snapshot after cursor", err)
		if !after.CursorValid || after.From != 1 || len(after.Messages) != 1 ||
			after.Messages[0].Text != "Again" || after.Messages[0].Status != store.StatusInterrupted {
			t.Fatalf("%s: snapshot after %s: %+v", master, mid, after)
		}
		if n, err := st.Presence(ctx, conv, "process-a", 2, time.Minute); err != nil || n != 2 {
			t.Fatalf("%s: presence: %d %v", master, n, err)
		}
		must(t, master, "touch", st.Touch(ctx, conv, testOwner))
		ownerRang(master, "touch")
		list, err := st.List(ctx, testOwner, 10)
		must(t, master, "list", err)
		if !slices.ContainsFunc(list, func(s store.Summary) bool { return s.ID == conv && s.Title == "A title" }) {
			t.Fatalf("%s: list: %+v", master, list)
		}
		must(t, master, "rate limit", st.Count(ctx, store.LimitPosts, store.Browser(testOwner), 100, time.Minute))
		must(t, master, "reserve", st.ReserveAnswer(ctx, store.Browser(testOwner), conv, "g", 3, time.Minute))
		if meta, err := st.Meta(ctx, conv); err != nil || meta.Owner != testOwner {
			t.Fatalf("%s: meta: %+v %v", master, meta, err)
		}

		// Every logged event came through the shard's pub/sub, in order.
		log, err := cc.XRange(ctx, "{c:"+conv+"}:log", "-", "+").Result()
		must(t, master, "read the log", err)
		must(t, master, "delete", st.Delete(ctx, conv, testOwner))
		ownerRang(master, "delete")
		if _, err := st.Snapshot(ctx, conv, store.ID{}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: snapshot after delete: %v", master, err)
		}
		// The tombstone is in the conversation's slot: the post script reads it.
		if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "again", Key: store.NewID(), Gen: store.NewID(), Create: true}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("%s: create a deleted ID again: %v", master, err)
		}
		prev, i := "0-0", 0
		sawStop, sawPresence := false, false
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			msg, err := ps.ReceiveMessage(rctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: notice %d of %d: %v", master, i, len(log), err)
			}
			ev, err := store.DecodeEvent(msg.Payload)
			must(t, master, "decode notice", err)
			if ev.Type == store.EventDeleted {
				break
			}
			sawStop = sawStop || ev.Type == store.EventStop
			sawPresence = sawPresence || ev.Type == store.EventPresence
			if ev.ID == "" {
				continue // not logged
			}
			if i >= len(log) || ev.ID != log[i].ID || ev.Prev != prev {
				t.Fatalf("%s: notice %d is %s after %s, the log has %d entries", master, i, ev.ID, ev.Prev, len(log))
			}
			prev = log[i].ID
			i++
		}
		if i != len(log) || !sawStop || !sawPresence {
			t.Fatalf("%s: %d of %d logged notices, stop %v, presence %v", master, i, len(log), sawStop, sawPresence)
		}
		_ = ps.Close()
		_ = node.Close()
	}
}

func must(t *testing.T, master, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %s: %v", master, what, err)
	}
}
