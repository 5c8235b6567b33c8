package live

// Owner lists: the sidebar of a browser's conversations, live in its tabs.
//
// Why a room per owner and not a subscription per viewer: a browser's
// conversation list changes in another tab (a new conversation, a rename, a
// generated title, a deletion), and every open tab of that browser must show
// it. Each change rings the owner's channel, parley:o:OWNER:n (store.Touch,
// SetTitle, Delete). A process subscribes to it once, on the hub's one
// subscription, while any of its viewers belong to that owner; on each
// notice, and on each re-confirmation of the channel (a reconnect may have
// lost notices), the list room reads the list from Redis ONCE and wakes its
// viewers, each of which renders its own sidebar from it (they differ by the
// conversation on their page): a template per viewer, a Redis read per room.
// The list is state, not deltas: a frame is the whole list as of now, so a
// notice lost, doubled or coalesced costs nothing but a read.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// ListSize is how many conversations a sidebar lists, as the page does.
const ListSize = views.SidebarSize

// listReadTimeout bounds one read of an owner's list.
const listReadTimeout = 5 * time.Second

// listRoom is one owner's conversation list as this process sees it.
type listRoom struct {
	hub   *Hub
	owner string

	// Guarded by hub.mu.
	refs int

	confirmed   chan struct{}
	confirmOnce atomic.Bool
	ctx         context.Context
	cancel      context.CancelFunc
	wake        chan struct{} // a notice or a re-confirmation: read again
	retryAt     atomic.Bool   // a retry timer is pending

	mu      sync.Mutex
	list    []store.Summary // as of the last read; never changed in place
	version uint64          // reads so far; 0 until the first one
	viewers map[*listViewer]struct{}
}

// listViewer is a stream that shows an owner's list.
type listViewer struct {
	wake chan struct{} // the list changed: the viewer reads the latest
	sent uint64        // version of the list it wrote last; owned by its stream
}

func newListViewer() *listViewer { return &listViewer{wake: make(chan struct{}, 1)} }

func newListRoom(h *Hub, owner string) *listRoom {
	ctx, cancel := context.WithCancel(h.ctx)
	return &listRoom{
		hub: h, owner: owner,
		confirmed: make(chan struct{}),
		ctx:       ctx, cancel: cancel,
		wake:    make(chan struct{}, 1),
		viewers: map[*listViewer]struct{}{},
	}
}

// poke asks for a read without ever blocking the subscription: pokes that
// come while one is pending are one read.
func (l *listRoom) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *listRoom) run() {
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.wake:
			l.read()
		}
	}
}

// read reads the list once for every viewer, then wakes them.
func (l *listRoom) read() {
	ctx, cancel := context.WithTimeout(l.ctx, listReadTimeout)
	defer cancel()
	// One more than a sidebar lists: to know that there are older ones.
	list, err := l.hub.store.List(ctx, l.owner, ListSize+1)
	if err != nil {
		l.retryLater(err)
		return
	}
	l.hub.listReads.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = list
	l.version++
	for v := range l.viewers {
		select {
		case v.wake <- struct{}{}:
		default: // already woken: it will read this version
		}
	}
}

// retryLater reads again after a failed read, so that a list never stays
// stale after an outage even if no notice comes.
func (l *listRoom) retryLater(err error) {
	if l.ctx.Err() != nil {
		return
	}
	l.hub.log.Warn("could not read an owner's conversation list; retrying", "err", err)
	if !l.retryAt.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(time.Second, func() {
		l.retryAt.Store(false)
		l.poke()
	})
}

// latest returns the list as of the last read and its version (0: none yet).
func (l *listRoom) latest() ([]store.Summary, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.list, l.version
}

func (l *listRoom) addViewer(v *listViewer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.viewers[v] = struct{}{}
}

func (l *listRoom) removeViewer(v *listViewer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.viewers, v)
}

// listOf returns the list room of an owner channel, nil when none is open.
func (h *Hub) listOf(channel string) *listRoom {
	owner, ok := store.OwnerOf(channel)
	if !ok {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lists[owner]
}

// listConfirmed handles a SUBSCRIBE confirmation of an owner channel: the
// first lets joins go on, and every one (a later one follows a reconnect,
// during which notices were lost) makes the room read the list.
func (l *listRoom) listConfirmed() {
	if l.confirmOnce.CompareAndSwap(false, true) {
		close(l.confirmed)
	}
	l.poke()
}

// openList opens (or shares) owner's list room without waiting for its
// channel: the room reads the list once the channel is subscribed, and wakes
// the viewers it has by then. The hub must be running.
func (h *Hub) openList(owner string) (*listRoom, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return nil, ErrShutdown
	}
	l := h.lists[owner]
	if l == nil {
		l = newListRoom(h, owner)
		h.lists[owner] = l
		h.enqueue(subOp{subscribe: true, channel: store.OwnerChannel(owner)})
		go l.run()
	}
	l.refs++
	return l, nil
}

