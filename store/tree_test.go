package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/store"
)

// answer posts text and ends its answer done with reply.
func answer(t *testing.T, st *store.Store, conv, text, reply string, create bool) {
	t.Helper()
	ctx := context.Background()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: text, Key: store.NewID(), Gen: store.NewID(), Create: create, Model: "m1"})
	if err != nil {
		t.Fatalf("post %q: %v", text, err)
	}
	write(t, st, conv, res.Gen, reply, store.Ending{})
}

// write appends reply as generation gen's answer and ends it like e.
func write(t *testing.T, st *store.Store, conv, gen, reply string, e store.Ending) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: reply, Offset: -1}); err != nil {
		t.Fatalf("append: %v", err)
	}
	e.Conv, e.Gen = conv, gen
	if e.Status == "" {
		e.Status = store.StatusDone
	}
	if err := st.Finish(ctx, e); err != nil {
		t.Fatalf("finish: %v", err)
	}
}

// revAt is the revision of message i of conv's path.
func revAt(t *testing.T, st *store.Store, conv string, i int) string {
	t.Helper()
	snap, err := st.Snapshot(context.Background(), conv, store.ID{})
	if err != nil || i >= len(snap.Messages) {
		t.Fatalf("message %d of %s: %v", i, conv, err)
	}
	return snap.Messages[i].Rev
}

// shown is a conversation's path as "text v/n" per message.
func shown(t *testing.T, st *store.Store, conv string) []string {
	t.Helper()
	snap, err := st.Snapshot(context.Background(), conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range snap.Messages {
		out = append(out, fmt.Sprintf("%s %d/%d", m.Text, m.Version, m.Versions))
	}
	return out
}

func wantShown(t *testing.T, st *store.Store, conv string, want ...string) {
	t.Helper()
	if got := shown(t, st, conv); !reflect.DeepEqual(got, want) {
		t.Fatalf("path shows %q, want %q", got, want)
	}
}

// TestEditsAndRegenerationsAreVersions: an edit and a regeneration add
// versions; switching shows each branch with the versions its later
// messages last showed; a snapshot from a cursor before a branch is the
// path's suffix from the branch's position.
func TestEditsAndRegenerationsAreVersions(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	answer(t, st, conv, "q1", "a1", true)
	answer(t, st, conv, "q2", "a2", false)
	wantShown(t, st, conv, "q1 1/1", "a1 1/1", "q2 1/1", "a2 1/1")

	// Regenerate the last answer: a second version, the first kept.
	snap, _ := st.Snapshot(ctx, conv, store.ID{})
	gen := store.NewID()
	if ok, err := st.Regenerate(ctx, store.Regen{Conv: conv, Owner: testOwner, Gen: gen, Rev: snap.Messages[3].Rev, Model: "m2"}); err != nil || !ok {
		t.Fatalf("regenerate: %v %v", ok, err)
	}
	write(t, st, conv, gen, "a2 again", store.Ending{})
	wantShown(t, st, conv, "q1 1/1", "a1 1/1", "q2 1/1", "a2 again 2/2")

	// Edit the first question: a new branch from position 0.
	before, _ := st.Snapshot(ctx, conv, store.ID{})
	stale := revAt(t, st, conv, 2)
	if _, err := st.Edit(ctx, store.Edit{Conv: conv, Owner: testOwner, Index: 0, Text: "q1 edited", Key: "e0", Rev: stale, Gen: store.NewID()}); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Fatalf("edit naming another message's revision: %v, want ErrNoSuchMessage", err)
	}
	res, err := st.Edit(ctx, store.Edit{Conv: conv, Owner: testOwner, Index: 0, Text: "q1 edited", Key: "e1", Rev: revAt(t, st, conv, 0), Gen: store.NewID()})
	if err != nil || res.UserIndex != 0 {
		t.Fatalf("edit: %+v %v", res, err)
	}
	if dup, err := st.Edit(ctx, store.Edit{Conv: conv, Owner: testOwner, Index: 0, Text: "q1 edited", Key: "e1", Gen: store.NewID()}); err != nil || !dup.Duplicate {
		t.Fatalf("edit again with its key: %+v %v", dup, err)
	}
	if err := st.Switch(ctx, store.Switch{Conv: conv, Owner: testOwner, Index: 0, Version: 1}); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("switch while an answer is written: %v, want ErrBusy", err)
	}
	write(t, st, conv, res.Gen, "b1", store.Ending{})
	wantShown(t, st, conv, "q1 edited 2/2", "b1 1/1")

	// Back to the first version: its branch as it was left, a2's second version.
	if err := st.Switch(ctx, store.Switch{Conv: conv, Owner: testOwner, Index: 0, Version: 1}); err != nil {
		t.Fatal(err)
	}
	wantShown(t, st, conv, "q1 1/2", "a1 1/1", "q2 1/1", "a2 again 2/2")
	if err := st.Switch(ctx, store.Switch{Conv: conv, Owner: testOwner, Index: 3, Version: 1}); err != nil {
		t.Fatal(err)
	}
	wantShown(t, st, conv, "q1 1/2", "a1 1/1", "q2 1/1", "a2 1/2")
	if _, text, err := st.MessageText(ctx, conv, 3); err != nil || text != "a2" {
		t.Fatalf("message 3 after the switch: %q %v", text, err)
	}

	// A cursor from before the edit sees the whole path again (it all
	// changed since); the latest position sees nothing.
	after, err := st.Snapshot(ctx, conv, before.Last)
	if err != nil || after.From != 0 || len(after.Messages) != 4 {
		t.Fatalf("snapshot from before the edit: from %d, %d messages, %v", after.From, len(after.Messages), err)
	}
	if now, _ := st.Snapshot(ctx, conv, after.Last); len(now.Messages) != 0 {
		t.Fatalf("snapshot from the latest position: %d messages", len(now.Messages))
	}
	mid := after.Last
	if err := st.Switch(ctx, store.Switch{Conv: conv, Owner: testOwner, Index: 3, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Snapshot(ctx, conv, mid); s.From != 3 || len(s.Messages) != 1 || s.Messages[0].Text != "a2 again" {
		t.Fatalf("snapshot after a switch at 3: from %d, %+v", s.From, s.Messages)
	}

	// Refusals.
	for _, w := range []store.Switch{{Index: 3, Version: 3}, {Index: 9, Version: 1}, {Index: -1, Version: 1}} {
		w.Conv, w.Owner = conv, testOwner
		if err := st.Switch(ctx, w); !errors.Is(err, store.ErrNoSuchMessage) {
			t.Errorf("switch %+v: %v, want ErrNoSuchMessage", w, err)
		}
	}
	if err := st.Switch(ctx, store.Switch{Conv: conv, Owner: "someone else", Index: 0, Version: 2}); !errors.Is(err, store.ErrForbidden) {
		t.Errorf("switch by another browser: %v", err)
	}
	if _, err := st.Edit(ctx, store.Edit{Conv: conv, Owner: testOwner, Index: 1, Text: "x", Key: "e2", Gen: store.NewID()}); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Errorf("edit of an answer: %v", err)
	}
}

