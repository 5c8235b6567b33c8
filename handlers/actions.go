package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/a-h/templ"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// requestError is a client's mistake, with words for a person.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(status int, format string, args ...any) error {
	return &requestError{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps every error an action can meet to an HTTP status and a
// message a person can act on, and counts it by reason. Internal errors are
// logged here, once.
func statusOf(d Deps, err error) (int, string) {
	if d.Refusals != nil {
		d.Refusals.Refused(refusalReason(err))
	}
	return describe(d, err)
}

// refusalReason names what refused a request, for the metric.
func refusalReason(err error) string {
	var le *store.LimitError
	var re *requestError
	var ne net.Error
	switch {
	case errors.As(err, &le):
		return le.Limit + "_" + le.Who
	case errors.Is(err, generation.ErrAtCapacity):
		return "capacity"
	case errors.As(err, &re) && re.status == http.StatusRequestEntityTooLarge:
		return "too_large"
	case errors.Is(err, store.ErrConversationFull):
		return "conversation_full"
	case errors.Is(err, store.ErrForbidden):
		return "forbidden"
	case errors.Is(err, store.ErrBusy):
		return "busy"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "unavailable"
	}
	return "other"
}

// describe is statusOf's mapping.
func describe(d Deps, err error) (int, string) {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return re.status, re.msg
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "This conversation does not exist (it may have expired)."
	case errors.Is(err, store.ErrBusy):
		return http.StatusConflict, "An answer is still being written. Wait for it to finish, or press Stop."
	case errors.Is(err, generation.ErrAtCapacity):
		return http.StatusServiceUnavailable, "The server is busy writing other answers. Try again in a few seconds."
	case errors.Is(err, store.ErrForbidden):
		return http.StatusForbidden, "Only the person who started this conversation can change it. You can watch it, or start your own."
	case errors.Is(err, store.ErrConversationFull):
		return http.StatusConflict, "This conversation has reached its length limit. Start a new conversation to go on."
	case errors.Is(err, store.ErrNothingToRegenerate):
		return http.StatusConflict, "There is no answer to write again."
	}
	var le *store.LimitError
	if errors.As(err, &le) && le.Limit == store.LimitStored {
		return http.StatusConflict, "This browser keeps as much text in its conversations as it may. Delete some conversations (Options, Delete) to go on."
	}
	if errors.As(err, &le) {
		return http.StatusTooManyRequests, limitText(le)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		// Redis is slow: a write may still run after we gave up on it, so
		// "nothing was saved" would be a guess. Sending again is safe: the
		// form's key makes a repeat of the same post a no-op.
		d.Log.Warn("request timed out", "err", err)
		return http.StatusServiceUnavailable, "The server is slow to answer right now. Try again in a few seconds."
	}
	d.Log.Error("request failed", "err", err)
	return http.StatusServiceUnavailable, "Something went wrong on our side and nothing was saved. Try again in a few seconds."
}

// isDatastar reports whether the request came from the Datastar client, which
// wants its answer as events that patch the page.
func isDatastar(r *http.Request) bool { return r.Header.Get("Datastar-Request") == "true" }

