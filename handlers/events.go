package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
)

// handleEvents serves GET /c/{id}/events: the live stream of a conversation,
// and of the browser's conversation list in the sidebar.
// The cursor is the Last-Event-ID header on a reconnect, else the "after"
// parameter the page was rendered with. A cursor that is malformed, forged or
// trimmed from the log is not an error: the viewer gets the current state of
// everything, which is always correct.
func handleEvents(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !store.ValidConversationID(id) {
			http.Error(w, "There is no conversation at this address.", http.StatusNotFound)
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
		raw := r.Header.Get("Last-Event-ID")
		if raw == "" {
			raw = r.URL.Query().Get("after")
		}
		cursor, err := store.ParseID(raw)
		if err != nil {
			cursor = store.ID{}
		}
		gzip := d.GzipStreams && acceptsGzip(r.Header.Values("Accept-Encoding"))
		// The stream also carries this browser's conversation list: a tab
		// needs one connection, not two (HTTP/1.1 allows six per origin).
		// A browser new at this request has no list to show: its sidebar
		// would only cost a subscription (clients without cookies, such as
		// bots and load tools, are new every time).
		opt := live.WatchOptions{Owner: session.Owner(r.Context())}
		if session.IsNew(r.Context()) {
			opt.Owner = ""
		}
		o = watchStream(w, r, d.gone, gzip, release, func(ctx context.Context, open func() (live.Stream, error)) error {
			return d.Hub.Watch(ctx, id, cursor, opt, open)
		})
		started, err := o.started, o.err
		switch {
		case o.detached || err == nil:
			return
		case errors.Is(err, store.ErrNotFound) && isDatastar(r) && !started:
			// Deleted or expired while the page was away (a hidden tab, a
			// reconnect): the page says so, and the clean end stops the client
			// from retrying. A bare 404 would leave it "reconnecting" for ever.
			frame.Open(w, r, http.StatusOK)
			_, _ = w.Write(live.DeletedEvents())
			return
		case errors.Is(err, store.ErrNotFound):
			http.Error(w, "There is no conversation at this address.", http.StatusNotFound)
			return
		case started || isDatastar(r):
			// The beta.11 client does not reconnect after a clean end of the
			// response, whatever its status. Aborting the connection makes it
			// retry (on another process, behind a load balancer) with its
			// Last-Event-ID, and lose nothing.
			panic(http.ErrAbortHandler)
		default:
			streamRefused(w, err)
		}
	})
}

// responseStream writes frames to an SSE response.
type responseStream struct {
	rc   *http.ResponseController
	w    http.ResponseWriter
	gzip bool // the response is gzip-encoded; live writes gzip
}

// Gzip implements live.GzipStream.
func (s responseStream) Gzip() bool { return s.gzip }

func (s responseStream) Write(p []byte) error {
	_, err := s.w.Write(p)
	return err
}

func (s responseStream) Flush() error { return s.rc.Flush() }

// SetWriteDeadline bounds the writes up to the next flush: live drops a
// viewer whose connection takes nothing for its write timeout.
func (s responseStream) SetWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }

// acceptsGzip reports whether Accept-Encoding values accept gzip: listed
// (or matched by *) with a non-zero quality. An explicit gzip entry wins over
// * (RFC 9110, section 12.5.3).
func acceptsGzip(values []string) bool {
	explicit, wildcard := -1.0, -1.0
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			q, ok := quality(params)
			if !ok {
				q = 0
			}
			switch name {
			case "gzip", "x-gzip":
				explicit = max(explicit, q)
			case "*":
				wildcard = max(wildcard, q)
			}
		}
	}
	if explicit >= 0 {
		return explicit > 0
	}
	return wildcard > 0
}

// quality reads q from the parameters of an Accept-Encoding item (1 when
// absent); ok is false when it is malformed.
func quality(params string) (float64, bool) {
	for _, p := range strings.Split(params, ";") {
		k, v, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || q < 0 || q > 1 {
			return 0, false
		}
		return q, true
	}
	return 1, true
}
