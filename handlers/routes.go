// Package handlers translates HTTP into calls on the store, the live hub and
// the generation manager, and renders views. Every route is listed in
// NewServer.
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/clientaddr"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// Limits are the bounds on what a client may send. The limits that admit
// an answer are generation's (generation.Limits).
type Limits struct {
	MaxMessageBytes int   // one user message
	MaxBodyBytes    int64 // one request body (form encoding and all)
	// ActionsPerMinute bounds stops, renames, version switches and settings
	// changes by a browser (three times that by an address), and as many
	// downloads and searches, counted apart; 0 is no limit.
	ActionsPerMinute int
	// ViewersPerAddress bounds the live streams (conversation and sidebar)
	// one client address may have open in this process; 0 is no limit.
	ViewersPerAddress int
	// RequestTimeout bounds the Redis work of one page load or action, so a
	// slow Redis answers people with a 503 instead of holding them; 0 is 5 s.
	RequestTimeout time.Duration
}

// requestTimeout is RequestTimeout, or its default.
func (l Limits) requestTimeout() time.Duration {
	if l.RequestTimeout > 0 {
		return l.RequestTimeout
	}
	return 5 * time.Second
}

// Deps are what the handlers need.
type Deps struct {
	Log   *slog.Logger
	Store *store.Store
	Hub   *live.Hub
	Gen   *generation.Manager
	// Sessions gives each browser its anonymous owner ID.
	Sessions *session.Manager
	MD       *markdown.Renderer
	Assets   views.Assets
	Static   http.Handler
	Limits   Limits
	// Ready reports whether the process can serve (Redis reachable).
	Ready func(ctx context.Context) error
	// GzipStreams gzips live streams for clients that accept it.
	GzipStreams bool
	// Clients names the client address behind a request, which limits
	// count against (PARLEY_TRUSTED_PROXY says which headers to believe).
	Clients clientaddr.Resolver
	// Refusals counts refused requests by reason (nil: not counted).
	Refusals Refusals
	// Access says who may use this Parley (PARLEY_ACCESS); nil is open.
	// Guesses counts passphrase tries per client address (code mode).
	Access  *access.Gate
	Guesses GuessCounter
	// Models are the models people may choose for a conversation.
	Models Models
	// DefaultInstructions are the instructions of a conversation whose
	// owner set none (PARLEY_SYSTEM_PROMPT), shown in its Options.
	DefaultInstructions string

	// streams counts live streams per client address (NewServer makes it).
	streams *addressStreams
	// gone notices the clients of hijacked streams going away (NewServer).
	gone *goneWatch
}

// Refusals is told why each refused request was refused (metrics).
type Refusals interface {
	Refused(reason string)
}

// NewServer returns the application's handler with every route.
func NewServer(d Deps) http.Handler {
	d.streams = newAddressStreams(d.Limits.ViewersPerAddress)
	d.gone = newGoneWatch()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", handleHome(d))
	mux.Handle("POST /c", handleCreate(d))
	mux.Handle("GET /c/{id}", handleConversation(d))
	mux.Handle("GET /c/{id}/events", handleEvents(d))
	mux.Handle("POST /c/{id}/messages", handlePost(d))
	mux.Handle("POST /c/{id}/stop", handleStop(d))
	mux.Handle("POST /c/{id}/regenerate", handleRegenerate(d))
	mux.Handle("POST /c/{id}/switch", handleSwitch(d))
	mux.Handle("POST /c/{id}/edit", handleEdit(d))
	mux.Handle("POST /c/{id}/continue", handleContinue(d))
	mux.Handle("POST /c/{id}/settings", handleSettings(d))
	mux.Handle("POST /c/{id}/title", handleRename(d))
	mux.Handle("POST /c/{id}/delete", handleDelete(d))
	mux.Handle("GET /c/{id}/markdown/{n}", handleSource(d))
	mux.Handle("GET /c/{id}/export.md", handleExport(d, markdownExport()))
	mux.Handle("GET /c/{id}/export.json", handleExport(d, jsonExport()))
	mux.Handle("GET /conversations", handleConversations(d))
	mux.Handle("GET /sidebar/events", handleSidebarEvents(d))
	mux.Handle("GET /static/", d.Static)
	mux.Handle("GET /favicon.ico", handleFavicon(d.Assets.Icon))
	mux.Handle("GET /healthz", handleHealth())
	mux.Handle("GET /readyz", handleReady(d.Log, d.Ready))
	mux.Handle("POST /access", handleAccess(d))
	// Browsers send Sec-Fetch-Site/Origin: a cross-site form or fetch cannot
	// post on a person's behalf.
	// The security headers go on every answer, the cross-origin 403 too.
	// Access is checked once the session's owner is known (access.go).
	return securityHeaders(http.NewCrossOriginProtection().Handler(d.Sessions.Middleware(requireAccess(d, mux))))
}

// contentSecurityPolicy allows only this origin's scripts, styles and
// connections. 'unsafe-eval' is there because the Datastar client compiles
// its data-* expressions with new Function; inline scripts, inline styles
// and every other origin stay forbidden, so text that slipped into the page
// as markup could still not run.
const contentSecurityPolicy = "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		if session.IsHTTPS(r) {
			// Browsers then never try plain HTTP for a year, where a
			// network in between could read or rewrite the pages.
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