// joinList is openList, then waits until the channel is subscribed: from
// then on every change rings it, and the room has read the list or is
// about to.
func (h *Hub) joinList(ctx context.Context, owner string) (*listRoom, error) {
	select {
	case <-h.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l, err := h.openList(owner)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(h.cfg.SubscribeTimeout)
	defer t.Stop()
	select {
	case <-l.confirmed:
		return l, nil
	case <-ctx.Done():
		h.leaveList(l)
		return nil, ctx.Err()
	case <-h.ctx.Done():
		h.leaveList(l)
		return nil, ErrShutdown
	case <-t.C:
		h.leaveList(l)
		h.log.Warn("redis subscribe of an owner's list not confirmed in time", "timeout", h.cfg.SubscribeTimeout)
		return nil, ErrUnavailable
	}
}

// leaveList drops one reference to l; the last one closes the room and
// releases its channel.
func (h *Hub) leaveList(l *listRoom) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l.refs--
	if l.refs > 0 {
		return
	}
	if h.lists[l.owner] == l {
		delete(h.lists, l.owner)
		h.enqueue(subOp{subscribe: false, channel: store.OwnerChannel(l.owner)})
	}
	l.cancel()
}

// sidebar is what a stream needs to write its viewer's sidebar.
type sidebar struct {
	room    *listRoom
	v       *listViewer
	current string // the conversation on the viewer's page, "" for none
	// watching: the current conversation is someone else's, listed apart
	// (views.SidebarView), not in the list.
	watching bool
}

// join makes s's viewer one of its room's; the returned func undoes it.
func (s *sidebar) join() func() {
	s.room.addViewer(s.v)
	return func() { s.room.removeViewer(s.v) }
}

// wakeC is the channel that says the list changed; nil (never ready) for a
// stream without a sidebar.
func (s *sidebar) wakeC() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.v.wake
}

// pending returns the frame of the latest list when the viewer has not been
// written it yet, nil otherwise. title is the current conversation's title
// as the viewer's page shows it (its conversation frames set it).
func (s *sidebar) pending(title string) []byte {
	if s == nil {
		return nil
	}
	list, version := s.room.latest()
	if version == 0 || version == s.v.sent {
		return nil
	}
	s.v.sent = version
	return sidebarFrame(list, s.current, title, s.watching)
}

// sidebarFrame renders one viewer's list: a merge of the whole
// <ul id="side-list">, so applying it twice, or out of turn with the
// conversation's title frames, leaves the same page. It has no SSE id: it is
// not a position in any log. The viewer's own conversation on the page keeps
// the fixed ids the title frames patch, with the title the page shows, and
// it is listed first when it is older than the list's newest ListSize.
func sidebarFrame(list []store.Summary, current, title string, watching bool) []byte {
	side := views.Sidebar{Current: current, CurrentTitle: title, Watching: watching,
		Conversations: make([]views.Summary, 0, len(list)+1)}
	if len(list) > ListSize {
		list, side.More = list[:ListSize], true
	}
	own := current != "" && !watching
	found := false
	for _, c := range list {
		t := c.Title
		if own && c.ID == current {
			found, t = true, title
		}
		side.Conversations = append(side.Conversations, views.Summary{ID: c.ID, Title: t, Updated: c.Updated})
	}
	if own && !found {
		side.Conversations = append([]views.Summary{{ID: current, Title: title}}, side.Conversations...)
	}
	var sb strings.Builder
	renderTo(context.Background(), &sb, views.SideList(side))
	return frame.Merge("", sb.String())
}

// WatchSidebar streams owner's conversation list to one viewer (a page
// without a conversation stream, which would carry it), until ctx is done,
// the hub shuts down (ErrShutdown) or the subscription breaks
// (ErrUnavailable): it writes the list at once and again whenever it
// changes, with heartbeats on a quiet stream. It counts against MaxViewers.
//
// open is called once the owner's channel is subscribed, to start the
// response; errors returned before that can still become an HTTP status.
func (h *Hub) WatchSidebar(ctx context.Context, owner string, open func() (Stream, error)) error {
	if owner == "" {
		return errors.New("watch sidebar: no owner")
	}
	if n := h.viewers.Add(1); h.cfg.MaxViewers > 0 && n > int64(h.cfg.MaxViewers) {
		h.viewers.Add(-1)
		return ErrTooManyViewers
	}
	var u undo
	defer func() { u.run() }()
	u.add(func() { h.viewers.Add(-1) })

	lost := h.lostSignal()
	l, err := h.joinList(ctx, owner)
	if err != nil {
		return err
	}
	u.add(func() { h.leaveList(l) })
	side := &sidebar{room: l, v: newListViewer()}
	u.add(side.join())

	stream, err := open()
	if err != nil {
		return err
	}
	st := h.newViewerStream(stream, false, nil, side)
	return h.serve(ctx, stream, st, lost, &u, func() error {
		// The list as read by now, if it has been; otherwise the room's
		// first read wakes this viewer.
		if f := side.pending(""); f != nil {
			if err := st.wr.Raw(f, true); err != nil {
				return err
			}
		}
		return st.out.Flush()
	})
}
