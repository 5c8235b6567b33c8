package live

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/live/gzipwire"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/render"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// Frame is one SSE event (or a few: many messages go in pieces, see
// slotPieces, and only the last event has the frame's id), rendered once and
// written to every viewer of a room that is up to date. It brings a page
// from log position From to ID: it holds the whole current state of every
// element that changed in between, so a page at any position from From to
// ID may apply it.
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

	// z is its compressed forms when it is a room's (Room.broadcast); nil
	// for a frame written to one viewer only.
	z *gzipwire.Frame
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
// carry their full state, so they need no patch of their own), then the
// title. Many new messages (a room that re-reads the log, a crowd's batch)
// are written in pieces, as a catch-up is (slotPieces): it returns the HTML
// of each event of the frame.
func (c *changes) render(msgs []*render.Message, title string) []string {
	var sb strings.Builder
	ctx := context.Background()
	old := len(msgs)
	if c.newFrom >= 0 {
		old = c.newFrom
	}
	for _, i := range slices.Sorted(maps.Keys(c.blocks)) {
		if i < old {
			renderTo(ctx, &sb, views.Blocks(i, c.blocks[i], msgs[i].Blocks()))
		}
	}
	for _, i := range slices.Sorted(maps.Keys(c.foot)) {
		if i < old {
			renderTo(ctx, &sb, views.Foot(msgs[i].View()))
		}
	}
	var pieces []string
	last := sb.String()
	if c.newFrom >= 0 {
		last, _ = slotPieces(ctx, c.newFrom, len(msgs)-c.newFrom,
			func(k int) views.Message { return msgs[c.newFrom+k].View() }, last,
			func(html string) bool { pieces = append(pieces, html); return true })
	}
	if c.title {
		sb.Reset()
		sb.WriteString(last)
		renderTitle(ctx, &sb, title)
		last = sb.String()
	}
	return append(pieces, last)
}

// mergeEvents is a frame's merge events for the HTML of pieces: only the
// last one carries the id.
func mergeEvents(id string, pieces []string) []byte {
	var data []byte
	for i, p := range pieces {
		if i < len(pieces)-1 {
			data = append(data, frame.Merge("", p)...)
		} else {
			data = append(data, frame.Merge(id, p)...)
		}
	}
	return data
}

func renderTitle(ctx context.Context, sb *strings.Builder, title string) {
	renderTo(ctx, sb, views.Title(title))
	renderTo(ctx, sb, views.SideTitle(title))
}

// busySignals is the page's busy signal for a conversation whose last
// message has status.
func busySignals(id string, msgs []*render.Message) []byte {
	busy := len(msgs) > 0 && msgs[len(msgs)-1].Status() == store.StatusStreaming
	return frame.Signals(id, "{busy: "+strconv.FormatBool(busy)+"}")
}

// presenceFrame tells viewers how many people watch. It has no ID: it is not
// a position in the log, and viewers write it whatever their position.
func presenceFrame(n int) *Frame {
	return &Frame{Data: frame.Signals("", "{watching: "+strconv.Itoa(n)+"}")}
}

// catchUpPiece is about the most HTML one event of a catch-up holds. A
// catch-up of a long conversation is not one event: a hostile conversation
// renders to megabytes (every Markdown block may render to 16 times its
// text), which a viewer would have held whole, several times over, while
// it was built, written and compressed, and a client parses an event only
// once it has all of it. A single message (or Markdown block) bigger than
// this is a piece of its own.
const catchUpPiece = 64 << 10 // bytes of HTML as an event writes it (wireSize)

// CatchUp renders the frame that brings a page from position from to the
// snapshot: the events of catchUpEvents, all in one frame, as a room renders
// it once for all its viewers.
func CatchUp(md *markdown.Renderer, conv string, from store.ID, snap *store.Snapshot) *Frame {
	var data []byte
	catchUpEvents(md, conv, snap, func(ev []byte) bool {
		data = append(data, ev...)
		return true
	})
	return &Frame{From: from, ID: snap.Last, Data: data, titled: true, title: snap.Title}
}

// catchUpEvents renders the events that bring a page to the snapshot from
// the position the snapshot was read after (its From is the first message
// that changed since), calling yield with each in turn; it stops and
// reports false when yield does. Each event is rendered when the one before
// has been taken, so a viewer holds one piece at a time.
//
// The pieces follow the slot nesting (slotPieces): the first event morphs
// slot From with messages From..k and an empty slot k+1, the next fills
// slot k+1 with messages k+1..j and an empty slot j+1, and so on; the title
// goes with the last piece. So every state in between is a valid page (the
// top of the conversation, complete, and nothing after it), and applying
// the events again, from the first, gives the same page.
//
// Only the last event, the busy signal, carries the SSE id: a client cut
// off in the middle of a catch-up reconnects with the id it had (the beta.11
// client sends the id of the last event that had one) and is sent the whole
// catch-up again. It is the smallest event, so that a cut inside an event
// (the client takes the id as soon as it reads the id line) is least likely
// to fall after the id and before the end of what it stands for.
func catchUpEvents(md *markdown.Renderer, conv string, snap *store.Snapshot, yield func([]byte) bool) bool {
	ctx := context.Background()
	emit := func(html string) bool { return yield(frame.Merge("", html)) }
	last, ok := slotPieces(ctx, snap.From, len(snap.Messages),
		func(k int) views.Message { return render.NewMessage(md, conv, snap.Messages[k]).View() }, "", emit)
	if !ok {
		return false
	}
	var sb strings.Builder
	sb.WriteString(last)
	renderTitle(ctx, &sb, snap.Title)
	if !emit(sb.String()) {
		return false
	}
	return yield(frame.Signals(snap.Last.String(), catchUpSignals(snap)))
}

