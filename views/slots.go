package views

import (
	"context"
	"io"
	"strconv"
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
			if err := openSlot(w, i+k); err != nil {
				return err
			}
			if m.HTML != "" {
				if _, err := io.WriteString(w, m.HTML); err != nil {
					return err
				}
				continue
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

// openSlot writes the opening tag of SlotID(i) in pieces: a page opens one
// per message, and building the string cost an allocation each.
func openSlot(w io.Writer, i int) error {
	for _, s := range [...]string{`<div id="slot-`, strconv.Itoa(i), `" class="slot">`} {
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
	}
	return nil
}

// closeSlots writes the last, empty slot and closes the n slots around it.
func closeSlots(w io.Writer, last string, n int) error {
	_, err := io.WriteString(w, `<div id="`+last+`" class="slot"></div>`+strings.Repeat("</div>", n))
	return err
}
