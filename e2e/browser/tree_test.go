package browser_test

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// versionIs is a condition: message i shows "v/n" in its versions nav.
func versionIs(i, v, n int) string {
	return fmt.Sprintf(`document.querySelector('#m-%d .version-count')?.innerText.trim() === '%d/%d'`, i, v, n)
}

// userTextIs is a condition: user message i reads text.
func userTextIs(i int, text string) string {
	return fmt.Sprintf(`document.querySelector('#m-%d .bubble .text')?.innerText === %s`, i, strconv.Quote(text))
}

// editorOpen is a condition: user message i's editor shows.
func editorOpen(i int) string {
	return fmt.Sprintf(`document.getElementById('m-%d-edit')?.getClientRects().length > 0`, i)
}

// openEditor clicks user message i's Edit button and waits for its editor,
// filled with the message's text and focused.
func (tb *tab) openEditor(i int) {
	tb.t.Helper()
	tb.do(chromedp.Click(fmt.Sprintf("#m-%d button.edit-open", i)))
	tb.waitFor("the editor", editorOpen(i)+fmt.Sprintf(
		` && document.activeElement?.id === 'm-%[1]d-edit-text' && document.activeElement.value === document.querySelector('#m-%[1]d .bubble .text').innerText`, i))
}

// TestBrowserEditAndVersions edits a message in place (Ctrl+Enter sends,
// Escape cancels), walks its versions with ‹ ›, regenerates an answer, and
// checks that every tab and a watcher follow, and that a refused edit keeps
// the editor open with its text and says why.
func TestBrowserEditAndVersions(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)
	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "[[echo]]first words")
	tab1.waitFor("the answer to be done", statusIs(1, "done"))
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	watcher := b.newTab("watcher", chromedp.WithNewBrowserContext())
	watcher.navigate(conv)
	watcher.waitFor("the answer to be done", statusIs(1, "done"))
	if got := evalJS[string](tab1, `document.querySelector('#m-1-foot .model')?.innerText ?? ''`); got != "demo" {
		t.Errorf("the answer's model reads %q, want demo", got)
	}

	// Escape closes the editor and keeps the message as it was.
	tab1.openEditor(0)
	tab1.do(chromedp.SendKeys("#m-0-edit-text", " and more"), chromedp.KeyEvent(kb.Escape))
	tab1.waitFor("the editor to close", `!(`+editorOpen(0)+`) && `+userTextIs(0, "[[echo]]first words"))

	// Ctrl+Enter sends the edit: a second version, in every tab.
	tab1.openEditor(0)
	tab1.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('m-0-edit-text').value = '[[echo]]second words'`),
		chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	for _, tb := range []*tab{tab1, tab2, watcher} {
		tb.waitFor("version 2/2 of the edited message", versionIs(0, 2, 2)+" && "+userTextIs(0, "[[echo]]second words"))
		tb.waitFor("its answer", statusIs(1, "done")+` && document.querySelector('#m-1 .md').innerText.includes('second words')`)
	}
	tab1.waitFor("the editor to close", `!(`+editorOpen(0)+`)`)
	if evalJS[bool](watcher, `document.querySelector('#m-0 .version-prev').getClientRects().length > 0`) {
		t.Error("the watcher sees the owner's version buttons")
	}

	// ‹ shows the first version and its answer again, everywhere.
	tab2.do(chromedp.Click("#m-0 .version-prev"))
	for _, tb := range []*tab{tab1, tab2, watcher} {
		tb.waitFor("version 1/2", versionIs(0, 1, 2)+" && "+userTextIs(0, "[[echo]]first words")+
			` && document.querySelector('#m-1 .md').innerText.includes('first words')`)
	}
	if !evalJS[bool](tab1, `document.querySelector('#m-0 .version-prev').disabled && !document.querySelector('#m-0 .version-next').disabled`) {
		t.Error("at version 1 of 2, ‹ should be disabled and › enabled")
	}

	// Regenerate adds a version of the answer; the old one stays.
	tab1.do(chromedp.Click("#m-1 form.regen button"))
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("version 2/2 of the answer", versionIs(1, 2, 2)+" && "+statusIs(1, "done"))
	}

	// A refused edit (an answer is being written) keeps the editor open
	// with what was typed, and says why.
	refused := regexp.MustCompile(`status of 409 .*/edit$`)
	tab1.allow = func(p problem) bool { return p.kind == "log" && refused.MatchString(p.text) }
	tab1.openEditor(0)
	tab1.do(chromedp.SendKeys("#m-0-edit-text", " kept"))
	tab2.send("[[slow]] slowly now")
	tab1.waitFor("the slow answer", statusIs(3, "streaming"))
	tab1.do(chromedp.Click("#m-0-edit button.edit-send"))
	tab1.waitFor("the reason", `document.getElementById('m-0-edit-error')?.innerText.includes('still being written')`)
	if !evalJS[bool](tab1, editorOpen(0)+` && document.getElementById('m-0-edit-text').value === '[[echo]]first words kept'`) {
		t.Error("the refused edit closed the editor or lost its text")
	}
	tab1.do(chromedp.Click("#composer button.stop"))
	tab1.waitFor("the answer to stop", statusIs(3, "stopped"))
}

// TestBrowserSettings chooses the conversation's model with the picker and
// sets and resets its instructions in Options; a watcher reads them.
func TestBrowserSettings(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)
	tb := b.newTab("owner")
	conv := tb.startConversation(base, "[[echo]]settings")
	tb.waitFor("the answer to be done", statusIs(1, "done"))

	// The picker shows the default, and a choice is kept by the server.
	if got := evalJS[string](tb, `document.querySelector('#model-form select').selectedOptions[0].innerText`); got != "Default (demo)" {
		t.Errorf("the picker shows %q, want Default (demo)", got)
	}
	tb.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.querySelector('#model-form select');
		s.value = 'demo';
		s.dispatchEvent(new Event('change', {bubbles: true}));
	})()`))
	tb.waitFor("the model to be stored", fmt.Sprintf(
		`fetch(%q, {cache: 'no-store'}).then(r => r.text()).then(t => t.includes('<option value="demo" selected>'))`, conv))

	// Instructions: saved, shown again when Options opens, reset.
	openMenu := func() {
		tb.do(chromedp.Click("details.menu > summary"))
		tb.waitFor("the menu", `document.querySelector('details.menu').open`)
	}
	// Text that Datastar's expressions would take for code: a signal, an
	// action, a statement's end, quotes and a final backslash.
	const tricky = `Answer in French; say "$model" and @post('x') \\`
	openMenu()
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('instructions').value = `+strconv.Quote(tricky)),
		chromedp.Click(".instructions-form button[type=submit]:not([form])"))
	// (Text in a closed menu has no innerText.)
	tb.waitFor("the instructions to be the conversation's", `!document.querySelector('details.menu').open && `+
		`document.querySelector('.instructions-state').textContent.trim() === 'Set for this conversation.'`)
	openMenu()
	if got := evalJS[string](tb, `document.getElementById('instructions').value`); got != tricky {
		t.Errorf("Options opened again show %q", got)
	}
	// A page loaded now has them in its signals, exactly.
	watcher := b.newTab("watcher", chromedp.WithNewBrowserContext())
	watcher.navigate(conv)
	watcher.waitFor("the watcher's page", statusIs(1, "done"))
	if got := evalJS[string](watcher, `document.querySelector('.ro-instructions').textContent`); got != tricky {
		t.Errorf("the watcher reads the instructions %q", got)
	}
	tb.do(chromedp.Reload())
	tb.waitFor("the page again", statusIs(1, "done"))
	openMenu()
	if got := evalJS[string](tb, `document.getElementById('instructions').value`); got != tricky {
		t.Errorf("after a reload Options show %q", got)
	}
	if got := evalJS[string](watcher, `document.querySelector('.ro-model').textContent.trim()`); got != "demo" {
		t.Errorf("the watcher reads the model %q", got)
	}
	tb.do(chromedp.Click(".instructions-form button[form=instructions-reset]"))
	tb.waitFor("the default instructions", `document.querySelector('.instructions-state').textContent.trim() === 'The default instructions of this Parley.'`)
	if !evalJS[bool](tb, `document.querySelector('.instructions-form button[form=instructions-reset]').disabled`) {
		t.Error("Use default is enabled while the default is in use")
	}

	// Changes reach the watcher's open page live, tricky text exactly.
	tb.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.querySelector('#model-form select');
		s.value = 'demo-brief';
		s.dispatchEvent(new Event('change', {bubbles: true}));
	})()`))
	watcher.waitFor("the watcher to see the new model", `document.querySelector('.ro-model').textContent.trim() === 'demo-brief'`)
	const live = `Live: "$x" \\`
	openMenu()
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('instructions').value = `+strconv.Quote(live)),
		chromedp.Click(".instructions-form button[type=submit]:not([form])"))
	watcher.waitFor("the watcher to see the new instructions", `document.querySelector('.ro-instructions').textContent === `+strconv.Quote(live))
}
