package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/klauspost/compress/gzip"

	"github.com/parley-chat/parley/markdown"
	msgrender "github.com/parley-chat/parley/render" // handlers has a func render
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// handleHome serves GET /: the composer that starts a conversation.
func handleHome(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		render(w, r, http.StatusOK, views.Home(d.Assets, sidebar(d, r, "", "", false), homeForm(d, r, "", "", "")))
	})
}

// handleConversation serves GET /c/{id}: the whole conversation rendered on the
// server as of one log position, which the page's live stream resumes from.
func handleConversation(d Deps) http.Handler {
	cache := newMessageCache(messageCacheBytes)
	bufs := &sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !store.ValidConversationID(id) {
			notFound(d, w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		held := cache.Conversation(id)
		known := make([]string, len(held))
		for i, h := range held {
			known[i] = h.Rev
		}
		snap, err := d.Store.SnapshotKnown(ctx, id, known)
		if readFailed(d, w, r, "render conversation", id, err, "Reload the page in a few seconds.") {
			return
		}
		owner := snap.Owner != "" && snap.Owner == session.Owner(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		renderBuffered(w, r, bufs, views.ConversationPage(d.Assets, views.Conversation{
			ID:          id,
			Title:       snap.Title,
			Cursor:      snap.Last.String(),
			Messages:    pageMessages(d.MD, cache, id, held, snap.Messages),
			Streaming:   snap.Active != "",
			Owner:       owner,
			Watching:    max(1, d.Hub.Watching(id)),
			ComposerKey: store.NewID(),
			Sidebar:     sidebar(d, r, id, snap.Title, !owner),
			Models:      modelList(ctx, d),
			Settings: views.Settings{Model: snap.Settings.Model, Instructions: snap.Settings.Instructions,
				Custom: snap.Settings.InstructionsSet, DefaultInstructions: d.DefaultInstructions},
		}))
	})
}

// messageCacheBytes bounds the rendered HTML of ended messages that a
// process keeps for pages (messageCache). An answer of a few hundred
// words is 1-2 KB of HTML, so 32 MiB holds about 100 conversations of 200
// messages: the ones people are reading now. A miss costs only rendering.
const messageCacheBytes = 32 << 20

// pageMessages returns the views of a page's messages. A message the store
// reported as known (its revision is the one held) is written from held;
// the others are rendered as they are now, and kept for the next page once
// they have ended.
func pageMessages(md *markdown.Renderer, cache *messageCache, conv string, held []cachedMessage, msgs []store.Message) []views.Message {
	out := make([]views.Message, len(msgs))
	var missed []store.Message
	var at []int // positions in msgs of missed
	for i, m := range msgs {
		if m.Known {
			// SnapshotKnown sets Known only for a revision it was given,
			// and it was given held's.
			out[i] = views.Message{Conv: conv, Index: m.Index, Rev: m.Rev, HTML: held[m.Index].HTML}
			continue
		}
		missed = append(missed, m)
		at = append(at, i)
	}
	var scratch bytes.Buffer
	for k, v := range msgrender.Messages(md, conv, missed) {
		if m := missed[k]; m.Status != store.StatusStreaming {
			v.HTML = views.RenderMessage(&scratch, v)
			cache.Put(conv, m.Index, m.Rev, v.HTML)
		}
		out[at[k]] = v
	}
	return out
}

// maxPooledPage bounds the buffers kept for rendering pages, so that one
// huge page does not stay in memory.
const maxPooledPage = 1 << 20

// renderBuffered renders c whole before writing it, in one write with its
// Content-Length: written through net/http's 4 KB buffer, a long page
// cost a write system call per 4 KB. Clients that take gzip get it
// compressed (at the fastest level: a page's HTML shrinks about tenfold, and
// a long conversation's page is most of what a visitor downloads).
func renderBuffered(w http.ResponseWriter, r *http.Request, bufs *sync.Pool, c templ.Component) {
	buf := bufs.Get().(*bytes.Buffer)
	defer putBuffer(bufs, buf)
	if err := c.Render(r.Context(), buf); err != nil {
		// Views do no I/O: only a cancelled request fails here.
		return
	}
	body := buf.Bytes()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Add("Vary", "Accept-Encoding")
	if len(body) >= minGzipPage && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		zbuf := bufs.Get().(*bytes.Buffer)
		defer putBuffer(bufs, zbuf)
		zw := pageGzips.Get().(*gzip.Writer)
		zw.Reset(zbuf)
		_, _ = zw.Write(body) // writes into memory: cannot fail
		_ = zw.Close()
		pageGzips.Put(zw)
		body = zbuf.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	// A failed write means the client went away; there is nobody to tell.
	_, _ = w.Write(body)
}

// minGzipPage is the smallest page worth compressing.
const minGzipPage = 1 << 10

// pageGzips holds gzip writers for pages: each holds about 1 MiB of state,
// too much to allocate per page.
var pageGzips = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
	return zw
}}

