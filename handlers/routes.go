// Package handlers translates HTTP into calls on the store, the live hub and
// the generation manager, and renders views. Every route is listed in
// NewServer.
package handlers

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// Limits are the bounds on what a client may send.
type Limits struct {
	MaxMessageBytes int   // one user message
	MaxBodyBytes    int64 // one request body (form encoding and all)
}

// Deps are what the handlers need.
type Deps struct {
	Log    *slog.Logger
	Store  *store.Store
	Hub    *live.Hub
	Gen    *generation.Manager
	MD     *markdown.Renderer
	Assets views.Assets
	Static http.Handler
	Limits Limits
	// Ready reports whether the process can serve (Redis reachable).
	Ready func(ctx context.Context) error
}

// NewServer returns the application's handler with every route.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", handleHome(d))
	mux.Handle("POST /c", handleCreate(d))
	mux.Handle("GET /c/{id}", handleConversation(d))
	mux.Handle("GET /c/{id}/events", handleEvents(d))
	mux.Handle("POST /c/{id}/messages", handlePost(d))
	mux.Handle("POST /c/{id}/stop", handleStop(d))
	mux.Handle("GET /static/", d.Static)
	mux.Handle("GET /healthz", handleHealth())
	mux.Handle("GET /readyz", handleReady(d.Ready))
	// Browsers send Sec-Fetch-Site/Origin: a cross-site form or fetch cannot
	// post on a person's behalf.
	return http.NewCrossOriginProtection().Handler(securityHeaders(mux))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}
