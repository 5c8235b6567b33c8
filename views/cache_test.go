package views_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-chat/parley/views"
)

func sampleMessages() []views.Message {
	return []views.Message{
		{Conv: "c", Index: 0, Role: "user", Status: "done", Text: "a <question> & more", Rev: "1-0"},
		{Conv: "c", Index: 1, Role: "assistant", Status: "done", Blocks: []string{"<p>one</p>", "<p>two</p>"}, Rev: "2-0"},
		{Conv: "c", Index: 2, Role: "user", Status: "done", Text: "again", Rev: "3-0"},
		{Conv: "c", Index: 3, Role: "assistant", Status: "failed", Error: "model said no", Blocks: []string{"<p>half</p>"}, Rev: "4-0"},
		{Conv: "c", Index: 4, Role: "user", Status: "done", Text: "last", Rev: "5-0"},
		{Conv: "c", Index: 5, Role: "assistant", Status: "streaming", Blocks: []string{"<p>grow</p>"}, Rev: "6-0"},
	}
}

func render(t *testing.T, i int, msgs []views.Message) string {
	t.Helper()
	var sb strings.Builder
	if err := views.Slot(i, msgs).Render(context.Background(), &sb); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// TestSlotWritesRenderedHTML: a slot of messages given as their rendered HTML
// is byte for byte the slot of the messages themselves, whichever of them are
// pre-rendered.
func TestSlotWritesRenderedHTML(t *testing.T) {
	msgs := sampleMessages()
	var scratch bytes.Buffer
	for from := range 2 {
		want := render(t, from, msgs)
		for mask := range 1 << len(msgs) {
			given := make([]views.Message, len(msgs))
			for k, m := range msgs {
				if mask&(1<<k) != 0 {
					m = views.Message{Index: m.Index, HTML: views.RenderMessage(&scratch, m)}
				}
				given[k] = m
			}
			if got := render(t, from, given); got != want {
				t.Fatalf("slot %d with messages %b pre-rendered:\n%s\nwant\n%s", from, mask, got, want)
			}
		}
	}
}

func TestMessageCache(t *testing.T) {
	c := views.NewMessageCache(1 << 20)
	if got := c.Conversation("a"); got != nil {
		t.Fatalf("empty cache holds %v", got)
	}
	c.Put("a", 0, "1-0", "<p>zero</p>")
	c.Put("a", 2, "3-0", "<p>two</p>")
	c.Put("b", 0, "1-0", "<p>other</p>")
	want := []views.CachedMessage{{Rev: "1-0", HTML: "<p>zero</p>"}, {}, {Rev: "3-0", HTML: "<p>two</p>"}}
	if got := c.Conversation("a"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("conversation a: %v, want %v", got, want)
	}
	// Another revision of a message replaces the one held.
	c.Put("a", 2, "7-0", "<p>two, again</p>")
	if got := c.Conversation("a")[2]; got != (views.CachedMessage{Rev: "7-0", HTML: "<p>two, again</p>"}) {
		t.Fatalf("message 2 after a new revision: %v", got)
	}
	if n, _ := c.Len(); n != 3 {
		t.Fatalf("%d messages held, want 3", n)
	}
	// Nothing without a revision.
	c.Put("a", 3, "", "<p>no rev</p>")
	if got := c.Conversation("a"); len(got) != 3 {
		t.Fatalf("a message without a revision was kept: %v", got)
	}
}

// TestMessageCacheBound: the cache stays under its byte limit and drops the
// least recently used messages first.
func TestMessageCacheBound(t *testing.T) {
	const limit = 64 << 10
	c := views.NewMessageCache(limit)
	html := strings.Repeat("x", 1000)
	for conv := range 10 {
		for i := range 20 {
			c.Put(fmt.Sprint("c", conv), i, fmt.Sprint(i+1, "-0"), html)
			// Conversation c0 is read all along: it must survive.
			c.Conversation("c0")
		}
	}
	n, size := c.Len()
	if size > limit || n < limit/2/len(html) {
		t.Fatalf("%d messages in %d bytes, limit %d", n, size, limit)
	}
	if got := c.Conversation("c0"); len(got) != 20 || got[19].HTML != html {
		t.Fatalf("the conversation in use lost messages: %d held", len(got))
	}
	if got := c.Conversation("c1"); got != nil {
		t.Fatalf("the least recently used conversation is still held: %d messages", len(got))
	}
	// One HTML larger than a quarter of the cache is not kept.
	c.Put("big", 0, "1-0", strings.Repeat("y", limit/4+1))
	if got := c.Conversation("big"); got != nil {
		t.Fatal("a huge message was kept")
	}
}
