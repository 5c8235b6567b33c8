package live

import (
	"context"
	"maps"
	"slices"
	"strings"

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
type Frame struct {
	From store.ID
	ID   store.ID
	Data []byte
}

// msgState is a message as a room keeps it: an answer keeps its Markdown doc,
// so that a token re-renders only the last block.
type msgState struct {
	index   int
	role    string
	status  string
	errText string
	text    string        // user messages
	doc     *markdown.Doc // answers
}

func newMsgState(md *markdown.Renderer, m store.Message) *msgState {
	s := &msgState{index: m.Index, role: m.Role, status: m.Status, errText: m.Error}
	if m.Role == "assistant" {
		s.doc = markdown.NewDoc(md)
		if m.Text != "" {
			s.doc.Append(m.Text)
		}
	} else {
		s.text = m.Text
	}
	return s
}

func (s *msgState) view() views.Message {
	v := views.Message{Index: s.index, Role: s.role, Status: s.status, Error: s.errText, Text: s.text}
	if s.doc != nil {
		v.Blocks = s.doc.Blocks()
	}
	return v
}

// MessageViews renders stored messages for a page or a catch-up frame.
func MessageViews(md *markdown.Renderer, msgs []store.Message) []views.Message {
	out := make([]views.Message, len(msgs))
	for i, m := range msgs {
		out[i] = newMsgState(md, m).view()
	}
	return out
}

// changes collects what a batch of events changed, to render one frame.
type changes struct {
	newFrom int         // first message added by the batch; -1 when none
	blocks  map[int]int // answer index -> first block that changed
	foot    map[int]bool
}

func newChanges() *changes {
	return &changes{newFrom: -1, blocks: map[int]int{}, foot: map[int]bool{}}
}

func (c *changes) empty() bool {
	return c.newFrom < 0 && len(c.blocks) == 0 && len(c.foot) == 0
}

// render writes the fragments for c: patches of the blocks and status lines
// of messages the page already has, then the slot of the new messages (which
// carry their full state, so they need no patch of their own).
func (c *changes) render(msgs []*msgState) string {
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
	return sb.String()
}

// CatchUp renders the frame that brings a page from position from to the
// snapshot: the slot of the first changed message, holding it and every
// message after it, as they are now.
func CatchUp(md *markdown.Renderer, from store.ID, snap *store.Snapshot) *Frame {
	var sb strings.Builder
	renderTo(context.Background(), &sb, views.Slot(snap.From, MessageViews(md, snap.Messages)))
	return &Frame{From: from, ID: snap.Last, Data: frame.Merge(snap.Last.String(), sb.String())}
}

func renderTo(ctx context.Context, sb *strings.Builder, c templ.Component) {
	// Rendering into a strings.Builder cannot fail: views do no I/O.
	_ = c.Render(ctx, sb)
}
