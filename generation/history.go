package generation

import (
	"context"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// What the model is sent for an answer (docs/architecture.md, "What the
// model is sent", says the same for people):
//
//   - the conversation's instructions first, as a system message: its own,
//     else the deployment's (PARLEY_SYSTEM_PROMPT); none when empty;
//   - then the selected path up to the answer being written: user messages
//     as typed, done and stopped answers as they were shown (a stopped
//     answer's text so far, an answer cut at the length limit as it is);
//   - failed and interrupted answers are left out, their partial text too
//     (it may end mid-sentence, or hold what the failure garbled), and so
//     are answers with no text;
//   - user messages left back to back by that are sent as one user message,
//     joined by a blank line, so that turns alternate as providers expect
//     and nothing the person wrote is lost;
//   - continuing an answer cut at the length limit sends its text so far as
//     the last assistant message and then llm.ContinueText as a user message.

// prompt is what one generation asks the model.
type prompt struct {
	model    string // the answer's model ("" the model's default)
	messages []llm.Message
	// answered is the length of the answer's stored text: a continuation
	// appends after it.
	answered int
	// first is the path's first user message, which names the conversation.
	first string
	// variant is which version of its answer the running one is (0 the
	// first): llm.Request.Variant.
	variant int
}

// prompt reads conv and builds what its running answer asks the model.
func (m *Manager) prompt(ctx context.Context, conv string) (prompt, error) {
	snap, err := m.store.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		return prompt{}, err
	}
	return buildPrompt(snap, m.cfg.SystemPrompt), nil
}

// buildPrompt is prompt's rule, on a snapshot of the whole path.
func buildPrompt(snap *store.Snapshot, defaultInstructions string) prompt {
	var p prompt
	instructions := defaultInstructions
	if snap.InstructionsSet {
		instructions = snap.Instructions
	}
	if instructions != "" {
		p.messages = append(p.messages, llm.Message{Role: llm.RoleSystem, Content: instructions})
	}
	add := func(role llm.Role, text string) {
		msgs := p.messages
		if n := len(msgs); role == llm.RoleUser && n > 0 && msgs[n-1].Role == llm.RoleUser {
			msgs[n-1].Content += "\n\n" + text
			return
		}
		p.messages = append(msgs, llm.Message{Role: role, Content: text})
	}
	for _, msg := range snap.Messages {
		switch {
		case msg.Role == store.RoleUser:
			if p.first == "" {
				p.first = msg.Text
			}
			add(llm.RoleUser, msg.Text)
		case msg.Status == store.StatusStreaming:
			// The answer being written: the last message of the path.
			p.model = msg.Model
			p.variant = max(0, msg.Version-1)
			if msg.Text != "" {
				p.answered = len(msg.Text)
				add(llm.RoleAssistant, msg.Text)
				add(llm.RoleUser, llm.ContinueText)
			}
		case msg.Text == "" || msg.Status == store.StatusFailed || msg.Status == store.StatusInterrupted:
		default:
			add(llm.RoleAssistant, msg.Text)
		}
	}
	return p
}

// promptBytes is the size of what the model is sent, which providers bill.
func promptBytes(msgs []llm.Message) int {
	n := 0
	for _, msg := range msgs {
		n += len(msg.Content)
	}
	return n
}
