package live

import (
	"context"
	"fmt"
	"strings"
	"testing"

	page "github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/render"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// catchUpConversation is a conversation whose catch-up needs pieces of every
// kind: small messages gathered in one piece, a user message and an answer
// of one block each bigger than a piece, and a long answer split by blocks,
// the last one still streaming.
func catchUpConversation() []store.Message {
	demo := llm.NewDemo(llm.DemoConfig{})
	long := demo.Reply([]llm.Message{{Role: llm.RoleUser, Content: "[[long 6000]]"}})
	// Paragraphs of 3 KB: an answer of 300 KB in 100 blocks.
	para := strings.Repeat("**Bold** words and `code` ", 120)
	paras := strings.Repeat(para+"\n\n", 100)
	texts := []string{
		"hello", "Hi! **How** can I help?",
		"a list", strings.Repeat("- item\n", 300),
		strings.Repeat("<", 20000), strings.Repeat(">", 32000),
		"small", "reply",
		"long one", long,
		"paragraphs", paras,
		"last", paras[:len(paras)*2/3],
	}
	var msgs []store.Message
	for i, t := range texts {
		m := store.Message{Index: i, Role: "user", Status: store.StatusDone, Text: t, Rev: fmt.Sprintf("%d-0", i+1)}
		if i%2 == 1 {
			m.Role = "assistant"
		}
		msgs = append(msgs, m)
	}
	msgs[len(msgs)-1].Status = store.StatusStreaming
	return msgs
}

// pageAt renders the conversation page holding msgs.
func pageAt(t *testing.T, md *markdown.Renderer, conv, title string, msgs []store.Message) *page.DOM {
	t.Helper()
	var sb strings.Builder
	c := views.Conversation{ID: conv, Title: title, Cursor: "1-0", Messages: render.Messages(md, conv, msgs),
		Sidebar: views.Sidebar{Current: conv, CurrentTitle: title, Watching: true}}
	if err := views.ConversationPage(views.Assets{}, c).Render(context.Background(), &sb); err != nil {
		t.Fatal(err)
	}
	d, err := page.ParseDOM(strings.NewReader(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type catchUpEvent struct {
	id        string
	fragments string
	size      int // bytes of data
}

func collectCatchUp(t *testing.T, md *markdown.Renderer, conv string, snap *store.Snapshot) []catchUpEvent {
	t.Helper()
	var evs []catchUpEvent
	catchUpEvents(md, conv, snap, func(b []byte) bool {
		n := 0
		err := page.ReadSSE(strings.NewReader(string(b)), func(ev page.Event) bool {
			n++
			size := 0
			for _, d := range ev.Data {
				size += len(d)
			}
			evs = append(evs, catchUpEvent{id: ev.ID, fragments: ev.Fragments(), size: size})
			return true
		})
		if err != nil || n != 1 {
			t.Fatalf("a piece is %d events (%v): %.200q", n, err, b)
		}
		return true
	})
	return evs
}

// TestCatchUpInPieces: a catch-up is a sequence of events of bounded size,
// each a valid page once applied after the ones before, only the last with
// an id; the sequence, or any start of it, applied again leaves the same
// page, and a page cut off after any piece that starts again from its old
// position ends exact.
func TestCatchUpInPieces(t *testing.T) {
	t.Parallel()
	md := markdown.NewRenderer()
	const conv = "conv"
	msgs := catchUpConversation()
	biggest := 0 // the biggest single message or block, which is a piece of its own
	for _, v := range render.Messages(md, conv, msgs) {
		var sb strings.Builder
		_ = views.MessageView(v).Render(context.Background(), &sb)
		if len(v.Blocks) > 1 {
			for _, b := range v.Blocks {
				biggest = max(biggest, len(b))
			}
		} else {
			biggest = max(biggest, sb.Len())
		}
	}
	for _, from := range []int{0, 3, 9} {
		t.Run(fmt.Sprintf("from message %d", from), func(t *testing.T) {
			snap := &store.Snapshot{Last: store.ID{Ms: 99}, Title: "A title", CursorValid: true, Active: "gen",
				From: from, Messages: msgs[from:], Count: len(msgs)}
			evs := collectCatchUp(t, md, conv, snap)
			want := pageAt(t, md, conv, "A title", msgs)
			start := func() *page.DOM { return pageAt(t, md, conv, "", msgs[:from]) }

			total := 0
			for i, ev := range evs {
				total += ev.size
				if ev.size > max(catchUpPiece, biggest)+4<<10 {
					t.Errorf("event %d holds %d bytes, want at most a piece (%d) or its one message or block (%d)", i, ev.size, catchUpPiece, biggest)
				}
				if last := i == len(evs)-1; (ev.id != "") != last {
					t.Errorf("event %d of %d has id %q: only the last may have one", i, len(evs), ev.id)
				}
			}
			if evs[len(evs)-1].id != snap.Last.String() {
				t.Errorf("the last event's id is %q, want %s", evs[len(evs)-1].id, snap.Last)
			}
			if from == 0 && len(evs) < 8 {
				t.Errorf("%d events for %d bytes: the catch-up is not in pieces", len(evs), total)
			}
			var kinds []string
			blockPieces := 0
			for _, ev := range evs {
				target, _, _ := strings.Cut(strings.TrimPrefix(ev.fragments, `<div id="`), `"`)
				if strings.Contains(target, "-s-") {
					blockPieces++
				}
				kinds = append(kinds, fmt.Sprintf("%s:%d", target, ev.size))
			}
			if from == 0 && blockPieces < 2 {
				t.Errorf("%d pieces of blocks, want the long answers split by blocks: %v", blockPieces, kinds)
			}
			t.Logf("%d events, %d bytes of data, the biggest single message or block %d bytes: %v", len(evs), total, biggest, kinds)

			apply := func(d *page.DOM, evs []catchUpEvent) {
				t.Helper()
				for i, ev := range evs {
					if err := d.Apply(ev.fragments); err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
				}
			}
			// Whole, and twice.
			d := start()
			apply(d, evs)
			if got, w := d.Messages(), want.Messages(); got != w {
				t.Fatalf("after the catch-up the page differs from a fresh one: %s", page.Diff(w, got))
			}
			if got, w := d.HTML(views.TitleID)+d.HTML(views.SideTitleID), want.HTML(views.TitleID)+want.HTML(views.SideTitleID); got != w {
				t.Errorf("title %s, want %s", got, w)
			}
			apply(d, evs)
			if got, w := d.Messages(), want.Messages(); got != w {
				t.Fatalf("after the catch-up twice the page differs: %s", page.Diff(w, got))
			}
			// Cut after each piece: the part applied again changes nothing,
			// the page so far is the top of the conversation (each message
			// before the last one shown as in a fresh page), and the whole
			// catch-up from the start (the page's id has not moved) ends
			// exact.
			if from != 0 {
				return // the cuts of one catch-up are enough
			}
			for cut := 1; cut < len(evs); cut++ {
				d := start()
				apply(d, evs[:cut])
				once := d.Messages()
				apply(d, evs[:cut])
				if got := d.Messages(); got != once {
					t.Fatalf("cut after %d: applied again, the start of the catch-up changed the page: %s", cut, page.Diff(once, got))
				}
				shown := 0
				for d.HTML(views.MessageID(shown)) != "" {
					shown++
				}
				for i := 0; i < shown-1; i++ {
					if got, w := d.HTML(views.MessageID(i)), want.HTML(views.MessageID(i)); got != w {
						t.Fatalf("cut after %d: message %d of %d shown differs: %s", cut, i, shown, page.Diff(w, got))
					}
				}
				if d.HTML(views.SlotID(shown)) == "" {
					t.Fatalf("cut after %d: no slot after message %d", cut, shown-1)
				}
				apply(d, evs)
				if got, w := d.Messages(), want.Messages(); got != w {
					t.Fatalf("cut after %d and caught up again: %s", cut, page.Diff(w, got))
				}
			}
		})
	}
}

// TestCatchUpFrameForRooms: the frame a room broadcasts holds the same
// events, one after the other.
func TestCatchUpFrameForRooms(t *testing.T) {
	t.Parallel()
	md := markdown.NewRenderer()
	msgs := catchUpConversation()
	snap := &store.Snapshot{Last: store.ID{Ms: 7, Seq: 1}, Title: "t", CursorValid: true, Messages: msgs}
	var want []byte
	catchUpEvents(md, "c", snap, func(ev []byte) bool { want = append(want, ev...); return true })
	f := CatchUp(md, "c", store.ID{Ms: 1}, snap)
	if string(f.Data) != string(want) {
		t.Fatal("the room's catch-up frame is not the viewer's events")
	}
	if f.ID != snap.Last || f.From != (store.ID{Ms: 1}) || !f.titled || f.title != "t" {
		t.Fatalf("frame %v from %v, titled %v %q", f.ID, f.From, f.titled, f.title)
	}
	n := strings.Count(string(f.Data), "\nid: ")
	if n != 1 {
		t.Fatalf("%d events with an id, want 1", n)
	}
	// Stopped early, it renders no more.
	calls := 0
	catchUpEvents(md, "c", snap, func([]byte) bool { calls++; return calls < 2 })
	if calls != 2 {
		t.Fatalf("yield called %d times after it said stop", calls)
	}
}

// TestRoomFrameInPieces: a room's frame that brings many new messages (a
// batch of notices, a room behind a crowd) writes them in pieces too, after
// the patches of the messages the page has, and only its last event has
// the frame's id.
func TestRoomFrameInPieces(t *testing.T) {
	t.Parallel()
	md := markdown.NewRenderer()
	const conv = "conv"
	msgs := catchUpConversation()
	var states []*render.Message
	for _, m := range msgs {
		states = append(states, render.NewMessage(md, conv, m))
	}
	// The page has messages 0..2, message 1 as it was before its last block.
	before := append([]store.Message(nil), msgs[:3]...)
	before[1].Text = strings.Repeat("- item\n", 299)
	d := pageAt(t, md, conv, "", before)
	ch := newChanges()
	ch.blocks[1] = 0
	ch.foot[1] = true
	ch.replace(3)
	ch.title = true
	pieces := ch.render(states, "A title")
	if len(pieces) < 5 {
		t.Fatalf("%d pieces for %d new messages", len(pieces), len(msgs)-3)
	}
	data := string(mergeEvents("9-0", pieces))
	if n := strings.Count(data, "\nid: "); n != 1 || !strings.Contains(data[strings.LastIndex(data, "event: "):], "id: 9-0\n") {
		t.Fatalf("%d ids, want one, on the last event", n)
	}
	err := page.ReadSSE(strings.NewReader(data), func(ev page.Event) bool {
		size := 0
		for _, l := range ev.Data {
			size += len(l)
		}
		if size > 129<<10 {
			t.Errorf("an event of %d bytes", size)
		}
		if err := d.Apply(ev.Fragments()); err != nil {
			t.Fatal(err)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := pageAt(t, md, conv, "A title", msgs)
	if got, w := d.Messages(), want.Messages(); got != w {
		t.Fatalf("after the frame: %s", page.Diff(w, got))
	}
	if got, w := d.HTML(views.TitleID), want.HTML(views.TitleID); got != w {
		t.Fatalf("title %s, want %s", got, w)
	}
	// Nothing new: one piece, the patches.
	ch = newChanges()
	ch.blocks[1] = 0
	if p := ch.render(states, ""); len(p) != 1 || !strings.HasPrefix(p[0], `<div id="m-1-s-0"`) {
		t.Fatalf("patches only: %d pieces, %.80q", len(p), p)
	}
}