// slotPieces renders n messages from message start into their slots, in
// pieces of about catchUpPiece: emit is given the HTML of each piece but the
// last, which it returns for the caller to add to and send. view(k) renders
// message start+k; it is called when its piece is built. head is HTML that
// goes before the first piece. ok is false when emit was.
//
// A piece is the slot of its first message holding its messages and the
// slot after them, empty (views.Slot). An answer too big for a piece goes,
// alone, with the blocks that fit (at least its first) and an empty block
// slot m-N-s-K after them; its other blocks follow, filling block slots the
// same way (blockPieces), and the next piece starts at the next message.
func slotPieces(ctx context.Context, start, n int, view func(k int) views.Message, head string, emit func(string) bool) (last string, ok bool) {
	var (
		sb    strings.Builder
		group []views.Message // the messages of the piece being gathered, rendered (HTML)
		size  = wireSize(head)
	)
	sb.WriteString(head)
	// cut ends the piece being gathered: what came before it (head) and
	// slot start with the messages of group, if any (or whatever, for the
	// last one: an empty slot start is then the end of the page).
	cut := func(last bool) string {
		if len(group) > 0 || last {
			renderTo(ctx, &sb, views.Slot(start, group))
		}
		start += len(group)
		clear(group)
		group, size = group[:0], 0
		html := sb.String()
		sb.Reset()
		return html
	}
	for k := range n {
		v := view(k)
		html := renderString(ctx, views.MessageView(v))
		cost := wireSize(html)
		if size > 0 && size+cost > catchUpPiece {
			if !emit(cut(false)) {
				return "", false
			}
		}
		if cost > catchUpPiece && len(v.Blocks) > 1 {
			// An answer bigger than a piece (so alone in this one): it
			// goes with the blocks that fit, and the others follow it.
			b, used := 1, cost-blocksSize(v.Blocks[1:])
			for b < len(v.Blocks) && used+blockSize(v.Blocks[b]) <= catchUpPiece {
				used += blockSize(v.Blocks[b])
				b++
			}
			first := v
			first.Blocks = v.Blocks[:b]
			group = append(group, views.Message{HTML: renderString(ctx, views.MessageView(first))})
			if !emit(cut(false)) || !blockPieces(ctx, v.Index, v.Blocks, b, emit) {
				return "", false
			}
			continue
		}
		group = append(group, views.Message{HTML: html})
		size += cost
	}
	return cut(true), true
}

// blockPieces writes blocks k.. of answer i into its empty block slot k, a
// piece at a time: block slot k with blocks k..j-1 and an empty slot j, and
// so on.
func blockPieces(ctx context.Context, i int, blocks []string, k int, emit func(string) bool) bool {
	for k < len(blocks) {
		j, size := k+1, blockSize(blocks[k])
		for j < len(blocks) && size+blockSize(blocks[j]) <= catchUpPiece {
			size += blockSize(blocks[j])
			j++
		}
		if !emit(renderString(ctx, views.Blocks(i, k, blocks[:j]))) {
			return false
		}
		k = j
	}
	return true
}

// wireSize is the size of html in an event: each newline is written as
// "&#10;" (frame.Merge).
func wireSize(html string) int { return len(html) + 4*strings.Count(html, "\n") }

// blockSize is the size of a Markdown block in an event, in its slot.
func blockSize(b string) int { return wireSize(b) + len(`<div id="m-0000-s-0000" class="slot"></div>`) }

func blocksSize(bs []string) int {
	n := 0
	for _, b := range bs {
		n += blockSize(b)
	}
	return n
}

func renderString(ctx context.Context, c templ.Component) string {
	var sb strings.Builder
	renderTo(ctx, &sb, c)
	return sb.String()
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

// catchUpSignals are the page's signals a catch-up sets: busy, and the
// conversation's settings as every viewer's page shows them (model: its
// model, "" the default; instructions, and custom: whether they are its
// own rather than the deployment's).
func catchUpSignals(snap *store.Snapshot) string {
	b, _ := json.Marshal(struct {
		Busy         bool   `json:"busy"`
		Model        string `json:"model"`
		Instructions string `json:"instructions"`
		Custom       bool   `json:"custom"`
	}{snap.Active != "", snap.Model, snap.Instructions, snap.InstructionsSet})
	return string(b)
}
