package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/store"
)

func TestOwnerChannel(t *testing.T) {
	t.Parallel()
	ch := store.OwnerChannel(testOwner)
	if ch != "parley:o:"+testOwner+":n" {
		t.Fatalf("OwnerChannel = %q", ch)
	}
	if owner, ok := store.OwnerOf(ch); !ok || owner != testOwner {
		t.Fatalf("OwnerOf(%q) = %q %v", ch, owner, ok)
	}
	for _, bad := range []string{"", "parley:o::n", "parley:o:x", "x:n", store.Channel(store.NewID()), "parley:probe:x"} {
		if owner, ok := store.OwnerOf(bad); ok {
			t.Errorf("OwnerOf(%q) = %q, true", bad, owner)
		}
	}
}

// ownerNotices is a subscription to owners' channels. A marker published
// by the test itself proves that nothing came before it.
type ownerNotices struct {
	t   *testing.T
	rdb *redis.Client
	ps  *redis.PubSub
}

func subscribeOwners(t *testing.T, rdb *redis.Client, owners ...string) *ownerNotices {
	t.Helper()
	var chans []string
	for _, o := range owners {
		chans = append(chans, store.OwnerChannel(o))
	}
	ps := rdb.Subscribe(context.Background(), chans...)
	t.Cleanup(func() { _ = ps.Close() })
	for range chans {
		if _, err := ps.Receive(context.Background()); err != nil { // confirmed
			t.Fatal(err)
		}
	}
	return &ownerNotices{t: t, rdb: rdb, ps: ps}
}

// next returns the next notice's channel and payload.
func (n *ownerNotices) next(what string) (string, string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := n.ps.ReceiveMessage(ctx)
	if err != nil {
		n.t.Fatalf("%s: no notice: %v", what, err)
	}
	return msg.Channel, msg.Payload
}

// rang checks that the next notice is one on owner's channel.
func (n *ownerNotices) rang(owner, what string) {
	n.t.Helper()
	ch, payload := n.next(what)
	if ch != store.OwnerChannel(owner) || payload != "list" {
		n.t.Fatalf("%s: notice %q on %s, want \"list\" on %s", what, payload, ch, store.OwnerChannel(owner))
	}
}

// silent checks that nothing came on owner's channel since the last notice.
func (n *ownerNotices) silent(owner, what string) {
	n.t.Helper()
	if err := n.rdb.Publish(context.Background(), store.OwnerChannel(owner), "marker").Err(); err != nil {
		n.t.Fatal(err)
	}
	if ch, payload := n.next(what); payload != "marker" {
		n.t.Fatalf("%s: notice %q on %s, want none", what, payload, ch)
	}
}

// TestOwnerListChangesRingTheOwner: every change of an owner's list (an
// entry added or moved up, a title set by the owner or generated, a
// deletion) rings that owner's channel, and only once the change is in
// Redis: a process that reads the list on the notice sees it. Changes that
// change nothing, and other owners' changes, ring nothing.
func TestOwnerListChangesRingTheOwner(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{})
	ctx := context.Background()
	const other = "BBBBBBBBBBBBBBBBBBBBBB"
	n := subscribeOwners(t, rdb, testOwner, other)
	inList := func(conv, title string) bool {
		list, err := st.List(ctx, testOwner, 50)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(list, func(s store.Summary) bool { return s.ID == conv && s.Title == title })
	}

	conv := store.NewID()
	if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hello", Key: "k", Gen: store.NewID(), Create: true}); err != nil {
		t.Fatal(err)
	}
	n.silent(testOwner, "post (the handler's Touch lists it)")
	if err := st.Touch(ctx, conv, testOwner); err != nil {
		t.Fatal(err)
	}
	n.rang(testOwner, "touch")
	if !inList(conv, "") {
		t.Fatal("touch rang before the conversation was listed")
	}

	// The generated title: SetTitle without an owner, the script knows it.
	if ok, err := st.SetTitle(ctx, store.Title{Conv: conv, Text: "Generated", IfEmpty: true}); err != nil || !ok {
		t.Fatalf("generated title: %v %v", ok, err)
	}
	n.rang(testOwner, "generated title")
	if !inList(conv, "Generated") {
		t.Fatal("the title rang before it was stored")
	}
	if ok, err := st.SetTitle(ctx, store.Title{Conv: conv, Text: "Generated again", IfEmpty: true}); err != nil || ok {
		t.Fatalf("second generated title: %v %v", ok, err)
	}
	n.silent(testOwner, "a generated title that kept the one there")
	if _, err := st.SetTitle(ctx, store.Title{Conv: conv, Owner: other, Text: "Not yours"}); err == nil {
		t.Fatal("another owner renamed the conversation")
	}
	n.silent(testOwner, "a refused rename")
	n.silent(other, "a refused rename")

	if ok, err := st.SetTitle(ctx, store.Title{Conv: conv, Owner: testOwner, Text: "Renamed"}); err != nil || !ok {
		t.Fatalf("rename: %v %v", ok, err)
	}
	n.rang(testOwner, "rename")
	if !inList(conv, "Renamed") {
		t.Fatal("the rename rang before it was stored")
	}

	if err := st.Delete(ctx, conv, testOwner); err != nil {
		t.Fatal(err)
	}
	n.rang(testOwner, "delete")
	if members, err := rdb.ZRange(ctx, "parley:o:"+testOwner, 0, -1).Result(); err != nil || len(members) != 0 {
		t.Fatalf("delete rang before the list entry was removed: %v %v", members, err)
	}
	n.silent(other, "another owner's changes")
}