func putBuffer(bufs *sync.Pool, buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledPage {
		buf.Reset()
		bufs.Put(buf)
	}
}

// homeForm is the home page's composer: an offer of a fresh conversation ID
// sealed for this browser (or the offer a refused post carried, so that
// sending it again is the same post), with what was typed and why it was
// refused.
func homeForm(d Deps, r *http.Request, offer, text, errText string) views.HomeForm {
	if offer == "" {
		offer = d.Sessions.SealOffer(store.NewID(), session.Owner(r.Context()))
	}
	return views.HomeForm{ID: offer, Text: text, Error: errText, Models: modelList(r.Context(), d)}
}

// modelList is what the model pickers offer.
func modelList(ctx context.Context, d Deps) views.Models {
	return views.Models{List: d.Models.List(ctx), Default: d.Models.Default()}
}

// handleSource serves GET /c/{id}/markdown/{n}: message n as it was written
// (an answer's Markdown), for the Copy button. Whoever may read the page may
// read this.
func handleSource(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		n, err := strconv.Atoi(r.PathValue("n"))
		if !store.ValidConversationID(id) || err != nil || n < 0 {
			http.Error(w, "There is no such message.", http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		_, text, err := d.Store.MessageText(ctx, id, n)
		switch {
		case errors.Is(err, store.ErrNotFound):
			http.Error(w, "There is no such message.", http.StatusNotFound)
			return
		case err != nil:
			d.Log.Error("read message", "conversation", id, "message", n, "err", err)
			http.Error(w, "The conversation store is not answering. Try again in a few seconds.", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, text)
	})
}

// sidebar lists the browser's conversations. It is not worth failing a page
// for: if Redis does not answer, the page shows an empty list.
func sidebar(d Deps, r *http.Request, current, title string, watching bool) views.Sidebar {
	s := views.Sidebar{Current: current, CurrentTitle: title, Watching: watching}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// One more than it lists: to know that there are older ones.
	list, err := d.Store.List(ctx, session.Owner(r.Context()), views.SidebarSize+1)
	if err != nil {
		d.Log.Warn("list conversations", "err", err)
	}
	if len(list) > views.SidebarSize {
		list, s.More = list[:views.SidebarSize], true
	}
	// Pages without a conversation stream open the sidebar's own.
	s.Stream = current == ""
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
	errorPageWith(d, w, r, status, title, detail, nil)
}

// errorPageWith is errorPage with a form that gives back what the person
// sent (nil for none).
func errorPageWith(d Deps, w http.ResponseWriter, r *http.Request, status int, title, detail string, retry templ.Component) {
	render(w, r, status, views.ErrorPage(d.Assets, errorSidebar(d, r, status), title, detail, retry))
}

// errorSidebar is the sidebar of an error page. A 5xx most often means Redis
// is failing or slow: asking it again for the sidebar would only make the
// person wait twice as long for the error.
func errorSidebar(d Deps, r *http.Request, status int) views.Sidebar {
	if status >= http.StatusInternalServerError {
		return views.Sidebar{}
	}
	return sidebar(d, r, "", "", false)
}

func notFound(d Deps, w http.ResponseWriter, r *http.Request) {
	errorPage(d, w, r, http.StatusNotFound, "Not found",
		"There is no conversation at this address. It may have expired, or the link may be incomplete.")
}

// readFailed answers a failed read of conversation id for a whole page or
// file: not found, or the store not answering (logged as what, with again
// telling the person what to retry). It reports whether there was an error.
func readFailed(d Deps, w http.ResponseWriter, r *http.Request, what, id string, err error, again string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrNotFound):
		notFound(d, w, r)
	default:
		d.Log.Error(what, "conversation", id, "err", err)
		errorPage(d, w, r, http.StatusServiceUnavailable, "Temporarily unavailable",
			"The conversation store is not answering. "+again)
	}
	return true
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
func handleReady(log *slog.Logger, ready func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(ctx); err != nil {
			// The reason (a Redis address, say) is for the operator's log,
			// not for whoever asks on the public port.
			log.Warn("not ready", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}
