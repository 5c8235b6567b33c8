package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/store"
)

// TestAnswerTextLivesInItsOwnKeyWhileWritten: appends grow the answer's own
// key (so a batch costs O(batch), not O(answer)), readers see the text
// there while it streams, and every way an answer ends moves the text into
// the message and removes the key.
func TestAnswerTextLivesInItsOwnKeyWhileWritten(t *testing.T) {
	t.Parallel()
	ends := []struct {
		name string
		end  func(t *testing.T, st *store.Store, rdb *redis.Client, conv, gen string)
		want string // status after the end
	}{
		{"finish", func(t *testing.T, st *store.Store, _ *redis.Client, conv, gen string) {
			if err := st.Finish(context.Background(), store.Ending{Conv: conv, Gen: gen, Status: store.StatusDone}); err != nil {
				t.Fatal(err)
			}
		}, store.StatusDone},
		{"sweeper after the process died", func(t *testing.T, st *store.Store, rdb *redis.Client, conv, gen string) {
			ctx := context.Background()
			rdb.Del(ctx, "{c:"+conv+"}:lease") // as if it had expired
			if ended, err := st.Expire(ctx, conv); err != nil || !ended {
				t.Fatalf("expire: %v %v", ended, err)
			}
		}, store.StatusInterrupted},
	}
	for _, tt := range ends {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, rdb := newStore(t, store.Config{ConversationTTL: time.Hour})
			ctx := context.Background()
			conv := store.NewID()
			textKey := "{c:" + conv + "}:t:1"
			res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			offset := 0
			for _, w := range []string{"Hello", ", ", "world"} {
				r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: w, Offset: offset})
				if err != nil || r.Result != store.Appended {
					t.Fatalf("append: %v %v", r.Result, err)
				}
				offset = r.Length
			}
			if got, _ := rdb.Get(ctx, textKey).Result(); got != "Hello, world" {
				t.Fatalf("text key holds %q", got)
			}
			if ttl, _ := rdb.PTTL(ctx, textKey).Result(); ttl <= 0 {
				t.Errorf("text key has no expiry (%v)", ttl)
			}
			if got, _ := rdb.HGet(ctx, "{c:"+conv+"}:msgs", "1.text").Result(); got != "" {
				t.Fatalf("an append copied the answer into the hash: %q", got)
			}
			snap, err := st.Snapshot(ctx, conv, store.ID{})
			if err != nil {
				t.Fatal(err)
			}
			if m := snap.Messages[1]; m.Text != "Hello, world" || m.Status != store.StatusStreaming {
				t.Fatalf("while streaming: %q %s", m.Text, m.Status)
			}
			tt.end(t, st, rdb, conv, res.Gen)
			snap, err = st.Snapshot(ctx, conv, store.ID{})
			if err != nil {
				t.Fatal(err)
			}
			if m := snap.Messages[1]; m.Text != "Hello, world" || m.Status != tt.want {
				t.Fatalf("after the end: %q %s, want %q %s", m.Text, m.Status, "Hello, world", tt.want)
			}
			if n, _ := rdb.Exists(ctx, textKey).Result(); n != 0 {
				t.Fatal("the text key outlived the answer")
			}
		})
	}
}

// TestAppendNoticeCarriesWhenTheTextArrived: the time a generation got a
// batch travels in the notice, so that a process writing the frame can
// measure token-to-frame latency; plain Append leaves it out.
func TestAppendNoticeCarriesWhenTheTextArrived(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	ps := rdb.Subscribe(ctx, store.Channel(conv))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	got := time.UnixMilli(1_700_000_000_123)
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "a", Got: got}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "b", Offset: 1}); err != nil {
		t.Fatal(err)
	}
	var appended []int64
	for len(appended) < 2 {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := store.DecodeEvent(msg.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == store.EventDelta {
			appended = append(appended, ev.Appended)
		}
	}
	if appended[0] != got.UnixMilli() || appended[1] != 0 {
		t.Fatalf("notices carry %v, want [%d 0]", appended, got.UnixMilli())
	}
}
