package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/store"
)

// TestRefusedCountsNothingElse: an event one limit refuses is not counted
// against the others (a burst refused by the minute's limit leaves the
// hour's untouched), while the limit that refused it goes on refusing.
func TestRefusedCountsNothingElse(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{})
	ctx := context.Background()
	minute := store.Counter{Limit: store.LimitPosts, Who: store.Browser(testOwner), Max: 2, Window: time.Minute}
	hour := store.Counter{Limit: store.LimitConversations, Who: store.Browser(testOwner), Max: 5, Window: time.Hour}
	for i := range 6 {
		err := st.CountAll(ctx, minute, hour)
		var le *store.LimitError
		switch {
		case i < 2 && err != nil:
			t.Fatalf("event %d: %v, want it counted", i, err)
		case i >= 2 && (!errors.As(err, &le) || le.Limit != store.LimitPosts):
			t.Fatalf("event %d: %v, want the minute's limit to refuse it", i, err)
		}
	}
	if n, err := rdb.Get(ctx, "parley:rate:conversations:o:"+testOwner).Int(); err != nil || n != 2 {
		t.Errorf("the hour's counter holds %d (%v) after 2 counted and 4 refused events, want 2", n, err)
	}
	// A limit whose counter has ended is not brought back by a refund.
	if err := rdb.Del(ctx, "parley:rate:conversations:o:"+testOwner).Err(); err != nil {
		t.Fatal(err)
	}
	hourly := store.Counter{Limit: store.LimitConversations, Who: store.Browser(testOwner), Max: 5, Window: time.Hour}
	if err := st.CountAll(ctx, minute, hourly); err == nil {
		t.Fatal("the minute's limit no longer refuses")
	}
	if ttl := rdb.PTTL(ctx, "parley:rate:conversations:o:"+testOwner).Val(); ttl <= 0 {
		t.Errorf("after a refund the hour's counter has no expiry (PTTL %v)", ttl)
	}
}
