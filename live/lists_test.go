package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// listHub is a hub on a private redis-server, with what list tests need.
type listHub struct {
	h   *Hub
	st  *store.Store
	rdb *redis.Client
	srv *testredis.Server
	ctx context.Context
}

func newListHub(t *testing.T, cfg Config) *listHub {
	t.Helper()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Config{LogMaxLen: 1000, LeaseTTL: time.Minute, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.ViewerQueue == 0 {
		cfg.ViewerQueue = 8
	}
	if cfg.MaxViewers == 0 {
		cfg.MaxViewers = 100
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Hour
	}
	cfg.SubscribeTimeout = 5 * time.Second
	h := NewHub(rdb, st, markdown.NewRenderer(), log, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &listHub{h: h, st: st, rdb: rdb, srv: srv, ctx: ctx}
}

// silentConversation stores a conversation of owner and puts it in the
// owner's list without ringing the owner's channel: a change whose notice
// was lost.
func (lh *listHub) silentConversation(t *testing.T, owner, text string) string {
	t.Helper()
	conv := store.NewID()
	if _, err := lh.st.Post(lh.ctx, store.Post{Conv: conv, Owner: owner, Text: text, Key: "k", Gen: store.NewID(), Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := lh.rdb.ZAdd(lh.ctx, "parley:o:"+owner, redis.Z{Score: float64(time.Now().UnixMilli()), Member: conv}).Err(); err != nil {
		t.Fatal(err)
	}
	return conv
}

func listed(l *listRoom, conv string) bool {
	list, _ := l.latest()
	return slices.ContainsFunc(list, func(s store.Summary) bool { return s.ID == conv })
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// roomViewers is the number of viewers in conv's room here.
func roomViewers(h *Hub, conv string) int {
	h.mu.Lock()
	r := h.rooms[conv]
	h.mu.Unlock()
	if r == nil {
		return 0
	}
	return r.viewerCount()
}

// TestListRoomReadsAgainAfterResubscription: notices sent while the
// subscription is down are lost, so every re-confirmation of an owner's
// channel makes its list room read the list, after go-redis reconnects (the
// connection killed) and after the hub rebuilds the subscription (a silent
// one). A change whose notice never came shows up either way; the sidebar
// stream, which cannot tell what it missed, is cut so that its page retries.
func TestListRoomReadsAgainAfterResubscription(t *testing.T) {
	t.Parallel()
	lh := newListHub(t, Config{})
	const owner = testOwner
	l, err := lh.h.joinList(lh.ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer lh.h.leaveList(l)
	waitUntil(t, "the first read", func() bool { _, v := l.latest(); return v == 1 })

	sideErr := make(chan error, 1)
	go func() {
		sideErr <- lh.h.WatchSidebar(lh.ctx, owner, func() (Stream, error) { return &lockedBuf{}, nil })
	}()
	waitUntil(t, "the sidebar viewer", func() bool { return lh.h.Stats().Viewers == 1 })

	missed := lh.silentConversation(t, owner, "written while nobody listened")
	if listed(l, missed) {
		t.Fatal("the list was read again without a notice: the test proves nothing")
	}
	reads := lh.h.Stats().ListReads
	if _, err := testredis.Command(lh.srv.Addr, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sideErr:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("sidebar stream after the subscription broke: %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sidebar stream went on over a broken subscription")
	}
	waitUntil(t, "the conversation missed while the subscription was down", func() bool { return listed(l, missed) })
	if got := lh.h.Stats().ListReads; got <= reads {
		t.Fatalf("list reads %d after the resubscription, %d before", got, reads)
	}

	// A silent subscription is rebuilt on a new connection, which must
	// subscribe the owner's channel too.
	missed2 := lh.silentConversation(t, owner, "written while the subscription was silent")
	renewSubscription(lh.ctx, lh.h)
	waitUntil(t, "the conversation missed before the rebuild", func() bool { return listed(l, missed2) })
	if err := lh.st.Touch(lh.ctx, lh.silentConversation(t, owner, "after the rebuild"), owner); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a notice on the rebuilt subscription", func() bool {
		list, _ := l.latest()
		return len(list) == 3
	})
	chans, err := lh.rdb.PubSubNumSub(lh.ctx, store.OwnerChannel(owner)).Result()
	if err != nil || chans[store.OwnerChannel(owner)] != 1 {
		t.Fatalf("subscribers of the owner's channel after the rebuild: %v %v, want 1", chans, err)
	}
}

// TestListReadOncePerNoticeForAllViewers: however many viewers of an owner a
// process has, a change costs one read of the list, and one channel.
func TestListReadOncePerNoticeForAllViewers(t *testing.T) {
	t.Parallel()
	lh := newListHub(t, Config{})
	const owner = testOwner
	const n = 20
	var rooms []*listRoom
	var viewers []*listViewer
	for range n {
		l, err := lh.h.joinList(lh.ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		defer lh.h.leaveList(l)
		v := newListViewer()
		l.addViewer(v)
		rooms, viewers = append(rooms, l), append(viewers, v)
	}
	if rooms[0] != rooms[n-1] || lh.h.Stats().Lists != 1 {
		t.Fatalf("%d viewers of one owner: %+v, want one list room", n, lh.h.Stats())
	}
	waitUntil(t, "one channel besides the probe", func() bool { return lh.h.Stats().Subscriptions == 2 })
	l := rooms[0]
	waitUntil(t, "the first read", func() bool { _, v := l.latest(); return v == 1 })
	for _, v := range viewers { // forget the first read's wake-ups
		select {
		case <-v.wake:
		default:
		}
	}

	conv := store.NewID()
	if _, err := lh.st.Post(lh.ctx, store.Post{Conv: conv, Owner: owner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := lh.st.Touch(lh.ctx, conv, owner); err != nil {
		t.Fatal(err)
	}
	for i, v := range viewers {
		select {
		case <-v.wake:
		case <-time.After(10 * time.Second):
			t.Fatalf("viewer %d was not woken by the notice", i)
		}
	}
	if !listed(l, conv) {
		t.Fatal("the woken viewers' list lacks the new conversation")
	}
	if s := lh.h.Stats(); s.ListReads != 2 {
		t.Fatalf("%d list reads for one join and one notice with %d viewers, want 2", s.ListReads, n)
	}
}

// TestSidebarStream: the sidebar stream writes the list at once, heartbeats
// when quiet, counts against the viewer limit and releases its channel.
func TestSidebarStream(t *testing.T) {
	t.Parallel()
	lh := newListHub(t, Config{MaxViewers: 1, Heartbeat: 20 * time.Millisecond})
	const owner = testOwner
	conv := store.NewID()
	if _, err := lh.st.Post(lh.ctx, store.Post{Conv: conv, Owner: owner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := lh.st.Touch(lh.ctx, conv, owner); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuf{}
	ctx, cancel := context.WithCancel(lh.ctx)
	done := make(chan error, 1)
	go func() { done <- lh.h.WatchSidebar(ctx, owner, func() (Stream, error) { return out, nil }) }()
	waitUntil(t, "the list and heartbeats", func() bool {
		s := out.String()
		return strings.Contains(s, `id="side-list"`) && strings.Contains(s, "/c/"+conv) && strings.Count(s, ": keepalive") >= 2
	})
	if strings.Contains(out.String(), "id: ") {
		t.Fatal("a sidebar frame has an SSE id: it is not a log position")
	}
	if err := lh.h.WatchSidebar(lh.ctx, owner, func() (Stream, error) { return out, nil }); !errors.Is(err, ErrTooManyViewers) {
		t.Fatalf("a second stream past MaxViewers 1: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("sidebar stream ended with %v", err)
	}
	waitUntil(t, "the owner's channel released", func() bool {
		s := lh.h.Stats()
		return s.Lists == 0 && s.Subscriptions == 1 && s.Viewers == 0
	})
}

// TestSidebarFrame: the viewer's own conversation keeps the fixed ids and
// the title its page shows, and is listed even when older than the list;
// someone else's is not in the list.
func TestSidebarFrame(t *testing.T) {
	t.Parallel()
	list := []store.Summary{{ID: "aaaa", Title: "First"}, {ID: "bbbb", Title: "Second"}}
	own := string(sidebarFrame(list, "bbbb", "Renamed", false))
	if !strings.Contains(own, `id="side-current"`) || !strings.Contains(own, `<span id="side-current-title">Renamed</span>`) ||
		strings.Contains(own, "Second") || strings.Index(own, "First") > strings.Index(own, "Renamed") {
		t.Errorf("own conversation in the list: %s", own)
	}
	older := string(sidebarFrame(list, "cccc", "Old one", false))
	if !strings.Contains(older, `href="/c/cccc"`) || !strings.Contains(older, `id="side-current-title">Old one<`) ||
		strings.Index(older, "Old one") > strings.Index(older, "First") {
		t.Errorf("own conversation older than the list is not first: %s", older)
	}
	watched := string(sidebarFrame(list, "cccc", "Theirs", true))
	if strings.Contains(watched, "side-current") || strings.Contains(watched, "cccc") {
		t.Errorf("someone else's conversation in the list: %s", watched)
	}
	if home := string(sidebarFrame(nil, "", "", false)); !strings.Contains(home, `id="side-list"`) || strings.Contains(home, "side-current") {
		t.Errorf("empty list: %s", home)
	}
	// A full list links to the older ones only when there are some: the
	// list is read one longer than it shows.
	var full []store.Summary
	for i := range ListSize + 1 {
		full = append(full, store.Summary{ID: fmt.Sprintf("c%03d", i), Title: "t"})
	}
	if exact := string(sidebarFrame(full[:ListSize], "", "", false)); strings.Contains(exact, "Older conversations") {
		t.Error("a list of exactly ListSize links to older conversations")
	}
	more := string(sidebarFrame(full, "", "", false))
	if !strings.Contains(more, "Older conversations") || strings.Contains(more, fmt.Sprintf(`href="/c/c%03d"`, ListSize)) {
		t.Error("a list longer than ListSize does not link to older conversations, or shows the one past its end")
	}
}

// lockedBuf is a Stream tests read while it is written.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	return nil
}
func (l *lockedBuf) Flush() error { return nil }
func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// renewSubscription replaces every connection of h's subscription, as the
// probe does with a silent one.
func renewSubscription(ctx context.Context, h *Hub) {
	h.mu.Lock()
	conn := h.conn
	h.mu.Unlock()
	for _, p := range conn.Probes() {
		conn.Renew(ctx, p)
	}
}
