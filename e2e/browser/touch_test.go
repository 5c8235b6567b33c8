package browser_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserPhoneTapTargets: on a touch screen every control of a
// conversation is at least 40 px square, and the editor's buttons keep
// their words whole (the message's text may break anywhere, they may not).
func TestBrowserPhoneTapTargets(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	tb := b.newTab("phone")
	tb.emulate(phone, "light")
	tb.startConversation(base, "[[long 80]] Tell me about tides")
	tb.waitFor("the first answer", statusIs(1, "done"))
	tb.do(chromedp.Click("#m-1 form.regen button"))
	tb.waitFor("the second version", `document.querySelector('#m-1 .version-count')?.innerText === '2/2' && document.getElementById('m-1-foot')?.dataset.status === 'done'`)

	for _, sel := range []string{"#m-1 .version-prev", "#m-1 .version-next", "#m-1 form.regen button", "#m-1 .copy-answer",
		"#m-1 .code-bar button", "#m-0 .edit-open", ".nav-toggle", "details.menu > summary", ".model-select"} {
		box := tb.boxOf(sel)
		if w, h := box.Right-box.Left, box.Bottom-box.Top; w < 40 || h < 40 {
			t.Errorf("%s is %.0fx%.0f px, want at least 40x40", sel, w, h)
		}
	}

	tb.openEditor(0)
	for _, sel := range []string{"#m-0-edit .edit-cancel", "#m-0-edit button[type=submit]"} {
		if h := tb.boxOf(sel); h.Bottom-h.Top > 48 {
			t.Errorf("%s is %.0f px high: its word wraps", sel, h.Bottom-h.Top)
		}
	}
	if hint := tb.boxOf("#m-0-edit .hint"); hint.Bottom > hint.Top {
		t.Error("the editor shows keyboard hints on a touch screen")
	}
}
