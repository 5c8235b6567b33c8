package live

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// Frame is one SSE event, rendered once and written to every viewer of a room
// that is up to date. It brings a page from log position From to ID: it holds
// the whole current state of every element that changed in between, so a page
// at any position from From to ID may apply it.
//
// A frame with a zero ID (presence, a deletion) is not a log position: every
// viewer writes it whatever its position, and End ends the stream after it.
type Frame struct {
	From store.ID
	ID   store.ID
	Data []byte
	End  bool
	// Appended is when the generation got the oldest text the frame carries
	// (zero for none): the start of its token-to-frame latency.
	Appended time.Time

	// titled: the frame sets the conversation's title, to title. A viewer
	// keeps the title its page shows for its sidebar frames (lists.go).
	titled bool
	title  string

	z zdata // its compressed forms (gzip.go)
}

// msgState is a message as a room keeps it: an answer keeps its Markdown doc,
// so that a token re-renders only the last block.
type msgState struct {
	conv    string
	rev     string // log ID of the message's last change
	index   int
	role    string
	status  string
	errText string
	text    string        // user messages
	doc     *markdown.Doc // answers
}

func newMsgState(md *markdown.Renderer, conv string, m store.Message) *msgState {
	s := &msgState{conv: conv, rev: m.Rev, index: m.Index, role: m.Role, status: m.Status, errText: m.Error}
	if m.Role == "assistant" {
		s.doc = markdown.NewDoc(md)
		switch {
		case m.Text == "":
		case m.Status == store.StatusStreaming:
			s.doc.Append(m.Text)
		default: // ended: every block is final, and likely rendered before
			s.doc.AppendFinal(m.Text)
		}
	} else {
		s.text = m.Text
	}
	return s
}

func (s *msgState) view() views.Message {
	v := views.Message{Conv: s.conv, Index: s.index, Role: s.role, Status: s.status, Error: s.errText,
		Text: s.text, Rev: s.rev}
	if s.doc != nil {
		v.Blocks = s.doc.Blocks()
	}
	return v
}

// MessageViews renders stored messages for a page or a catch-up frame.
func MessageViews(md *markdown.Renderer, conv string, msgs []store.Message) []views.Message {
	out := make([]views.Message, len(msgs))
	for i, m := range msgs {
		out[i] = newMsgState(md, conv, m).view()
	}
	return out
}

// changes collects what a batch of events changed, to render one frame.
type changes struct {
	newFrom int         // first message added (or replaced) by the batch; -1 when none
	blocks  map[int]int // answer index -> first block that changed
	foot    map[int]bool
	title   bool // the conversation's title changed
	status  bool // an answer started or ended: the page's busy signal changes

	appended time.Time // the oldest token time of the deltas (zero: none known)
}

// noteAppended records the token time of a delta event (Unix ms; 0 unknown).
func (c *changes) noteAppended(ms int64) {
	if t := time.UnixMilli(ms); ms > 0 && (c.appended.IsZero() || t.Before(c.appended)) {
		c.appended = t
	}
}

func newChanges() *changes {
	return &changes{newFrom: -1, blocks: map[int]int{}, foot: map[int]bool{}}
}

func (c *changes) empty() bool {
	return c.newFrom < 0 && len(c.blocks) == 0 && len(c.foot) == 0 && !c.title
}

// replace records that message i (and so its slot) must be re-sent whole.
func (c *changes) replace(i int) {
	if c.newFrom < 0 || i < c.newFrom {
		c.newFrom = i
	}
}

// render writes the fragments for c: patches of the blocks and status lines
// of messages the page already has, then the slot of the new messages (which
// carry their full state, so they need no patch of their own).
func (c *changes) render(msgs []*msgState, title string) string {
	var sb strings.Builder
	ctx := context.Background()
	old := len(msgs)
	if c.newFrom >= 0 {
		old = c.newFrom
	}
	for _, i := range slices.Sorted(maps.Keys(c.blocks)) {
		if i < old {
			renderTo(ctx, &sb, views.Blocks(i, c.blocks[i], msgs[i].doc.Blocks()))
		}
	}
	for _, i := range slices.Sorted(maps.Keys(c.foot)) {
		if i < old {
			renderTo(ctx, &sb, views.Foot(msgs[i].view()))
		}
	}
	if c.newFrom >= 0 {
		vs := make([]views.Message, 0, len(msgs)-c.newFrom)
		for _, m := range msgs[c.newFrom:] {
			vs = append(vs, m.view())
		}
		renderTo(ctx, &sb, views.Slot(c.newFrom, vs))
	}
	if c.title {
		renderTitle(ctx, &sb, title)
	}
	return sb.String()
}

func renderTitle(ctx context.Context, sb *strings.Builder, title string) {
	renderTo(ctx, sb, views.Title(title))
	renderTo(ctx, sb, views.SideTitle(title))
}

// busySignals is the page's busy signal for a conversation whose last
// message has status.
func busySignals(id string, msgs []*msgState) []byte {
	busy := len(msgs) > 0 && msgs[len(msgs)-1].status == store.StatusStreaming
	return frame.Signals(id, "{busy: "+strconv.FormatBool(busy)+"}")
}

// presenceFrame tells viewers how many people watch. It has no ID: it is not
// a position in the log, and viewers write it whatever their position.
func presenceFrame(n int) *Frame {
	return &Frame{Data: frame.Signals("", "{watching: "+strconv.Itoa(n)+"}")}
}

// CatchUp renders the frame that brings a page from position from to the
// snapshot: the slot of the first changed message, holding it and every
// message after it, as they are now.
func CatchUp(md *markdown.Renderer, conv string, from store.ID, snap *store.Snapshot) *Frame {
	var sb strings.Builder
	ctx := context.Background()
	renderTo(ctx, &sb, views.Slot(snap.From, MessageViews(md, conv, snap.Messages)))
	renderTitle(ctx, &sb, snap.Title)
	id := snap.Last.String()
	busy := "{busy: " + strconv.FormatBool(snap.Active != "") + "}"
	data := append(frame.Merge(id, sb.String()), frame.Signals(id, busy)...)
	return &Frame{From: from, ID: snap.Last, Data: data, titled: true, title: snap.Title}
}

func renderTo(ctx context.Context, sb *strings.Builder, c templ.Component) {
	// Rendering into a strings.Builder cannot fail: views do no I/O.
	_ = c.Render(ctx, sb)
}

// deletedFrame replaces a deleted conversation's page content with a notice
// and ends the stream: there is nothing left to watch, and the client does not
// reconnect after a clean end.
func deletedFrame() *Frame {
	var sb strings.Builder
	renderTo(context.Background(), &sb, views.Deleted())
	data := append(frame.Merge("", sb.String()), frame.Remove("", "#"+views.SideItemID)...)
	// Nothing is being written or watched any more: Send and Stop, and the
	// presence count, must not say otherwise.
	data = append(data, frame.Signals("", "{busy: false, watching: 0}")...)
	return &Frame{Data: data, End: true}
}

// DeletedEvents is what a stream of a conversation that no longer exists
// sends before it ends.
func DeletedEvents() []byte { return deletedFrame().Data }