// readMessage reads and checks the message text of a post. A refused text
// is returned with its error, so that the person can be given it back.
func readMessage(d Deps, w http.ResponseWriter, r *http.Request) (text string, err error) {
	if err := readForm(d, w, r); err != nil {
		return "", err
	}
	// Browsers send line breaks as CR LF; a lone CR is a line break too
	// (the fuzzer found "\r\r\n" leaving a CR LF after one replacement).
	text = strings.ReplaceAll(strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n"), "\r", "\n")
	switch {
	case !utf8.ValidString(text):
		return "", badRequest(http.StatusBadRequest, "The message is not valid UTF-8 text.")
	case strings.TrimSpace(text) == "":
		return "", badRequest(http.StatusBadRequest, "Type a message before sending.")
	case len(text) > d.Limits.MaxMessageBytes:
		return text, badRequest(http.StatusRequestEntityTooLarge,
			"Your message is %s; the limit is %s. Shorten it or split it into several messages.",
			kb(len(text)), kb(d.Limits.MaxMessageBytes))
	}
	return text, nil
}

// limitText says which shared limit refused a request and what to do.
func limitText(le *store.LimitError) string {
	wait := waitText(le.RetryAfter)
	switch {
	case le.Limit == store.LimitPosts && le.Who == "address":
		return "Too many messages are coming from your network. Try again in " + wait + "."
	case le.Limit == store.LimitPosts:
		return "You are sending messages too quickly. Try again in " + wait + "."
	case le.Limit == store.LimitConversations:
		return "You have started many conversations this hour. Go on in one you have, or try again in " + wait + "."
	case le.Limit == store.LimitAnswers && le.Who == "address":
		return "Too many answers are being written for your network at once. Wait for one to finish, or stop it."
	case le.Limit == store.LimitAnswers:
		return "You already have answers being written in other conversations. Wait for one to finish, or stop it."
	case le.Limit == store.LimitActions:
		return "That is a lot of changes in a minute. Try again in " + wait + "."
	case le.Limit == store.LimitTokens:
		return "This Parley has used its model budget for today. It resets at midnight UTC, in " + wait + "."
	}
	return "A limit was reached. Try again in " + wait + "."
}

// waitText says a wait in words: "12 seconds", "3 minutes", "5 h 20 min".
func waitText(d time.Duration) string {
	s := max(1, int((d+time.Second-1)/time.Second))
	switch {
	case s < 90:
		return plural(s, "second")
	case s < 90*60:
		return plural((s+59)/60, "minute")
	}
	m := (s + 59) / 60
	return strconv.Itoa(m/60) + " h " + strconv.Itoa(m%60) + " min"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func kb(n int) string {
	if n < 1024 {
		return strconv.Itoa(n) + " bytes"
	}
	return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KB"
}

// visitor is who an action counts against: the browser and its address.
type visitor struct {
	owner string
	addr  string
}

func visitorOf(d Deps, r *http.Request) visitor {
	return visitor{owner: session.Owner(r.Context()), addr: d.Clients.Of(r)}
}

// admit checks every limit shared by the processes that a new answer in conv
// counts against, cheapest refusal first: the deployment's daily model
// tokens, posts a minute by the browser and by its address, conversations an
// hour when it starts one, then answers at once by both. A fresh cookie
// resets none of the address's counts. The returned release ends the
// reservations (call it when the answer ends, or if it is not started).
func admit(ctx context.Context, d Deps, v visitor, conv, gen string, create bool) (release func(), err error) {
	l := d.Limits
	browser, addr := store.Browser(v.owner), store.Address(v.addr)
	if err := d.Store.CheckTokens(ctx, l.DailyTokens); err != nil {
		return nil, err
	}
	if err := d.Store.CheckStored(ctx, v.owner, l.StoredBytes); err != nil {
		return nil, err
	}
	counters := []store.Counter{
		{Limit: store.LimitPosts, Who: browser, Max: l.PostsPerMinute, Window: time.Minute},
		{Limit: store.LimitPosts, Who: addr, Max: l.AddressPostsPerMinute, Window: time.Minute},
	}
	if create {
		counters = append(counters,
			store.Counter{Limit: store.LimitConversations, Who: browser, Max: l.ConversationsPerHour, Window: time.Hour},
			store.Counter{Limit: store.LimitConversations, Who: addr, Max: l.AddressConversationsPerHr, Window: time.Hour})
	}
	if err := d.Store.CountAll(ctx, counters...); err != nil {
		return nil, err
	}
	if err := d.Store.ReserveAnswer(ctx, browser, conv, gen, l.OwnerGenerations, l.MaxAnswerDuration); err != nil {
		return nil, err
	}
	if err := d.Store.ReserveAnswer(ctx, addr, conv, gen, l.AddressGenerations, l.MaxAnswerDuration); err != nil {
		releaseAnswer(d, browser, conv, gen, l.OwnerGenerations)
		return nil, err
	}
	return func() {
		releaseAnswer(d, browser, conv, gen, l.OwnerGenerations)
		releaseAnswer(d, addr, conv, gen, l.AddressGenerations)
	}, nil
}

// countAnswer adds an ended answer's bytes to what its browser keeps; a
// failure only leaves the count low.
func countAnswer(d Deps, owner, conv string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := d.Store.LastAnswerBytes(ctx, conv)
	if err == nil {
		err = d.Store.AddStored(ctx, owner, n)
	}
	if err != nil {
		d.Log.Warn("count an answer's stored bytes", "conversation", conv, "err", err)
	}
}

// countAction counts a change that starts no answer (stop, rename) against
// the browser's and its address's actions a minute: each costs Redis work
// and notices to every viewer.
func countAction(ctx context.Context, d Deps, v visitor) error {
	n := d.Limits.ActionsPerMinute
	return d.Store.CountAll(ctx,
		store.Counter{Limit: store.LimitActions, Who: store.Browser(v.owner), Max: n, Window: time.Minute},
		store.Counter{Limit: store.LimitActions, Who: store.Address(v.addr), Max: 3 * n, Window: time.Minute})
}

// releaseAnswer ends one reservation of admit; a failure only leaves it to
// age out.
func releaseAnswer(d Deps, who store.Subject, conv, gen string, max int) {
	if max <= 0 {
		return
	}
	// Not the request's context: this runs when the answer ends.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Store.ReleaseAnswer(ctx, who, conv, gen); err != nil {
		d.Log.Warn("release an answer's reservation; it ages out", "err", err)
	}
}

// start runs one answer: the checks that can refuse it come first (owner,
// then this process's capacity, then the shared limits), then begin stores
// it and takes the lease. begin reports false for a repeated request, which
// starts nothing and is not an error; so does start (started false).
func start(ctx context.Context, d Deps, v visitor, conv string, create bool, begin func(gen string) (bool, error)) (started bool, err error) {
	if !create {
		if err := mustOwn(ctx, d, conv); err != nil {
			return false, err
		}
	}
	slot, err := d.Gen.Reserve()
	if err != nil {
		return false, err
	}
	gen := store.NewID()
	release, err := admit(ctx, d, v, conv, gen, create)
	if err != nil {
		d.Gen.Abandon(slot)
		return false, err
	}
	started, err = begin(gen)
	if err != nil || !started {
		// Nothing started: the reservations are this generation's own, so
		// giving them back leaves any answer running there its own.
		d.Gen.Abandon(slot)
		release()
		return false, err
	}
	d.Gen.Start(slot, conv, gen, func() {
		release()
		countAnswer(d, v.owner, conv) // only an answer that ran adds bytes
	})
	return true, nil
}

// post stores a message and starts its answer. A duplicate (same key) starts
// nothing and is not an error: it is the same post, retried.
func post(ctx context.Context, d Deps, v visitor, conv, text, key string, create bool) error {
	owner := v.owner
	started, err := start(ctx, d, v, conv, create, func(gen string) (bool, error) {
		res, err := d.Store.Post(ctx, store.Post{Conv: conv, Owner: owner, Text: text, Key: key, Gen: gen, Create: create})
		return err == nil && !res.Duplicate, err
	})
	if err != nil || !started {
		return err // a repeated post was counted the first time
	}
	if err := d.Store.Touch(ctx, owner, conv); err != nil {
		// The answer runs; only the sidebar misses the conversation.
		d.Log.Warn("index conversation", "conversation", conv, "err", err)
	}
	if err := d.Store.AddStored(ctx, owner, int64(len(text))); err != nil {
		d.Log.Warn("count a message's stored bytes", "conversation", conv, "err", err)
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
			err = post(ctx, d, visitorOf(d, r), id, text, "first", true)
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
			render(w, r, status, views.Home(d.Assets, errorSidebar(d, r, status), homeForm(d, r, offer, text, msg)))
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
			err = post(ctx, d, visitorOf(d, r), id, text, key, false)
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
		err := countAction(ctx, d, visitorOf(d, r))
		if err == nil {
			err = mustOwn(ctx, d, id)
		}
		if err == nil {
			_, err = d.Store.Stop(ctx, id)
		}
		respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
	})
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

// readForm parses a form body within the request limit. Forms come
// urlencoded (plain HTML) or multipart (Datastar's form content type).
func readForm(d Deps, w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, d.Limits.MaxBodyBytes)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(d.Limits.MaxBodyBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return badRequest(http.StatusRequestEntityTooLarge,
				"The request is larger than %s. Shorten your message.", kb(int(d.Limits.MaxBodyBytes)))
		}
		return badRequest(http.StatusBadRequest, "The form could not be read (%v). Reload the page and try again.", err)
	}
	return nil
}

