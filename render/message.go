// Package render turns stored messages into the view models that pages and
// live frames both show, so a page and a frame can never disagree.
//
// A page renders each message once (Messages). A live room keeps a Message
// per message instead: an answer keeps its Markdown document, so that a
// token re-renders only the last block, and its view is what a page loaded
// at the same position would show.
package render

import (
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// Message is one message of a conversation as a live room keeps it.
type Message struct {
	conv              string
	rev               string // log ID of the message's last change
	index             int
	role              string
	status            string
	errText           string
	model             string // answers: the model that wrote it
	cut               bool   // a done answer the model stopped at its length limit
	version, versions int
	text              string        // user messages
	doc               *markdown.Doc // answers
}

// NewMessage returns the state of stored message m of conversation conv.
func NewMessage(md *markdown.Renderer, conv string, m store.Message) *Message {
	s := &Message{conv: conv, rev: m.Rev, index: m.Index, role: m.Role, status: m.Status, errText: m.Error,
		model: m.Model, cut: m.Cut, version: max(m.Version, 1), versions: max(m.Versions, 1)}
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

// Messages renders stored messages for a page or a catch-up frame.
func Messages(md *markdown.Renderer, conv string, msgs []store.Message) []views.Message {
	out := make([]views.Message, len(msgs))
	for i, m := range msgs {
		out[i] = NewMessage(md, conv, m).View()
	}
	return out
}

// View is the message as a page shows it.
func (s *Message) View() views.Message {
	v := views.Message{Conv: s.conv, Index: s.index, Role: s.role, Status: s.status, Error: s.errText,
		Text: s.text, Rev: s.rev, Model: s.model, Cut: s.cut, Version: s.version, Versions: s.versions}
	if s.doc != nil {
		v.Blocks = s.doc.Blocks()
	}
	return v
}

// Answer reports whether the message is an answer (it has Markdown blocks).
func (s *Message) Answer() bool { return s.doc != nil }

// Status is the message's status (store.StatusStreaming while it grows).
func (s *Message) Status() string { return s.status }

// Blocks are an answer's rendered Markdown blocks; nil for a user message.
func (s *Message) Blocks() []string {
	if s.doc == nil {
		return nil
	}
	return s.doc.Blocks()
}

// Append adds text to an answer at log ID rev and returns the first block
// that changed. It must only be called on an answer.
func (s *Message) Append(rev, text string) (first int) {
	s.rev = rev
	return s.doc.Append(text)
}

// End records the end of the message at log ID rev, cut when the model
// stopped it at its length limit. For an answer, its last
// block is final now (a code block still growing was highlighted only in
// part, and a page loaded from now on renders it whole): it returns the first
// block that changed, and ok false for a user message.
func (s *Message) End(rev, status, errText string, cut bool) (first int, ok bool) {
	s.status, s.errText, s.rev, s.cut = status, errText, rev, cut
	if s.doc == nil {
		return 0, false
	}
	return s.doc.AppendFinal(""), true
}
