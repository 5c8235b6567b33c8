package handlers_test

// Tests of the routes that steer a conversation's tree: version switches,
// edits, continuations and settings, each against a private redis-server.

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/store"
)

// snapMessage returns message i of conv as the store has it now.
func (a *app) snapMessage(t *testing.T, conv string, i int) store.Message {
	t.Helper()
	snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
	if err != nil || len(snap.Messages) <= i {
		t.Fatalf("snapshot of %s: %v, %d messages", conv, err, len(snap.Messages))
	}
	return snap.Messages[i]
}

// expectRefusal fails unless an action answered code with words containing want.
func expectRefusal(t *testing.T, what string, code int, body string, wantCode int, want string) {
	t.Helper()
	if code != wantCode || !strings.Contains(body, want) {
		t.Errorf("%s: status %d, want %d saying %q; body %q", what, code, wantCode, want, body)
	}
}

// switchForm is the form of the version buttons of the message at index, as
// a page that is up to date sends it.
func (a *app) switchForm(t *testing.T, conv string, index, version int) url.Values {
	t.Helper()
	return url.Values{"index": {strconv.Itoa(index)}, "version": {strconv.Itoa(version)}, "rev": {a.snapMessage(t, conv, index).Rev}}
}

func TestRegenerateAndSwitchVersions(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "[[echo]]tides")
	first := a.waitStatus(t, conv, 1, store.StatusDone)
	path := "/c/" + conv

	code, body := a.action(t, a.Client, path+"/regenerate", url.Values{"rev": {first.Rev}, "index": {"1"}})
	if code != http.StatusOK {
		t.Fatalf("regenerate: %d %s", code, body)
	}
	second := a.waitStatus(t, conv, 1, store.StatusDone)
	if second.Versions != 2 || second.Version != 2 {
		t.Fatalf("after a regeneration the answer is version %d of %d, want 2 of 2", second.Version, second.Versions)
	}
	// The page shows "‹ 2/2 ›" (the arrows for the owner) and the model.
	_, page := a.getPage(t, a.Client, path)
	for _, want := range []string{`class="version-count">2/2</span>`, `aria-label="Previous version"`,
		`aria-label="Next version" disabled`, `<span class="model" title="The model that wrote this answer">demo</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}

	// Someone else may not switch; a version or a form that does not
	// exist is refused in words.
	other := a.NewBrowser()
	code, body = a.action(t, other, path+"/switch", a.switchForm(t, conv, 1, 1))
	expectRefusal(t, "a watcher's switch", code, body, http.StatusForbidden, "Only the person who started")
	code, body = a.action(t, a.Client, path+"/switch", a.switchForm(t, conv, 1, 3))
	expectRefusal(t, "version 3 of 2", code, body, http.StatusConflict, "That version is not there")
	code, body = a.action(t, a.Client, path+"/switch", url.Values{"index": {"7"}, "version": {"1"}, "rev": {second.Rev}})
	expectRefusal(t, "a message that does not exist", code, body, http.StatusConflict, "That version is not there")
	for _, form := range []url.Values{{"index": {"1"}, "version": {"0"}}, {"index": {"x"}, "version": {"1"}}, {"index": {"1"}}, {"index": {"1"}, "version": {"1"}}, {"index": {"1"}, "version": {"1"}, "rev": {"x"}}} {
		code, body = a.action(t, a.Client, path+"/switch", form)
		expectRefusal(t, "switch "+form.Encode(), code, body, http.StatusBadRequest, "The form is out of date")
	}

	stale := a.switchForm(t, conv, 1, 2)
	code, body = a.action(t, a.Client, path+"/switch", a.switchForm(t, conv, 1, 1))
	if code != http.StatusOK {
		t.Fatalf("switch to version 1: %d %s", code, body)
	}
	// A page that is behind names a revision the message no longer has.
	code, body = a.action(t, a.Client, path+"/switch", stale)
	expectRefusal(t, "a switch from a page that is behind", code, body, http.StatusConflict, "That version is not there")
	if m := a.snapMessage(t, conv, 1); m.Version != 1 || m.Versions != 2 {
		t.Errorf("after the switch the answer is version %d of %d, want 1 of 2", m.Version, m.Versions)
	}
	_, page = a.getPage(t, a.Client, path)
	if !strings.Contains(page, `class="version-count">1/2</span>`) || !strings.Contains(page, `aria-label="Previous version" disabled`) {
		t.Error("the page does not show version 1/2 with Previous disabled")
	}

	// While an answer is written the path cannot move.
	if res := a.post(t, conv, "[[slow]] and now slowly", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: %d", res.StatusCode)
	}
	code, body = a.action(t, a.Client, path+"/switch", a.switchForm(t, conv, 1, 2))
	expectRefusal(t, "a switch during an answer", code, body, http.StatusConflict, "still being written")
	a.action(t, a.Client, path+"/stop", nil)
}

func TestEditAddsAVersion(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "[[echo]]first words")
	a.waitStatus(t, conv, 1, store.StatusDone)
	user := a.snapMessage(t, conv, 0)
	path := "/c/" + conv
	edit := func(c *http.Client, text, rev string) (int, string) {
		return a.action(t, c, path+"/edit", url.Values{"index": {"0"}, "text": {text}, "rev": {rev}})
	}

	// Refusals say why in the editor (and the composer's line) and
	// change nothing.
	code, body := edit(a.NewBrowser(), "mine now", user.Rev)
	expectRefusal(t, "a watcher's edit", code, body, http.StatusForbidden, "Only the person who started")
	if !strings.Contains(body, `id="m-0-edit-error"`) {
		t.Errorf("the refusal is not in the editor's error line: %s", body)
	}
	code, body = edit(a.Client, "  \n", user.Rev)
	expectRefusal(t, "an empty edit", code, body, http.StatusBadRequest, "Type a message")
	code, body = edit(a.Client, strings.Repeat("x", 5000), user.Rev)
	expectRefusal(t, "a long edit", code, body, http.StatusRequestEntityTooLarge, "the limit is")
	code, body = edit(a.Client, "new words", "not-a-rev")
	expectRefusal(t, "an edit without a revision", code, body, http.StatusBadRequest, "The form is out of date")
	code, body = a.action(t, a.Client, path+"/edit", url.Values{"index": {"1"}, "text": {"an answer"}, "rev": {user.Rev}})
	expectRefusal(t, "an edit of an answer", code, body, http.StatusConflict, "That message is not there")

	code, body = edit(a.Client, "[[echo]]second words", user.Rev)
	if code != http.StatusOK || !strings.Contains(body, "editing: -1") {
		t.Fatalf("edit: %d %s", code, body)
	}
	// The same form again (a double submit) is the same edit.
	if code, body = edit(a.Client, "[[echo]]second words", user.Rev); code != http.StatusOK {
		t.Fatalf("the edit again: %d %s", code, body)
	}
	answer := a.waitStatus(t, conv, 1, store.StatusDone)
	edited := a.snapMessage(t, conv, 0)
	if edited.Text != "[[echo]]second words" || edited.Version != 2 || edited.Versions != 2 {
		t.Errorf("the edited message is %q, version %d of %d; want the new text as version 2 of 2", edited.Text, edited.Version, edited.Versions)
	}
	if !strings.Contains(answer.Text, "second words") {
		t.Errorf("the answer after the edit is %q", answer.Text)
	}
	// The old version stays: switching back shows it and its answer.
	if code, body = a.action(t, a.Client, path+"/switch", a.switchForm(t, conv, 0, 1)); code != http.StatusOK {
		t.Fatalf("switch back: %d %s", code, body)
	}
	if m := a.snapMessage(t, conv, 0); m.Text != "[[echo]]first words" || m.Versions != 2 {
		t.Errorf("version 1 is %q of %d versions", m.Text, m.Versions)
	}
	if m := a.snapMessage(t, conv, 1); !strings.Contains(m.Text, "first words") {
		t.Errorf("version 1's answer is %q", m.Text)
	}

	// While an answer is written nothing can be edited.
	if res := a.post(t, conv, "[[slow]] slowly", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: %d", res.StatusCode)
	}
	user = a.snapMessage(t, conv, 2)
	code, body = a.action(t, a.Client, path+"/edit", url.Values{"index": {"2"}, "text": {"faster"}, "rev": {user.Rev}})
	expectRefusal(t, "an edit during an answer", code, body, http.StatusConflict, "still being written")
	if !strings.Contains(body, `id="m-2-edit-error"`) {
		t.Errorf("the busy refusal is not in the editor's error line: %s", body)
	}
	a.action(t, a.Client, path+"/stop", nil)
}

func TestContinueRefusals(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "[[echo]]whole")
	done := a.waitStatus(t, conv, 1, store.StatusDone)
	path := "/c/" + conv
	code, body := a.action(t, a.NewBrowser(), path+"/continue", url.Values{"rev": {done.Rev}})
	expectRefusal(t, "a watcher's continue", code, body, http.StatusForbidden, "Only the person who started")
	code, body = a.action(t, a.Client, path+"/continue", url.Values{"rev": {"x"}})
	expectRefusal(t, "a continue without a revision", code, body, http.StatusBadRequest, "The form is out of date")
	code, body = a.action(t, a.Client, path+"/continue", url.Values{"rev": {done.Rev}})
	expectRefusal(t, "a continue of a whole answer", code, body, http.StatusConflict, "nothing to continue")
}

func TestSettings(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	path := "/c/" + a.create(t, "[[echo]]hello")
	conv := strings.TrimPrefix(path, "/c/")
	a.waitStatus(t, conv, 1, store.StatusDone)
	settings := func() store.Settings {
		t.Helper()
		snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
		if err != nil {
			t.Fatal(err)
		}
		return snap.Settings
	}

	code, body := a.action(t, a.Client, path+"/settings", url.Values{"model": {"small"}})
	if code != http.StatusOK || !strings.Contains(body, `model: "small"`) || settings().Model != "small" {
		t.Fatalf("choose a model: %d %s, stored %+v", code, body, settings())
	}
	code, body = a.action(t, a.Client, path+"/settings", url.Values{"model": {"huge"}})
	expectRefusal(t, "an unknown model", code, body, http.StatusBadRequest, "That model is not available here.")
	code, body = a.action(t, a.Client, path+"/settings", url.Values{"instructions": {"Answer in French.\r\nBriefly."}})
	if s := settings(); code != http.StatusOK || !s.InstructionsSet || s.Instructions != "Answer in French.\nBriefly." {
		t.Fatalf("set instructions: %d %s, stored %+v", code, body, s)
	}
	code, body = a.action(t, a.Client, path+"/settings", url.Values{"instructions": {strings.Repeat("y", 5000)}})
	expectRefusal(t, "long instructions", code, body, http.StatusRequestEntityTooLarge, "The instructions are")
	code, body = a.action(t, a.NewBrowser(), path+"/settings", url.Values{"model": {"small"}})
	expectRefusal(t, "a watcher's settings", code, body, http.StatusForbidden, "Only the person who started")
	code, body = a.action(t, a.Client, path+"/settings", nil)
	expectRefusal(t, "an empty change", code, body, http.StatusBadRequest, "Nothing to change")

	// The owner sees the picker and the instructions to edit; a watcher
	// reads them, and both get the downloads.
	_, page := a.getPage(t, a.Client, path)
	for _, want := range []string{`<option value="small" selected>`, `id="instructions"`, "Answer in French.&#10;Briefly.", `href="` + path + `/export.md"`} {
		if !strings.Contains(page, want) && !strings.Contains(page, strings.ReplaceAll(want, "&#10;", "\n")) {
			t.Errorf("the owner's page lacks %s", want)
		}
	}
	_, page = a.getPage(t, a.NewBrowser(), path)
	for _, want := range []string{"Instructions for this conversation:", `class="ro-model"`, `href="` + path + `/export.json"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the watcher's page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="instructions"`) || strings.Contains(page, `id="model-form"`) {
		t.Error("the watcher's page has the owner's controls")
	}

	code, body = a.action(t, a.Client, path+"/settings", url.Values{"reset": {"1"}})
	if s := settings(); code != http.StatusOK || s.InstructionsSet || !strings.Contains(body, "custom: false") {
		t.Fatalf("use the default instructions: %d %s, stored %+v", code, body, s)
	}
	if _, page = a.getPage(t, a.Client, path); !strings.Contains(page, "Be brief.") {
		t.Error("the owner's page does not show the default instructions")
	}
}

