package views

import (
	"context"
	"io"
	"strings"

	"github.com/a-h/templ"
)

// Slot holds msgs[0] (message i) and the slot of the message after it, and
// so on: the nesting that makes frames idempotent (see the package comment).
// It is written in a loop rather than as a recursive component: templ gives
// each nested component a context of its own, which made a 200-message page
// cost time quadratic in its length.
func Slot(i int, msgs []Message) templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		for k, m := range msgs {
			if _, err := io.WriteString(w, `<div id="`+SlotID(i+k)+`" class="slot">`); err != nil {
				return err
			}
			if err := MessageView(m).Render(ctx, w); err != nil {
				return err
			}
		}
		return closeSlots(w, SlotID(i+len(msgs)), len(msgs))
	})
}

// Blocks holds block k of message i and the slot of the next block, and so
// on, as Slot does for messages. Blocks are sanitised HTML from the markdown
// package.
func Blocks(i, k int, blocks []string) templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		for b := k; b < len(blocks); b++ {
			if _, err := io.WriteString(w, `<div id="`+BlockSlotID(i, b)+`" class="slot">`+blocks[b]); err != nil {
				return err
			}
		}
		return closeSlots(w, BlockSlotID(i, max(k, len(blocks))), max(0, len(blocks)-k))
	})
}

// closeSlots writes the last, empty slot and closes the n slots around it.
func closeSlots(w io.Writer, last string, n int) error {
	_, err := io.WriteString(w, `<div id="`+last+`" class="slot"></div>`+strings.Repeat("</div>", n))
	return err
}
