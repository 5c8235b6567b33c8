package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// The routes that steer a conversation's tree (store/model.go): switch a
// message's version, edit a user message, continue a cut-off answer, and
// the conversation's settings. Each change reaches every tab and viewer by
// the live stream; the answer to the request itself carries only a
// refusal's reason, or this tab's own client state.

// Models are the models a deployment offers (llm.Catalog).
type Models interface {
	List(ctx context.Context) []string
	Allows(ctx context.Context, name string) bool
	Default() string
}

// errOutOfDate refuses a form whose hidden fields make no sense: a page
// from an older version of Parley, or a hand-made request.
var errOutOfDate = badRequest(http.StatusBadRequest, "The form is out of date. Reload the page and try again.")

// formIndex reads a form's non-negative integer field name.
func formIndex(r *http.Request, name string) (int, error) {
	n, err := strconv.Atoi(r.PostFormValue(name))
	if err != nil || n < 0 {
		return 0, errOutOfDate
	}
	return n, nil
}

// handleSwitch serves POST /c/{id}/switch (index, version, rev): the owner
// shows another version of a message, and the path below it. The message's
// revision keeps a page that is behind from switching another message.
func handleSwitch(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := readForm(d, w, r)
		var index, version int
		if err == nil {
			index, err = formIndex(r, "index")
		}
		if err == nil {
			version, err = formIndex(r, "version")
		}
		if err == nil && version < 1 {
			err = errOutOfDate // versions count from 1
		}
		rev := r.PostFormValue("rev")
		if _, perr := store.ParseID(rev); err == nil && perr != nil {
			err = errOutOfDate
		}
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = countAction(ctx, d, askerOf(d, r))
			if err == nil {
				err = d.Store.Switch(ctx, store.Switch{Conv: id, Owner: session.Owner(ctx), Index: index, Version: version, Rev: rev})
			}
		}
		if errors.Is(err, store.ErrNoSuchMessage) {
			err = errNoSuchVersion
		}
		respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
	})
}

var errNoSuchVersion = badRequest(http.StatusConflict, "That version is not there any more. Reload the page to see the conversation as it is.")

// handleEdit serves POST /c/{id}/edit (index, text, rev): the owner sends a
// new version of a user message, whose answer then streams; the old version
// and what followed it stay as the other branch. The message's revision
// names the edit, so a double submit is one edit. With Datastar a refusal
// says why in the editor, which stays open with the text; success closes
// it.
func handleEdit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		text, err := readMessage(d, w, r)
		index, ierr := formIndex(r, "index")
		rev := r.PostFormValue("rev")
		if _, perr := store.ParseID(rev); err == nil && (ierr != nil || perr != nil) {
			err = errOutOfDate
		}
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = d.Gen.Edit(ctx, generation.Edit{Asker: askerOf(d, r), Conv: id, Index: index, Text: text,
				Key: "edit:" + strconv.Itoa(index) + ":" + rev, Rev: rev})
		}
		if errors.Is(err, store.ErrNoSuchMessage) {
			err = errNoSuchEdit
		}
		if !isDatastar(r) || ierr != nil {
			respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
			return
		}
		answerEdit(d, w, r, index, err)
	})
}

var errNoSuchEdit = badRequest(http.StatusConflict, "That message is not there any more. Reload the page to see the conversation as it is.")

// answerEdit answers a Datastar edit: success closes this tab's editor;
// a refusal's reason goes in the editor's error line (and the composer's,
// where other refusals show), the editor and its text untouched.
func answerEdit(d Deps, w http.ResponseWriter, r *http.Request, index int, err error) {
	if err == nil {
		frame.Open(w, r, http.StatusOK)
		_, _ = w.Write(frame.Signals("", "{editing: -1}"))
		return
	}
	status, msg := statusOf(d, err)
	setRetryAfter(w, err)
	var sb strings.Builder
	_ = views.EditError(index, msg).Render(r.Context(), &sb)
	_ = views.ComposerError(msg).Render(r.Context(), &sb)
	frame.Open(w, r, status)
	_, _ = w.Write(frame.Merge("", sb.String()))
}

