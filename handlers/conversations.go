package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// listPageSize is how many conversations a page of the whole list holds,
// and searchResults how many a search shows.
const (
	listPageSize  = 50
	searchResults = 100
	// maxQueryRunes bounds a search: titles are at most store.MaxTitleRunes.
	maxQueryRunes = 200
)

// handleConversations serves GET /conversations (q, page): all of this
// browser's conversations (the sidebar lists only the newest), a page at a
// time, or those whose title holds q. A search reads up to a thousand conversations' titles, so
// it counts as an action; the pages cost what the sidebar does.
func handleConversations(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := strings.TrimSpace(r.URL.Query().Get("q"))
		if !utf8.ValidString(q) {
			q = strings.ToValidUTF8(q, "")
		}
		if utf8.RuneCountInString(q) > maxQueryRunes {
			q = string([]rune(q)[:maxQueryRunes])
		}
		page, err := strconv.Atoi(r.URL.Query().Get("page"))
		if err != nil || page < 1 {
			page = 1
		}
		page = min(page, 10_000)
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		owner := session.Owner(ctx)
		l := views.ConversationList{Query: q, Page: page, Now: time.Now()}
		var list []store.Summary
		if q != "" {
			if err = countRead(ctx, d, askerOf(d, r)); err == nil {
				// One more than shown: to say there are more.
				list, err = d.Store.Search(ctx, owner, q, searchResults+1)
				if len(list) > searchResults {
					list, l.Older = list[:searchResults], true
				}
			}
		} else {
			list, l.Older, err = d.Store.ListFrom(ctx, owner, (page-1)*listPageSize, listPageSize)
		}
		status := http.StatusOK
		var le *store.LimitError
		switch {
		case errors.As(err, &le):
			status, l.Error = statusOf(d, err)
			setRetryAfter(w, err)
		case err != nil:
			d.Log.Error("list conversations", "err", err)
			status, l.Error = http.StatusServiceUnavailable, "The conversation store is not answering. Reload the page in a few seconds."
		}
		for _, c := range list {
			l.Items = append(l.Items, views.Summary{ID: c.ID, Title: c.Title, Updated: c.Updated})
		}
		w.Header().Set("Cache-Control", "no-store")
		render(w, r, status, views.ConversationsPage(d.Assets, errorSidebar(d, r, status), l))
	})
}
