package browser_test

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserFocusOutlivesItsControl: a keyboard user who presses a button
// that then goes (Stop once the answer ends, Regenerate while the new
// answer is written, a version button as its message is drawn anew, Save in
// the Options menu as it closes) keeps the focus somewhere useful instead
// of losing it to the page's body.
func TestBrowserFocusOutlivesItsControl(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	tb := b.newTab("focus")
	tb.emulate(desktop, "light")
	tb.startConversation(base, "[[echo]]first question")
	tb.waitFor("the first answer", statusIs(1, "done"))
	focused := func() string {
		return evalJS[string](tb, `(() => { const a = document.activeElement; return a === document.body ? 'body' : (a.classList[0] || a.id || a.tagName) })()`)
	}
	// press focuses the control sel and presses Enter on it.
	press := func(sel string) {
		t.Helper()
		tb.do(chromedp.Focus(sel), chromedp.KeyEvent(kb.Enter))
	}

	tb.send("[[slow]] and now slowly")
	tb.waitFor("the slow answer", statusIs(3, "streaming"))
	press("#composer button.stop")
	tb.waitFor("the answer to stop", statusIs(3, "stopped"))
	tb.waitFor("the focus to go to the composer after Stop", `document.activeElement?.id === 'text'`)

	press("#m-3 form.regen button")
	tb.waitFor("the regenerated answer", statusIs(3, "streaming"))
	tb.waitFor("the focus to leave the page's body", `document.activeElement !== document.body`)
	if id := evalJS[string](tb, `document.activeElement.id`); id != "text" {
		t.Errorf("while the new version is written the focus is on %q, want the composer", focused())
	}
	press("#composer button.stop")
	tb.waitFor("the new version to stop", statusIs(3, "stopped"))

	press("#m-3 .version-prev")
	tb.waitFor("version 1 of 2", `document.querySelector('#m-3 .version-count')?.innerText === '1/2'`)
	tb.waitFor("the focus to stay in the message", `!!document.activeElement?.closest('#m-3')`)
	if f := focused(); f != "version-next" {
		t.Errorf("after showing version 1 the focus is on %q, want the next-version button (the previous one is disabled)", f)
	}

	// On a touch screen the focus never goes to the composer by itself: the
	// on-screen keyboard would cover the answer.
	ph := b.newTab("focus phone")
	ph.emulate(phone, "light")
	ph.navigate(evalJS[string](tb, `location.href`))
	ph.waitFor("the page", statusIs(3, "stopped"))
	ph.send("[[slow]] once more")
	ph.waitFor("the slow answer", statusIs(5, "streaming"))
	ph.do(chromedp.Focus("#composer button.stop"), chromedp.KeyEvent(kb.Enter))
	ph.waitFor("the answer to stop", statusIs(5, "stopped"))
	if id := evalJS[string](ph, `document.activeElement.id`); id == "text" {
		t.Error("on a touch screen the focus went to the composer after Stop")
	}

	// Focus the person moved away (a click on the page's background) stays
	// where they put it when the control it left goes later.
	tb.send("[[slow]] and again")
	tb.waitFor("another slow answer", statusIs(7, "streaming"))
	tb.do(chromedp.Focus("#composer button.stop"), chromedp.MouseClickXY(640, 24))
	tb.waitFor("the focus on the page's body", `document.activeElement === document.body`)
	other := b.newTab("focus, another tab")
	other.navigate(evalJS[string](tb, `location.href`))
	other.waitFor("the slow answer", statusIs(7, "streaming"))
	other.do(chromedp.Click("#composer button.stop"))
	tb.waitFor("the answer to stop", statusIs(7, "stopped"))
	tb.waitFor("a frame for the focus to settle", `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
	if f := focused(); f != "body" {
		t.Errorf("after a click on the background, the focus moved to %q when Stop went", f)
	}

	tb.do(chromedp.Click("details.menu > summary"))
	evalJS[bool](tb, `(document.getElementById('rename').value = '', true)`)
	tb.do(chromedp.SendKeys("#rename", "Slow things"+kb.Enter))
	tb.waitFor("the rename", `document.title === 'Slow things · Parley'`)
	if f := evalJS[bool](tb, `document.activeElement === document.querySelector('details.menu > summary')`); !f {
		t.Errorf("after Save in Options the focus is on %q, want the Options button", focused())
	}
}
