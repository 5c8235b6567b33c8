package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// askerOf is whom a request counts against: its browser and its address.
func askerOf(d Deps, r *http.Request) generation.Asker {
	return generation.Asker{Owner: session.Owner(r.Context()), Addr: d.Clients.Of(r)}
}

// countAction counts a change that starts no answer (a stop, rename,
// switch or settings change: each costs Redis work and notices to every
// viewer) against the browser's and its address's actions a minute.
func countAction(ctx context.Context, d Deps, a generation.Asker) error {
	return countPerMinute(ctx, d, a, store.LimitActions)
}

// countRead counts a download or a search (each reads much: a whole tree,
// a thousand titles) against a budget of its own, as large as the actions':
// reading never uses up the Stop of a runaway answer.
func countRead(ctx context.Context, d Deps, a generation.Asker) error {
	return countPerMinute(ctx, d, a, store.LimitReads)
}

func countPerMinute(ctx context.Context, d Deps, a generation.Asker, limit string) error {
	n := d.Limits.ActionsPerMinute
	return d.Store.CountAll(ctx,
		store.Counter{Limit: limit, Who: store.Browser(a.Owner), Max: n, Window: time.Minute},
		store.Counter{Limit: limit, Who: store.Address(a.Addr), Max: 3 * n, Window: time.Minute})
}

// mustOwn checks that the request's browser owns conversation id.
func mustOwn(ctx context.Context, d Deps, id string) error {
	if !store.ValidConversationID(id) {
		return store.ErrNotFound
	}
	meta, err := d.Store.Meta(ctx, id)
	if err != nil {
		return err
	}
	if meta.Owner != session.Owner(ctx) {
		return store.ErrForbidden
	}
	return nil
}

// handleCreate serves POST /c: the home form. The server chooses every
// conversation ID: the form carries an offer (session.SealOffer) of a fresh
// ID, sealed for this browser and good for a day, so a double submit finds
// the conversation it already created and starts no second answer. A post
// without the field (an API client, a script) gets a fresh ID; anything
// else in it (forged, expired, another browser's, a bare ID) is refused
// with 400, the text kept. With Datastar, success sends the page to the
// conversation and a refusal shows in the composer, whose text stays; a
// plain form gets the home page back with the text, the reason and an offer.
func handleCreate(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		text, err := readMessage(d, w, r)
		owner := session.Owner(r.Context())
		id, offer := "", ""
		if err == nil {
			id, offer, err = createID(d, r, owner)
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			var model string
			model, err = readModel(ctx, d, r)
			if err == nil {
				err = d.Gen.Post(ctx, generation.Message{Asker: askerOf(d, r), Conv: id, Text: text, Key: "first", Create: true, Model: model})
			}
			if errors.Is(err, store.ErrExists) {
				err = createdBefore(ctx, d, id, owner, text)
			}
			if errors.Is(err, errTaken) || errors.Is(err, errSentBefore) {
				offer = "" // spent: the page gets a fresh one
			}
		}
		switch {
		case err == nil && isDatastar(r):
			frame.Open(w, r, http.StatusOK)
			_, _ = w.Write(frame.Signals("", "{go: "+strconv.Quote("/c/"+id)+"}"))
		case err == nil:
			http.Redirect(w, r, "/c/"+id, http.StatusSeeOther)
		case isDatastar(r):
			respond(d, w, r, "", err, nil)
		default:
			status, msg := statusOf(d, err)
			setRetryAfter(w, err)
			w.Header().Set("Cache-Control", "no-store")
			form := homeForm(d, r, offer, text, msg)
			form.Model = r.PostFormValue("model")
			render(w, r, status, views.Home(d.Assets, errorSidebar(d, r, status), form))
		}
	})
}

// errStaleOffer refuses a home form whose offer this server did not make
// for this browser, or made over a day ago.
var errStaleOffer = badRequest(http.StatusBadRequest, "The form is out of date. Reload the page and send your message again.")

// errTaken refuses an offer whose ID names a conversation that was deleted
// (the store keeps a tombstone) or someone else's: the form cannot start
// anything any more.
var errTaken = badRequest(http.StatusConflict,
	"The conversation this form started was deleted, or is not yours. Reload the page and send your message again.")

// createID returns the ID a home form post creates, and the offer that
// names it for owner (to give back if the post is refused, so that sending
// it again is still the same post): the form's offer if it is valid, or a
// fresh ID when the form has no offer at all.
func createID(d Deps, r *http.Request, owner string) (id, offer string, err error) {
	vals, given := r.PostForm["conv"]
	if !given {
		id = store.NewID()
		return id, d.Sessions.SealOffer(id, owner), nil
	}
	if len(vals) != 1 {
		return "", "", errStaleOffer
	}
	id, err = d.Sessions.OpenOffer(vals[0], owner)
	if err != nil || !store.ValidConversationID(id) {
		return "", "", errStaleOffer
	}
	return id, vals[0], nil
}

