package store_test

import (
	"context"
	"testing"

	"github.com/parley-chat/parley/store"
)

// TestRetriedAppendIsNotDoubled: a generation retries a batch when it saw an
// error, but the first try may have run (Redis stopped before its reply was
// sent; a timeout; go-redis's own retry). With the answer's length it
// believes stored, a retry appends only the missing part, and a retry that
// also carries newer text appends just that. Found by the Redis restart
// fault test, whose answer read "when when" after the restart.
func TestRetriedAppendIsNotDoubled(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		text   string
		offset int
		want   int // the answer's length after
	}{
		{"Hello ", 0, 6},
		{"Hello ", 0, 6},            // the same batch again: its reply was lost
		{"Hello world", 0, 11},      // again, grown by newer text
		{"!", 11, 12},               // the next batch, as usual
		{"? and more", 12, 22},      // unchecked appends still work:
		{" unchecked", -1, 32},      // -1 appends wherever the answer ends
		{"different", 5, 0},         // text that is not what is stored: refused
		{"Hello world!? and", 0, 0}, // a retry whose start differs: refused
	}
	for i, s := range steps {
		r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: s.text, Offset: s.offset})
		if s.want == 0 {
			if err != store.ErrStale {
				t.Fatalf("step %d: append %q at %d: %v %v, want ErrStale", i, s.text, s.offset, r.Result, err)
			}
			continue
		}
		if err != nil || r.Result != store.Appended || r.Length != s.want {
			t.Fatalf("step %d: append %q at %d: result %v, length %d, err %v; want length %d", i, s.text, s.offset, r.Result, r.Length, err, s.want)
		}
	}
	snap, err := st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap.Messages[1].Text, "Hello world!? and more unchecked"; got != want {
		t.Fatalf("answer %q, want %q", got, want)
	}
}