// handleContinue serves POST /c/{id}/continue (rev): the owner asks the
// model to go on with the last answer, which it cut at its length limit.
func handleContinue(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := readForm(d, w, r)
		rev := r.PostFormValue("rev")
		if _, perr := store.ParseID(rev); err == nil && perr != nil {
			err = errOutOfDate
		}
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
			defer cancel()
			err = d.Gen.Continue(ctx, generation.Continuation{Asker: askerOf(d, r), Conv: id, Rev: rev})
		}
		if errors.Is(err, store.ErrNoSuchMessage) {
			err = errNothingToContinue
		}
		respond(d, w, r, "/c/"+id, err, views.ComposerError(""))
	})
}

var errNothingToContinue = badRequest(http.StatusConflict, "There is nothing to continue: the last answer was not cut off.")

// errNoModel refuses a model this deployment does not offer.
var errNoModel = badRequest(http.StatusBadRequest, "That model is not available here.")

// readModel reads a form's model field: "" (or none) is the default.
func readModel(ctx context.Context, d Deps, r *http.Request) (string, error) {
	model := r.PostFormValue("model")
	if model != "" && !d.Models.Allows(ctx, model) {
		return "", errNoModel
	}
	return model, nil
}

// handleSettings serves POST /c/{id}/settings: the owner changes the
// conversation's model (model; "" is the default), its instructions
// (instructions), or goes back to the default instructions (reset=1). This
// tab's signals change at once; the others' by the live stream.
func handleSettings(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := readForm(d, w, r)
		ctx, cancel := context.WithTimeout(r.Context(), d.Limits.requestTimeout())
		defer cancel()
		change := store.SettingsChange{Conv: id, Owner: session.Owner(ctx)}
		if err == nil {
			change.ResetInstructions = r.PostFormValue("reset") == "1"
			change, err = readSettings(ctx, d, r, change)
		}
		if err == nil && !store.ValidConversationID(id) {
			err = store.ErrNotFound
		}
		if err == nil {
			err = countAction(ctx, d, askerOf(d, r))
		}
		if err == nil {
			err = d.Store.SetSettings(ctx, change)
		}
		if err != nil || !isDatastar(r) {
			respond(d, w, r, "/c/"+id, err, nil)
			return
		}
		frame.Open(w, r, http.StatusOK)
		_, _ = w.Write(frame.Signals("", settingsPatch(change)))
	})
}

// readSettings reads what a settings form changes into c.
func readSettings(ctx context.Context, d Deps, r *http.Request, c store.SettingsChange) (store.SettingsChange, error) {
	if _, ok := r.PostForm["model"]; ok {
		model, err := readModel(ctx, d, r)
		if err != nil {
			return c, err
		}
		c.Model = &model
	}
	if vals, ok := r.PostForm["instructions"]; ok && !c.ResetInstructions {
		text := strings.ReplaceAll(strings.ReplaceAll(vals[0], "\r\n", "\n"), "\r", "\n")
		switch {
		case !utf8.ValidString(text):
			return c, badRequest(http.StatusBadRequest, "The instructions are not valid UTF-8 text.")
		case len(text) > d.Limits.MaxMessageBytes:
			return c, badRequest(http.StatusRequestEntityTooLarge,
				"The instructions are %s; the limit is %s. Shorten them.", kb(len(text)), kb(d.Limits.MaxMessageBytes))
		}
		c.Instructions = &text
	}
	if c.Model == nil && c.Instructions == nil && !c.ResetInstructions {
		return c, badRequest(http.StatusBadRequest, "Nothing to change: choose a model or write instructions.")
	}
	return c, nil
}

// settingsPatch is the signals of a settings change that succeeded.
func settingsPatch(c store.SettingsChange) string {
	var parts []string
	if c.Model != nil {
		parts = append(parts, "model: "+views.SignalString(*c.Model))
	}
	switch {
	case c.ResetInstructions:
		parts = append(parts, "instructions: '', custom: false")
	case c.Instructions != nil:
		parts = append(parts, "instructions: "+views.SignalString(*c.Instructions)+", custom: true")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
