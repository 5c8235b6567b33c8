package store_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
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

// TestListPagesAndSearch: an owner's whole list comes page by page, each
// conversation once, the last page saying there is nothing older; a search
// finds titles whatever their letters' case, up to its limit.
func TestListPagesAndSearch(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{})
	ctx := context.Background()
	const n = 260
	tides := 0
	for i := range n {
		conv := store.NewID()
		if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hello", Key: "k", Gen: store.NewID(), Create: true}); err != nil {
			t.Fatal(err)
		}
		if err := st.Touch(ctx, conv, testOwner); err != nil {
			t.Fatal(err)
		}
		title := "Topic " + strconv.Itoa(i)
		if i%10 == 0 {
			title, tides = "What makes the Tides "+strconv.Itoa(i), tides+1
		}
		if _, err := st.SetTitle(ctx, store.Title{Conv: conv, Text: title, IfEmpty: true}); err != nil {
			t.Fatal(err)
		}
	}

	seen := map[string]bool{}
	for offset, page := 0, 0; ; offset, page = offset+100, page+1 {
		list, more, err := st.ListFrom(ctx, testOwner, offset, 100)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range list {
			if seen[c.ID] {
				t.Fatalf("page %d lists %s twice", page, c.ID)
			}
			seen[c.ID] = true
			if i > 0 && c.Updated.After(list[i-1].Updated) {
				t.Errorf("page %d is not newest first at %d", page, i)
			}
		}
		if want := min(100, n-offset); len(list) != want {
			t.Fatalf("page %d has %d conversations, want %d", page, len(list), want)
		}
		if more != (offset+100 < n) {
			t.Fatalf("page %d: more = %v", page, more)
		}
		if !more {
			break
		}
	}
	if len(seen) != n {
		t.Fatalf("the pages listed %d conversations, want %d", len(seen), n)
	}

	for _, tt := range []struct {
		query string
		limit int
		want  int
	}{{"tides", 100, tides}, {"TIDES", 10, 10}, {"makes the t", 100, tides}, {"tides what", 100, tides}, {"Topic 251", 100, 1}, {"nothing like it", 10, 0}} {
		got, err := st.Search(ctx, testOwner, tt.query, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Errorf("Search(%q, %d) found %d, want %d", tt.query, tt.limit, len(got), tt.want)
		}
		for _, c := range got {
			for _, w := range strings.Fields(strings.ToLower(tt.query)) {
				if !strings.Contains(strings.ToLower(c.Title), w) {
					t.Errorf("Search(%q) found %q", tt.query, c.Title)
				}
			}
		}
	}
	// Entries of conversations that are gone (expired), newer than all the
	// rest: a search drops them from the index and still skips nothing.
	future := float64(time.Now().Add(time.Hour).UnixMilli())
	for i := range 250 {
		if err := rdb.ZAdd(ctx, "parley:o:"+testOwner, redis.Z{Score: future + float64(i), Member: store.NewID()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := st.Search(ctx, testOwner, "tides", 100); err != nil || len(got) != tides {
		t.Errorf("with 250 gone entries first, the search found %d (%v), want %d", len(got), err, tides)
	}
	if left := rdb.ZCard(ctx, "parley:o:"+testOwner).Val(); left != n {
		t.Errorf("the index holds %d entries after the search, want the %d live ones", left, n)
	}

	// Someone else's list is their own.
	if got, err := st.Search(ctx, "BBBBBBBBBBBBBBBBBBBBBB", "tides", 100); err != nil || len(got) != 0 {
		t.Errorf("another owner's search found %d (%v)", len(got), err)
	}
}