// createdBefore decides a create the store refused because id is taken
// (ErrExists): owner's own conversation started with text is the same form
// submitted again (nil: go to it); the same form with other text (a page
// restored from the browser's cache, edited and sent) is errSentBefore;
// anything else (someone else's, or deleted: the store keeps a tombstone)
// is errTaken. Never a silent redirect that drops what was typed.
func createdBefore(ctx context.Context, d Deps, id, owner, text string) error {
	meta, err := d.Store.Meta(ctx, id)
	switch {
	case err == nil && meta.Owner == owner:
		_, first, err := d.Store.MessageText(ctx, id, 0)
		if err == nil && first != text {
			return errSentBefore
		}
		return err
	case err == nil, errors.Is(err, store.ErrNotFound):
		return errTaken
	}
	return err
}

// errSentBefore: the form's conversation was started, with other text.
var errSentBefore = badRequest(http.StatusConflict,
	"This form already started a conversation. Your text is kept: send it again from here to start a new one.")

// handlePost serves POST /c/{id}/messages: the next message of a conversation.
// A refusal keeps the text: Datastar shows the reason in the composer (the
// text stays in the box); a plain form gets an error page whose form holds it.
func handlePost(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		text, err := readMessage(d, w, r)
		key := r.PostFormValue("key")
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil && !store.ValidConversationID(key) {
			err = badRequest(http.StatusBadRequest, "The form is out of date. Reload the page and send your message again.")
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = d.Gen.Post(ctx, generation.Message{Asker: askerOf(d, r), Conv: id, Text: text, Key: key})
		}
		if err != nil && !isDatastar(r) && text != "" {
			status, msg := statusOf(d, err)
			setRetryAfter(w, err)
			if !store.ValidConversationID(key) {
				key = store.NewID()
			}
			errorPageWith(d, w, r, status, "Your message was not sent", msg,
				views.RetryForm("/c/"+id+"/messages", "key", key, text))
			return
		}
		respond(d, w, r, "/c/"+id, err, views.Composer(id, store.NewID(), "", true))
	})
}

// handleStop serves POST /c/{id}/stop. Only the owner may stop the answer;
// the request is stored in Redis and reaches the generation wherever it runs.
func handleStop(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		err := countAction(ctx, d, askerOf(d, r))
		if err == nil {
			err = mustOwn(ctx, d, id)
		}
		if err == nil {
			_, err = d.Store.Stop(ctx, id)
		}
		respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
	})
}

// handleRegenerate serves POST /c/{id}/regenerate (rev, index): the owner
// asks for an answer again as a new version (Regenerate, or Retry after a
// failure); the old one stays. The form names the answer's position (none
// is the last answer) and revision, so a double click regenerates once.
func handleRegenerate(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := readForm(d, w, r)
		rev := r.PostFormValue("rev")
		index := 0 // the last answer, for a form without the field
		if _, perr := store.ParseID(rev); err == nil && perr != nil {
			err = errOutOfDate
		}
		if _, given := r.PostForm["index"]; err == nil && given {
			index, err = formIndex(r, "index")
		}
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = d.Gen.Regenerate(ctx, generation.Regeneration{Asker: askerOf(d, r), Conv: id, Index: index, Rev: rev})
		}
		respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
	})
}

// handleRename serves POST /c/{id}/title: the owner names the conversation.
func handleRename(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := readForm(d, w, r)
		title := store.CleanTitle(r.PostFormValue("title"))
		if err == nil && (title == "" || !utf8.ValidString(title)) {
			err = badRequest(http.StatusBadRequest, "Type a title (up to %d characters).", store.MaxTitleRunes)
		}
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = countAction(ctx, d, askerOf(d, r))
			if err == nil {
				_, err = d.Store.SetTitle(ctx, store.Title{Conv: id, Owner: session.Owner(ctx), Text: title})
			}
		}
		respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
	})
}

// handleDelete serves POST /c/{id}/delete: the owner removes the
// conversation and everything stored for it. Open pages say it is gone.
func handleDelete(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := readForm(d, w, r)
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = d.Store.Delete(ctx, id, session.Owner(ctx))
		}
		if err == nil && isDatastar(r) {
			// The page's own stream says it is gone, in order after every
			// frame it may still carry: patching here as well could race
			// those frames to elements that no longer exist.
			frame.Open(w, r, http.StatusOK)
			return
		}
		respond(d, w, r, "/", err, nil)
	})
}
