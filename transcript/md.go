package transcript

import (
	"bytes"
	"strconv"

	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// untitled is the heading of a conversation without a title.
const untitled = "Untitled conversation"

// Markdown returns the selected path of t as a Markdown document: what the
// page shows, for a person to read or paste elsewhere.
func Markdown(t *store.Tree) []byte {
	var b bytes.Buffer
	title := markdown.Inline(t.Title)
	if title == "" {
		title = untitled
	}
	b.WriteString("# " + title + "\n")
	for pos, id := range t.Path {
		b.WriteByte('\n')
		if id < 0 || id >= len(t.Nodes) {
			// Export read a path naming a message it did not find: say
			// so rather than leave a silent hole.
			b.WriteString(emphasis("Message " + strconv.Itoa(pos+1) + " is missing from the store."))
			continue
		}
		n := t.Nodes[id]
		if n.Role == store.RoleUser {
			b.WriteString("**You**\n\n" + markdown.Literal(n.Text))
			continue
		}
		writeAnswer(&b, n)
	}
	return b.Bytes()
}

// writeAnswer writes an answer: its label, its Markdown as written (closed,
// so that the next message is not taken into a block it left open) and how
// it ended.
func writeAnswer(b *bytes.Buffer, n store.Node) {
	b.WriteString("**Assistant**")
	if n.Model != "" {
		b.WriteString(" (" + markdown.Inline(n.Model) + ")")
	}
	if n.Role != store.RoleAssistant {
		// Not a role the store writes today; named rather than hidden.
		b.WriteString(" " + emphasis("role "+n.Role))
	}
	b.WriteString("\n\n")
	if n.Text != "" {
		text, ok := markdown.Closed(n.Text)
		if !ok {
			text = markdown.Literal(n.Text)
		}
		b.WriteString(text)
		if text[len(text)-1] != '\n' {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	if s := ending(n); s != "" {
		b.WriteString(emphasis(s))
	}
}

// ending says how an answer ended, when that is not simply done; the words
// are the page's.
func ending(n store.Node) string {
	label := ""
	switch n.Status {
	case store.StatusDone, "":
		if n.Cut {
			return "Cut off at the model's length limit."
		}
		return ""
	case store.StatusStreaming:
		return "(still being written)"
	case store.StatusStopped:
		label = "Stopped"
	case store.StatusFailed:
		label = "Failed"
	case store.StatusInterrupted:
		label = "Interrupted"
	default:
		label = "Status " + n.Status
	}
	if n.Error == "" {
		return label + "."
	}
	return label + ": " + n.Error
}

// emphasis is s in italics, on a line of its own.
func emphasis(s string) string {
	return "*" + markdown.Inline(s) + "*\n"
}
