package views_test

import (
	"bytes"
	"context"
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
	t.Parallel()
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