// TestPageReadsThePath: SnapshotKnown (the page's read) shows the path, with
// versions and models, and skips the messages held at their revision.
func TestPageReadsThePath(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	answer(t, st, conv, "q1", "a1", true)
	snap, _ := st.Snapshot(ctx, conv, store.ID{})
	gen := store.NewID()
	if _, err := st.Regenerate(ctx, store.Regen{Conv: conv, Owner: testOwner, Gen: gen, Index: 1, Rev: snap.Messages[1].Rev, Model: "m2"}); err != nil {
		t.Fatal(err)
	}
	write(t, st, conv, gen, "a1 again", store.Ending{})
	page, err := st.SnapshotKnown(ctx, conv, []string{snap.Messages[0].Rev, snap.Messages[1].Rev})
	if err != nil {
		t.Fatal(err)
	}
	if !page.Messages[0].Known || page.Messages[1].Known {
		t.Fatalf("held: %+v", page.Messages)
	}
	if m := page.Messages[1]; m.Text != "a1 again" || m.Version != 2 || m.Versions != 2 || m.Model != "m2" {
		t.Fatalf("regenerated answer on the page: %+v", m)
	}
}

// TestContinueAppendsToACutAnswer: an answer ended at the length limit is
// Cut; continuing it streams it again with its text kept, and it ends as one
// answer.
func TestContinueAppendsToACutAnswer(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "q", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	write(t, st, conv, res.Gen, "first half", store.Ending{Cut: true})
	snap, _ := st.Snapshot(ctx, conv, store.ID{})
	if !snap.Messages[1].Cut {
		t.Fatalf("answer ended at the length limit is not Cut: %+v", snap.Messages[1])
	}
	gen := store.NewID()
	n, ok, err := st.Continue(ctx, store.Continuation{Conv: conv, Owner: testOwner, Gen: gen, Rev: snap.Messages[1].Rev})
	if err != nil || !ok || n != len("first half") {
		t.Fatalf("continue: %d %v %v", n, ok, err)
	}
	if _, ok, err := st.Continue(ctx, store.Continuation{Conv: conv, Owner: testOwner, Gen: store.NewID(), Rev: snap.Messages[1].Rev}); ok || !errors.Is(err, store.ErrBusy) {
		t.Fatalf("continue again while it is written: %v %v", ok, err)
	}
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: ", second half", Offset: n}); err != nil {
		t.Fatal(err)
	}
	if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: gen, Status: store.StatusDone}); err != nil {
		t.Fatal(err)
	}
	wantShown(t, st, conv, "q 1/1", "first half, second half 1/1")
	if _, ok, err := st.Continue(ctx, store.Continuation{Conv: conv, Owner: testOwner, Gen: store.NewID(), Rev: snap.Messages[1].Rev}); ok || err != nil {
		t.Fatalf("continue with the revision before: %v %v", ok, err)
	}
	now, _ := st.Snapshot(ctx, conv, store.ID{})
	if _, _, err := st.Continue(ctx, store.Continuation{Conv: conv, Owner: testOwner, Gen: store.NewID(), Rev: now.Messages[1].Rev}); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Fatalf("continue of an answer that is not cut: %v", err)
	}
}

