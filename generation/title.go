package generation

import (
	"context"
	"strings"
	"time"

	"github.com/parley-chat/parley/store"
)

// Titler is a model that can name a conversation from its first message.
// Models that cannot (the offline demo) get a title made of that message's
// first words.
type Titler interface {
	Title(ctx context.Context, first string) (string, error)
}

// titleTimeout bounds the naming of a conversation. It runs after the
// answer's slot is released, so a slow title never holds back other answers.
const titleTimeout = 15 * time.Second

// nameConversation gives conv a title after an answer ends, while it has
// none or only a provisional one: the model names it from its first message
// (when it can) once an answer has text, and until one does, the first
// message's first words are its provisional title. So a conversation whose
// first answers failed or were stopped empty is still named, and named
// better when an answer comes. The title is logged like any change, so it
// appears in every open tab; a title the owner chose is never replaced.
func (m *Manager) nameConversation(conv string, p prompt, answered bool) {
	if p.first == "" {
		return
	}
	ctx, cancel := context.WithTimeout(m.base, titleTimeout)
	defer cancel()
	meta, err := m.store.Meta(ctx, conv)
	if err != nil || (meta.Title != "" && !meta.TitleProvisional) || (meta.TitleProvisional && !answered) {
		return // named, or nothing better to name it by
	}
	title := ""
	if t, ok := m.model.(Titler); ok && answered {
		got, err := t.Title(ctx, p.first)
		if err != nil {
			m.log.Warn("model could not name the conversation; using its first words", "conversation", conv, "err", err)
		}
		title = store.CleanTitle(got)
	}
	if title == "" {
		title = FirstWords(p.first, 8)
	}
	t := store.Title{Conv: conv, Text: title, IfEmpty: true, Provisional: !answered}
	if _, err := m.store.SetTitle(ctx, t); err != nil {
		m.log.Warn("name conversation", "conversation", conv, "err", err)
	}
}

// FirstWords is the start of text, at most n words, as a title.
func FirstWords(text string, n int) string {
	words := strings.Fields(text)
	more := len(words) > n
	if more {
		words = words[:n]
	}
	t := store.CleanTitle(strings.Join(words, " "))
	t = strings.TrimRight(t, "?!.,;:")
	if more && !strings.HasSuffix(t, "…") {
		t += "…"
	}
	return t
}
