package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-chat/parley/store"
)

// TestSnapshotKnown: whatever revisions a reader says it holds, SnapshotKnown
// returns exactly Snapshot's messages, except that those held at their
// current revision come back as Known, without text.
func TestSnapshotKnown(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	// Three ended answers (one failed, so it has an error), then one still
	// streaming, whose text lives in its own key.
	for i, end := range []string{store.StatusDone, store.StatusFailed, store.StatusDone, ""} {
		res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: fmt.Sprintf("question %d", i), Key: fmt.Sprint("k", i), Gen: store.NewID(), Create: i == 0})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: fmt.Sprintf("answer *%d*", i)}); err != nil {
			t.Fatal(err)
		}
		if end != "" {
			if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: end, Error: "model said no"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	full, err := st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	revs := make([]string, len(full.Messages))
	for i, m := range full.Messages {
		revs[i] = m.Rev
	}
	stale := slices.Clone(revs)
	stale[5] = revs[4] // a revision of message 5 that is not its own

	tests := []struct {
		name  string
		held  []string
		known []int // indices expected back as Known
	}{
		{"nothing held", nil, nil},
		{"all held", revs, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"a prefix held", revs[:4], []int{0, 1, 2, 3}},
		{"gaps", []string{revs[0], "", revs[2], "", revs[4]}, []int{0, 2, 4}},
		{"one revision stale", stale, []int{0, 1, 2, 3, 4, 6, 7}},
		{"more held than there are", append(slices.Clone(revs), revs[0], revs[1]), []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"garbage", []string{"x y", "-", revs[2] + " " + revs[3]}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := st.SnapshotKnown(ctx, conv, tt.held)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Last != full.Last || snap.Count != full.Count || snap.Active != full.Active || snap.Title != full.Title || snap.Owner != testOwner {
				t.Fatalf("header %+v, want that of %+v and owner %s", snap, full, testOwner)
			}
			if len(snap.Messages) != len(full.Messages) {
				t.Fatalf("%d messages, want %d", len(snap.Messages), len(full.Messages))
			}
			for i, m := range snap.Messages {
				want := full.Messages[i]
				if slices.Contains(tt.known, i) {
					want = store.Message{Index: i, Rev: want.Rev, Known: true}
				}
				if m != want {
					t.Errorf("message %d: %+v, want %+v", i, m, want)
				}
			}
		})
	}
	if full.Messages[7].Status != store.StatusStreaming || full.Messages[7].Text != "answer *3*" {
		t.Fatalf("the streaming answer: %+v", full.Messages[7])
	}
	if _, err := st.SnapshotKnown(ctx, store.NewID(), revs); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown conversation: %v", err)
	}
}

// TestSnapshotKnownLongConversation reads a conversation long enough that the
// script must read its fields in several HMGETs (Lua's unpack has a limit).
func TestSnapshotKnownLongConversation(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	const posts = 1100 // 2,200 messages: 2,200 revisions, 8,800 fields to read
	for i := range posts {
		res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: fmt.Sprint("q", i), Key: fmt.Sprint("k", i), Gen: store.NewID(), Create: i == 0})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusDone}); err != nil {
			t.Fatal(err)
		}
	}
	full, err := st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.SnapshotKnown(ctx, conv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 2*posts || !slices.Equal(got.Messages, full.Messages) {
		t.Fatalf("%d messages, equal to Snapshot's %d: %v", len(got.Messages), len(full.Messages), slices.Equal(got.Messages, full.Messages))
	}
	held := make([]string, len(full.Messages))
	for i, m := range full.Messages {
		if i%3 == 0 {
			held[i] = m.Rev
		}
	}
	got, err = st.SnapshotKnown(ctx, conv, held)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got.Messages {
		if m.Known != (i%3 == 0) || m.Rev != full.Messages[i].Rev || !m.Known && m != full.Messages[i] {
			t.Fatalf("message %d: %+v, want %+v (known %v)", i, m, full.Messages[i], i%3 == 0)
		}
	}
}