// TestSettingsAndNotes: a conversation's model and instructions, and a
// note on the answer being written, are in every snapshot.
func TestSettingsAndNotes(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "q", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Note(ctx, conv, res.Gen, "Retrying in 2 s"); err != nil {
		t.Fatal(err)
	}
	if err := st.Note(ctx, conv, store.NewID(), "x"); !errors.Is(err, store.ErrStale) {
		t.Fatalf("note by another generation: %v", err)
	}
	model, sys := "m2", "Answer in French."
	if err := st.SetSettings(ctx, store.SettingsChange{Conv: conv, Owner: testOwner, Model: &model, Instructions: &sys}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetSettings(ctx, store.SettingsChange{Conv: conv, Owner: "other", Model: &model}); !errors.Is(err, store.ErrForbidden) {
		t.Fatalf("settings by another browser: %v", err)
	}
	snap, _ := st.Snapshot(ctx, conv, store.ID{})
	want := store.Settings{Model: "m2", Instructions: sys, InstructionsSet: true}
	if snap.Settings != want || snap.Messages[1].Error != "Retrying in 2 s" {
		t.Fatalf("snapshot: %+v, answer %+v", snap.Settings, snap.Messages[1])
	}
	if err := st.SetSettings(ctx, store.SettingsChange{Conv: conv, Owner: testOwner, ResetInstructions: true}); err != nil {
		t.Fatal(err)
	}
	page, _ := st.SnapshotKnown(ctx, conv, nil)
	if page.Settings != (store.Settings{Model: "m2"}) {
		t.Fatalf("page after reset: %+v", page.Settings)
	}
}

// TestExportHoldsEveryVersion: Export reads every node of the tree with its
// parent, children, model and status, and the path.
func TestExportHoldsEveryVersion(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	answer(t, st, conv, "q1", "a1", true)
	res, err := st.Edit(ctx, store.Edit{Conv: conv, Owner: testOwner, Index: 0, Text: "q1b", Key: "e", Rev: revAt(t, st, conv, 0), Gen: store.NewID(), Model: "m2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "partial", Offset: 0}); err != nil {
		t.Fatal(err)
	}
	tr, err := st.Export(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Nodes) != 4 || !reflect.DeepEqual(tr.Roots, []int{0, 2}) || !reflect.DeepEqual(tr.Path, []int{2, 3}) {
		t.Fatalf("tree: %d nodes, roots %v, path %v", len(tr.Nodes), tr.Roots, tr.Path)
	}
	if n := tr.Nodes[3]; n.Text != "partial" || n.Status != store.StatusStreaming || n.Model != "m2" || n.Parent != 2 || n.At.IsZero() {
		t.Fatalf("streaming answer: %+v", n)
	}
	if n := tr.Nodes[0]; !reflect.DeepEqual(n.Kids, []int{1}) || n.Parent != -1 || tr.Nodes[1].Model != "m1" {
		t.Fatalf("first question: %+v, first answer %+v", n, tr.Nodes[1])
	}
	if _, err := st.Export(ctx, store.NewID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("export of nothing: %v", err)
	}
}

// TestConversationFromBeforeTheTree: a conversation stored before versions
// existed (message i at position i, no path) reads as it did, and the first
// change gives it its tree.
func TestConversationFromBeforeTheTree(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	p := "{c:" + conv + "}:"
	rdb.HSet(ctx, p+"meta", "count", 4, "last", "1-4", "active", "", "owner", testOwner, "title", "old")
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: p + "log", ID: "1-2", Values: []any{"t", "end"}})
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: p + "log", ID: "1-4", Values: []any{"t", "end"}})
	for i, f := range [][3]string{{"user", "q1", "1-1"}, {"assistant", "a1", "1-2"}, {"user", "q2", "1-3"}, {"assistant", "a2", "1-4"}} {
		n := fmt.Sprint(i)
		rdb.HSet(ctx, p+"msgs", n+".role", f[0], n+".text", f[1], n+".status", "done", n+".error", "", n+".rev", f[2])
	}
	wantShown(t, st, conv, "q1 1/1", "a1 1/1", "q2 1/1", "a2 1/1")
	if s, _ := st.Snapshot(ctx, conv, store.ID{Ms: 1, Seq: 2}); s.From != 2 {
		t.Fatalf("snapshot from 1-2 of the old conversation: from %d", s.From)
	}
	if _, err := st.Edit(ctx, store.Edit{Conv: conv, Owner: testOwner, Index: 2, Text: "q2b", Key: "e", Rev: "1-3", Gen: store.NewID()}); err != nil {
		t.Fatal(err)
	}
	wantShown(t, st, conv, "q1 1/1", "a1 1/1", "q2b 2/2", " 1/1")
	tr, err := st.Export(ctx, conv)
	if err != nil || len(tr.Nodes) != 6 || tr.Nodes[4].Parent != 1 || !reflect.DeepEqual(tr.Nodes[1].Kids, []int{2, 4}) {
		t.Fatalf("tree of the upgraded conversation: %+v %v", tr, err)
	}
}

