package generation

import (
	"reflect"
	"testing"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestPromptRules pins what the model is sent (history.go lists the rules)
// for paths with every kind of ending.
func TestPromptRules(t *testing.T) {
	t.Parallel()
	user := func(text string) store.Message {
		return store.Message{Role: store.RoleUser, Status: store.StatusDone, Text: text}
	}
	answer := func(status, text string) store.Message {
		return store.Message{Role: store.RoleAssistant, Status: status, Text: text, Model: "m"}
	}
	sys := func(s string) llm.Message { return llm.Message{Role: llm.RoleSystem, Content: s} }
	u := func(s string) llm.Message { return llm.Message{Role: llm.RoleUser, Content: s} }
	a := func(s string) llm.Message { return llm.Message{Role: llm.RoleAssistant, Content: s} }
	tests := []struct {
		name     string
		settings store.Settings
		path     []store.Message
		want     []llm.Message
		answered int
	}{{
		name: "done and stopped answers as shown, the deployment's instructions first",
		path: []store.Message{user("q1"), answer(store.StatusDone, "a1"), user("q2"), answer(store.StatusStopped, "half"),
			user("q3"), answer(store.StatusStreaming, "")},
		want: []llm.Message{sys("default"), u("q1"), a("a1"), u("q2"), a("half"), u("q3")},
	}, {
		name: "failed, interrupted and empty answers left out; the questions they leave back to back joined",
		path: []store.Message{user("q1"), answer(store.StatusFailed, "garbled partial"), user("q2"),
			answer(store.StatusInterrupted, "cut mid"), user("q3"), answer(store.StatusStopped, ""), user("q4"),
			answer(store.StatusStreaming, "")},
		want: []llm.Message{sys("default"), u("q1\n\nq2\n\nq3\n\nq4")},
	}, {
		name:     "the conversation's own instructions, and none when they are empty",
		settings: store.Settings{InstructionsSet: true, Instructions: ""},
		path:     []store.Message{user("q1"), answer(store.StatusStreaming, "")},
		want:     []llm.Message{u("q1")},
	}, {
		name:     "a continuation sends the text so far and asks for the rest",
		settings: store.Settings{InstructionsSet: true, Instructions: "Be brief."},
		path:     []store.Message{user("q1"), answer(store.StatusStreaming, "first half")},
		want:     []llm.Message{sys("Be brief."), u("q1"), a("first half"), u(llm.ContinueText)},
		answered: len("first half"),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := buildPrompt(&store.Snapshot{Messages: tt.path, Settings: tt.settings}, "default")
			if !reflect.DeepEqual(p.messages, tt.want) {
				t.Errorf("sent %q\nwant %q", p.messages, tt.want)
			}
			if p.model != "m" || p.answered != tt.answered || p.first != "q1" || p.variant != 0 {
				t.Errorf("model %q, answered %d, first %q, variant %d", p.model, p.answered, p.first, p.variant)
			}
		})
	}
}

// TestPromptVariant: the answer being written as a message's third version
// asks for the third variant (the demo model's way of varying).
func TestPromptVariant(t *testing.T) {
	t.Parallel()
	path := []store.Message{{Role: store.RoleUser, Status: store.StatusDone, Text: "q"},
		{Role: store.RoleAssistant, Status: store.StatusStreaming, Version: 3, Versions: 3}}
	if p := buildPrompt(&store.Snapshot{Messages: path}, ""); p.variant != 2 {
		t.Errorf("variant %d, want 2", p.variant)
	}
}