// handleRegenerate serves POST /c/{id}/regenerate: the owner asks for the
// last answer again (Regenerate, or Retry after a failure). The form names the
// answer's revision, so a double click regenerates once.
func handleRegenerate(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := readForm(d, w, r)
		rev := r.PostFormValue("rev")
		if _, perr := store.ParseID(rev); err == nil && perr != nil {
			err = badRequest(http.StatusBadRequest, "The form is out of date. Reload the page and try again.")
		}
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = regenerate(ctx, d, visitorOf(d, r), id, rev)
		}
		respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
	})
}

func regenerate(ctx context.Context, d Deps, v visitor, conv, rev string) error {
	_, err := start(ctx, d, v, conv, false, func(gen string) (bool, error) {
		return d.Store.Regenerate(ctx, store.Regen{Conv: conv, Owner: v.owner, Gen: gen, Rev: rev})
	})
	return err
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
			err = countAction(ctx, d, visitorOf(d, r))
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

// setRetryAfter tells a refused client when to come back: the rate
// limit's own wait, or a few seconds for a limit that frees itself when an
// answer ends.
func setRetryAfter(w http.ResponseWriter, err error) {
	var le *store.LimitError
	switch {
	case errors.As(err, &le) && le.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((le.RetryAfter+time.Second-1)/time.Second))))
	case errors.As(err, &le) && le.Limit == store.LimitStored:
		// Waiting frees nothing: deleting does.
	case errors.As(err, &le), errors.Is(err, generation.ErrAtCapacity):
		w.Header().Set("Retry-After", strconv.Itoa(busyRetrySeconds))
	}
}

// busyRetrySeconds is the wait suggested while answers at once are at a
// limit: most answers take seconds.
const busyRetrySeconds = 5

// respond answers an action. Datastar gets events (the fragment on success,
// the error in the composer otherwise, with the error's status); a plain
// form gets a redirect back or an error page.
func respond(d Deps, w http.ResponseWriter, r *http.Request, back string, err error, ok templ.Component) {
	status, msg := http.StatusOK, ""
	if err != nil {
		status, msg = statusOf(d, err)
	}
	setRetryAfter(w, err)
	if !isDatastar(r) {
		if err != nil {
			errorPage(d, w, r, status, "That did not work", msg)
			return
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	var sb strings.Builder
	c := ok
	if err != nil {
		c = views.ComposerError(msg)
	}
	_ = c.Render(r.Context(), &sb)
	frame.Open(w, r, status)
	// A failed write means the client went away; there is nobody to tell.
	_, _ = w.Write(frame.Merge("", sb.String()))
	_ = http.NewResponseController(w).Flush()
}
