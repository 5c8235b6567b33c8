package generation

import (
	"context"
	"strings"
	"time"

	"github.com/parley-chat/parley/llm"
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

// nameConversation gives conv a title after its first answer, unless it has
// one (the owner may have renamed it while the answer was written). The title
// is logged like any change, so it appears in every open tab.
func (m *Manager) nameConversation(conv string, history []llm.Message) {
	first, users := "", 0
	for _, msg := range history {
		if msg.Role == llm.RoleUser {
			if users == 0 {
				first = msg.Content
			}
			users++
		}
	}
	if users != 1 {
		return // not the first answer
	}
	ctx, cancel := context.WithTimeout(m.base, titleTimeout)
	defer cancel()
	title := ""
	if t, ok := m.model.(Titler); ok {
		got, err := t.Title(ctx, first)
		if err != nil {
			m.log.Warn("model could not name the conversation; using its first words", "conversation", conv, "err", err)
		}
		title = store.CleanTitle(got)
	}
	if title == "" {
		title = FirstWords(first, 8)
	}
	if _, err := m.store.SetTitle(ctx, store.Title{Conv: conv, Text: title, IfEmpty: true}); err != nil {
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
