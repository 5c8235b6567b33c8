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

	"github.com/a-h/templ"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/live"
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
	case errors.Is(err, store.ErrNoSuchMessage):
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
	case le.Limit == store.LimitReads:
		return "That is a lot of downloads and searches in a minute. Try again in " + wait + "."
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

// streamRefused answers a live stream that could not start, before anything
// was sent: this process is at its viewers' limit, or the hub cannot
// subscribe right now. Either frees itself, so the client is told when to
// come back.
func streamRefused(w http.ResponseWriter, err error) {
	if errors.Is(err, live.ErrTooManyViewers) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "This server is at its limit of live viewers. Try again shortly.", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Retry-After", "2")
	http.Error(w, "Live updates are unavailable right now. Try again shortly.", http.StatusServiceUnavailable)
}
