package store_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/store"
)

// TestDeletedIDIsNeverCreatedAgain: a deletion leaves a tombstone in the
// conversation's slot, holding the deletion time, for the conversation TTL
// (never under two days; 30 days when conversations are kept for ever), and
// while it lives the post script refuses to create the ID again.
func TestDeletedIDIsNeverCreatedAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{0, 30 * 24 * time.Hour},
		{time.Hour, 48 * time.Hour},
		{60 * 24 * time.Hour, 60 * 24 * time.Hour},
	} {
		t.Run("ttl "+tc.ttl.String(), func(t *testing.T) {
			t.Parallel()
			st, rdb := newStore(t, store.Config{ConversationTTL: tc.ttl})
			ctx := context.Background()
			conv := store.NewID()
			res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "first", Gen: store.NewID(), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusDone}); err != nil {
				t.Fatal(err)
			}
			// Existing: refused as before.
			if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "first", Gen: store.NewID(), Create: true}); !errors.Is(err, store.ErrExists) {
				t.Fatalf("create over a live conversation: %v", err)
			}
			before := time.Now().UnixMilli()
			if err := st.Delete(ctx, conv, testOwner); err != nil {
				t.Fatal(err)
			}
			gone := "parley:gone:{c:" + conv + "}"
			v, err := rdb.Get(ctx, gone).Result()
			if err != nil {
				t.Fatalf("no tombstone after delete: %v", err)
			}
			if ms, _ := strconv.ParseInt(v, 10, 64); ms < before || ms > time.Now().UnixMilli() {
				t.Errorf("tombstone holds %q, want the deletion time", v)
			}
			if ttl := rdb.PTTL(ctx, gone).Val(); ttl <= tc.want-time.Minute || ttl > tc.want {
				t.Errorf("tombstone lives %v, want %v", ttl, tc.want)
			}
			// The same owner, any key: never created again, and nothing written.
			for _, owner := range []string{testOwner, "BBBBBBBBBBBBBBBBBBBBBB"} {
				if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: owner, Text: "again", Key: store.NewID(), Gen: store.NewID(), Create: true}); !errors.Is(err, store.ErrExists) {
					t.Fatalf("create a deleted ID again as %s: %v, want ErrExists", owner, err)
				}
			}
			if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "again", Key: store.NewID(), Gen: store.NewID()}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("post to a deleted conversation: %v, want ErrNotFound", err)
			}
			if _, err := st.Snapshot(ctx, conv, store.ID{}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("snapshot of a deleted conversation: %v", err)
			}
			if n := rdb.Exists(ctx, "{c:"+conv+"}:meta", "{c:"+conv+"}:msgs", "{c:"+conv+"}:log").Val(); n != 0 {
				t.Fatalf("%d keys of the deleted conversation came back", n)
			}
			// Without the tombstone (it expired) the ID is free again: it is
			// the tombstone alone that refuses it.
			rdb.Del(ctx, gone)
			if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "again", Key: store.NewID(), Gen: store.NewID(), Create: true}); err != nil {
				t.Fatalf("create after the tombstone expired: %v", err)
			}
		})
	}
}
