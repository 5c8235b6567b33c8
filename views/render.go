package views

import (
	"bytes"
	"context"
)

// RenderMessage returns MessageView(m)'s HTML, to be cached and given back
// to Slot as Message.HTML. It renders into buf, scratch space that the
// caller reuses, and returns a copy of exactly the HTML's size: a string
// that stays in a cache should not keep a builder's spare capacity.
func RenderMessage(buf *bytes.Buffer, m Message) string {
	buf.Reset()
	// Rendering into a bytes.Buffer cannot fail: views do no I/O.
	_ = MessageView(m).Render(context.Background(), buf)
	return buf.String()
}
