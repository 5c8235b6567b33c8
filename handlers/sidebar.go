package handlers

import (
	"context"
	"net/http"

	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/session"
)

// handleSidebarEvents serves GET /sidebar/events: the live list of this
// browser's conversations, for pages without a conversation stream to carry
// it (the home and error pages). It is plain SSE: its frames are few.
func handleSidebarEvents(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if session.IsNew(r.Context()) {
			// No cookie came: a new browser has no conversations to list,
			// and nothing can change that on this stream.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		release, ok := takeStream(d, w, r)
		if !ok {
			return
		}
		var o watchOutcome
		defer func() {
			if !o.detached { // a detached stream releases its place at its end
				release()
			}
		}()
		owner := session.Owner(r.Context())
		o = watchStream(w, r, d.gone, false, release, func(ctx context.Context, open func() (live.Stream, error)) error {
			return d.Hub.WatchSidebar(ctx, owner, open)
		})
		started, err := o.started, o.err
		switch {
		case o.detached || err == nil:
			return
		case started || isDatastar(r):
			// As for a conversation stream: the beta.11 client retries only
			// a connection that broke, never one that ended.
			panic(http.ErrAbortHandler)
		default:
			streamRefused(w, err)
		}
	})
}
