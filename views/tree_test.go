package views_test

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-chat/parley/views"
)

func renderMessage(t *testing.T, m views.Message) string {
	t.Helper()
	var sb strings.Builder
	if err := views.MessageView(m).Render(context.Background(), &sb); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// TestTreeControls checks what a message shows of the tree: its versions,
// a cut-off answer's Continue, a streaming answer's note, the model, and
// a user message's editor, which does not repeat the message's text.
func TestTreeControls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		m         views.Message
		want, not []string
	}{
		{"one version", views.Message{Conv: "c", Index: 1, Role: "assistant", Status: "done", Rev: "2-0", Version: 1, Versions: 1},
			nil, []string{"versions", "Cut off", "class=\"model\""}},
		{"middle version", views.Message{Conv: "c", Index: 1, Role: "assistant", Status: "done", Rev: "2-0", Version: 2, Versions: 3, Model: "m-1"},
			[]string{`class="version-count">2/3</span>`, `name="version" value="1"`, `name="version" value="3"`,
				`aria-label="Previous version" data-attr-disabled="$busy"`, `aria-label="Next version" data-attr-disabled="$busy"`,
				`<span class="model" title="The model that wrote this answer">m-1</span>`}, []string{"disabled>"}},
		{"first of two", views.Message{Conv: "c", Index: 0, Role: "user", Status: "done", Text: "hello there", Rev: "1-0", Version: 1, Versions: 2},
			[]string{`aria-label="Previous version" disabled`, `aria-label="Next version" data-attr-disabled`, `id="m-0-edit"`,
				`action="/c/c/edit"`, `class="edit-open owner-only"`}, nil},
		{"cut", views.Message{Conv: "c", Index: 3, Role: "assistant", Status: "done", Rev: "4-0", Cut: true, Version: 1, Versions: 1},
			[]string{"Cut off at the model's length limit.", `class="continue owner-only"`, `action="/c/c/continue"`}, []string{"Continuing failed"}},
		{"a continuation that failed", views.Message{Conv: "c", Index: 3, Role: "assistant", Status: "done", Rev: "4-0", Cut: true, Error: "the model provider is unavailable", Version: 1, Versions: 1},
			[]string{"Cut off at the model's length limit.", "Continuing failed: the model provider is unavailable", `action="/c/c/continue"`}, nil},
		{"a continuation that was stopped", views.Message{Conv: "c", Index: 3, Role: "assistant", Status: "stopped", Rev: "4-0", Cut: true, Version: 1, Versions: 1},
			[]string{"Stopped", "Cut off at the model's length limit.", `action="/c/c/continue"`}, nil},
		{"note", views.Message{Conv: "c", Index: 3, Role: "assistant", Status: "streaming", Error: "Retrying in 4 s", Version: 1, Versions: 1},
			[]string{`<span class="note" role="status">Retrying in 4 s</span>`}, []string{"regen", "Cut off"}},
	} {
		html := renderMessage(t, tc.m)
		for _, w := range tc.want {
			if !strings.Contains(html, w) {
				t.Errorf("%s: no %s in\n%s", tc.name, w, html)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(html, n) {
				t.Errorf("%s: %s in\n%s", tc.name, n, html)
			}
		}
		if tc.m.Text != "" && strings.Count(html, tc.m.Text) != 1 {
			t.Errorf("%s: the text is written %d times, want once", tc.name, strings.Count(html, tc.m.Text))
		}
	}
}