// TestProvisionalTitle: a title made of the first words while no answer had
// text is replaced by the first generated one; a chosen or generated title
// is kept.
func TestProvisionalTitle(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	answer(t, st, conv, "q1", "a1", true)
	set := func(title store.Title, wantOK bool, want string) {
		t.Helper()
		title.Conv = conv
		ok, err := st.SetTitle(ctx, title)
		meta, _ := st.Meta(ctx, conv)
		if err != nil || ok != wantOK || meta.Title != want || (ok && meta.TitleProvisional != title.Provisional) {
			t.Fatalf("set %+v: ok %v err %v, title %q provisional %v; want ok %v title %q", title, ok, err, meta.Title, meta.TitleProvisional, wantOK, want)
		}
	}
	set(store.Title{Text: "first words", IfEmpty: true, Provisional: true}, true, "first words")
	set(store.Title{Text: "better words", IfEmpty: true, Provisional: true}, true, "better words")
	set(store.Title{Text: "Generated", IfEmpty: true}, true, "Generated")
	set(store.Title{Text: "Another", IfEmpty: true}, false, "Generated")
	set(store.Title{Text: "Mine", Owner: testOwner}, true, "Mine")
	set(store.Title{Text: "Generated again", IfEmpty: true}, false, "Mine")
	if role, text, err := st.MessageText(ctx, conv, 1); err != nil || role != store.RoleAssistant || text != "a1" {
		t.Fatalf("message 1: %q %q %v", role, text, err)
	}
	if _, _, err := st.MessageText(ctx, conv, 2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("message 2 of 2: %v", err)
	}
}

// TestContinuationThatFailsKeepsTheAnswer: a continuation that fails, is
// cut off or is stopped leaves the answer it went on with as it was (done,
// or stopped), still cut and continuable, with what it added and why it
// ended; the bytes it added are counted once.
func TestContinuationThatFailsKeepsTheAnswer(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "q", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	write(t, st, conv, res.Gen, "first", store.Ending{Cut: true})
	for _, e := range []store.Ending{
		{Status: store.StatusFailed, Error: "the model provider is unavailable"},
		{Status: store.StatusInterrupted, Error: "cut off"},
		{Status: store.StatusStopped},
	} {
		gen := store.NewID()
		n, ok, err := st.Continue(ctx, store.Continuation{Conv: conv, Owner: testOwner, Gen: gen, Rev: revAt(t, st, conv, 1)})
		if err != nil || !ok {
			t.Fatalf("continue before %s: %v %v", e.Status, ok, err)
		}
		write(t, st, conv, gen, "+", e)
		if added, err := st.LastAnswerBytes(ctx, conv); err != nil || added != 1 {
			t.Errorf("bytes the continuation added: %d %v, want 1", added, err)
		}
		snap, _ := st.Snapshot(ctx, conv, store.ID{})
		a := snap.Messages[1]
		want := store.StatusDone
		if e.Status == store.StatusStopped {
			want = store.StatusStopped
		}
		if a.Status != want || !a.Cut || a.Error != e.Error || len(a.Text) != n+1 {
			t.Errorf("after a continuation that ended %s: %+v", e.Status, a)
		}
	}
}