func TestCreateWithAModel(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	res, err := a.Client.PostForm(a.URL+"/c", url.Values{"text": {"hi"}, "model": {"huge"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("a conversation with an unknown model: %d", res.StatusCode)
	}
	conv := a.createWith(t, a.Client, url.Values{"text": {"hi"}, "model": {"small"}})
	snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
	if err != nil || snap.Settings.Model != "small" {
		t.Errorf("the conversation's model is %q (%v), want small", snap.Settings.Model, err)
	}
	_, page := a.getPage(t, a.Client, "/")
	if !strings.Contains(page, `<option value="small">small</option>`) || !strings.Contains(page, "Default (demo)") {
		t.Error("the home page has no model picker")
	}
}

// TestSwitchAndSettingsAreCounted: switches and settings changes count as
// actions, as renames do.
func TestSwitchAndSettingsAreCounted(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.limits.ActionsPerMinute = 2 })
	conv := a.create(t, "[[echo]]hi")
	a.waitStatus(t, conv, 1, store.StatusDone)
	path := "/c/" + conv
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
		code, body := a.action(t, a.Client, path+"/settings", url.Values{"instructions": {"number " + strconv.Itoa(i)}})
		if code != want {
			t.Fatalf("settings %d: %d, want %d\n%s", i, code, want, body)
		}
	}
	code, body := a.action(t, a.Client, path+"/switch", a.switchForm(t, conv, 1, 1))
	expectRefusal(t, "a switch past the limit", code, body, http.StatusTooManyRequests, "a lot of changes")
}
