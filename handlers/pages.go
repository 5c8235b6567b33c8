package handlers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/a-h/templ"

	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// handleHome serves GET /: the composer that starts a conversation.
func handleHome(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		render(w, r, http.StatusOK, views.Home(d.Assets, sidebar(d, r, "", "", false), store.NewID(), d.Gen.Model().Name()))
	})
}

// handleConversation serves GET /c/{id}: the whole conversation rendered on the
// server as of one log position, which the page's live stream resumes from.
func handleConversation(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !store.ValidConversationID(id) {
			notFound(d, w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		snap, err := d.Store.Snapshot(ctx, id, store.ID{})
		if errors.Is(err, store.ErrNotFound) {
			notFound(d, w, r)
			return
		}
		if err != nil {
			d.Log.Error("render conversation", "conversation", id, "err", err)
			errorPage(d, w, r, http.StatusServiceUnavailable, "Temporarily unavailable",
				"The conversation store is not answering. Reload the page in a few seconds.")
			return
		}
		meta, err := d.Store.Meta(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			d.Log.Warn("read conversation owner", "conversation", id, "err", err)
		}
		// The owner never changes, so reading it beside the snapshot is safe.
		owner := meta.Owner != "" && meta.Owner == session.Owner(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		render(w, r, http.StatusOK, views.ConversationPage(d.Assets, views.Conversation{
			ID:          id,
			Title:       snap.Title,
			Cursor:      snap.Last.String(),
			Messages:    live.MessageViews(d.MD, id, snap.Messages),
			Streaming:   snap.Active != "",
			Owner:       owner,
			Watching:    max(1, d.Hub.Watching(id)),
			ComposerKey: store.NewID(),
			Model:       d.Gen.Model().Name(),
			Sidebar:     sidebar(d, r, id, snap.Title, !owner),
		}))
	})
}

// sidebarSize is how many conversations the sidebar lists.
const sidebarSize = 50

// sidebar lists the browser's conversations. It is not worth failing a page
// for: if Redis does not answer, the page shows an empty list.
func sidebar(d Deps, r *http.Request, current, title string, watching bool) views.Sidebar {
	s := views.Sidebar{Current: current, CurrentTitle: title, Watching: watching}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	list, err := d.Store.List(ctx, session.Owner(r.Context()), sidebarSize)
	if err != nil {
		d.Log.Warn("list conversations", "err", err)
	}
	found := false
	for _, c := range list {
		s.Conversations = append(s.Conversations, views.Summary{ID: c.ID, Title: c.Title, Updated: c.Updated})
		found = found || c.ID == current
	}
	if current != "" && !watching && !found {
		// Ours but not in the list (older than the list's length, or the
		// list could not be read): it still gets its entry, whose title
		// frames patch.
		s.Conversations = append([]views.Summary{{ID: current, Title: title}}, s.Conversations...)
	}
	return s
}

func errorPage(d Deps, w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	// A 5xx most often means Redis is failing or slow: asking it again for
	// the sidebar would only make the person wait twice as long for the error.
	var sb views.Sidebar
	if status < http.StatusInternalServerError {
		sb = sidebar(d, r, "", "", false)
	}
	render(w, r, status, views.ErrorPage(d.Assets, sb, title, detail))
}

func notFound(d Deps, w http.ResponseWriter, r *http.Request) {
	errorPage(d, w, r, http.StatusNotFound, "Not found",
		"There is no conversation at this address. It may have expired, or the link may be incomplete.")
}

func render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	// A failed write means the client went away; there is nobody to tell.
	_ = c.Render(r.Context(), w)
}

// handleHealth serves GET /healthz: the process is up.
func handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// handleReady serves GET /readyz: the process can serve, Redis answers.
func handleReady(ready func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}
