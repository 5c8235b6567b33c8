package browser_test

// Browser tests of the page's layout and flow (issue 10): the composer stays
// in the window, the view follows a streaming answer until the person
// scrolls up, the phone drawer, the tab's title, refusals that keep the
// text, copying an answer and the live sidebar. Positions are measured with
// getBoundingClientRect, never compared as pixels.

import (
	"github.com/parley-chat/parley/e2e/harness"

	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// brisk answers a [[long N]] message of a few hundred pieces in about a
// second: long answers without long tests.
var brisk = harness.Speed{TPS: 400, Tokens: 120}

// viewport is a screen to test at.
type viewport struct {
	name          string
	width, height int64
	phone         bool
}

var (
	desktop = viewport{"desktop", 1280, 800, false}
	phone   = viewport{"phone", 390, 844, true}
)

func (tb *tab) emulate(v viewport, scheme string) {
	tb.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if v.phone {
		opts = []chromedp.EmulateViewportOption{chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2)}
	}
	tb.do(chromedp.EmulateViewport(v.width, v.height, opts...))
	if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
	}); err != nil {
		tb.t.Fatalf("emulate %s scheme: %v", scheme, err)
	}
}

// longConversation starts a conversation of n long answers and returns its
// URL once the last is done.
func (tb *tab) longConversation(base string, n int) string {
	tb.t.Helper()
	conv := tb.startConversation(base, "[[long 260]] Tell me about streams")
	tb.waitFor("the first answer to be done", statusIs(1, "done"))
	for i := 1; i < n; i++ {
		tb.send(fmt.Sprintf("[[long 260]] And part %d?", i+1))
		tb.waitFor(fmt.Sprintf("answer %d to be done", i+1), statusIs(2*i+1, "done"))
	}
	return conv
}

// TestBrowserScreenshots saves screenshots of a conversation with several
// long answers on a desktop and a phone screen, light and dark, one while an
// answer streams below a reader who scrolled up, and the phone's drawer, for
// people to look at. It writes into the tree, so it runs only with
// PARLEY_SCREENSHOTS=1.
func TestBrowserScreenshots(t *testing.T) {
	t.Parallel()
	if os.Getenv("PARLEY_SCREENSHOTS") != "1" {
		t.Skip("set PARLEY_SCREENSHOTS=1 to write testdata/screenshots")
	}
	base := startParley(t, brisk)
	b := startBrowser(t)
	tab1 := b.newTab("setup")
	conv := tab1.longConversation(base, 4)

	shoot := func(tb *tab, file string) { saveScreenshot(t, tb, file) }
	for _, v := range []viewport{desktop, phone} {
		for _, scheme := range []string{"light", "dark"} {
			tb := b.newTab(v.name + " " + scheme)
			tb.emulate(v, scheme)
			tb.navigate(conv)
			tb.waitFor("the last answer to be done", statusIs(7, "done"))
			suffix := ""
			if scheme == "dark" {
				suffix = "-dark"
			}
			shoot(tb, "conversation-"+v.name+suffix+".png")
			if v.phone && scheme == "light" {
				tb.do(chromedp.Click(".nav-toggle"))
				tb.waitFor("the drawer to open", `document.getElementById('sidebar').getBoundingClientRect().left >= 0`)
				shoot(tb, "drawer-phone.png")
			}
			tb.close()
		}
	}

	// The home page, where a conversation starts.
	for _, v := range []viewport{desktop, phone} {
		tb := b.newTab("home " + v.name)
		tb.emulate(v, "light")
		tb.navigate(base + "/")
		tb.waitFor("the home page's sidebar", `!!document.querySelector('#side-list a')`)
		shoot(tb, "home-"+v.name+".png")
		tb.close()
	}

	// Mid-answer, scrolled up: "Jump to latest" shows.
	tb := b.newTab("mid-stream")
	tb.emulate(desktop, "light")
	tb.navigate(conv)
	tb.waitFor("the last answer to be done", statusIs(7, "done"))
	tb.send("[[slow]] One more, slowly")
	tb.waitFor("the answer to stream", statusIs(9, "streaming"))
	tb.do(wheel(640, 300, -900))
	tb.waitFor("the jump button", `!document.getElementById('jump').hidden`)
	shoot(tb, "conversation-streaming-jump.png")
	tb.do(chromedp.Click("#composer button.stop"))
	tb.waitFor("the answer to stop", statusIs(9, "stopped"))

	shootTree(b, base, shoot)
}

// saveScreenshot writes what tb shows to testdata/screenshots/file.
func saveScreenshot(t *testing.T, tb *tab, file string) {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", filepath.Join(dir, file))
}

// shootTree shows a conversation with versions: an edited question and a
// regenerated answer, with the editor open, the Options menu open, on a
// desktop and a phone, and as a watcher sees it.
func shootTree(b *browser, base string, shoot func(*tab, string)) {
	tb := b.newTab("tree")
	tb.emulate(desktop, "light")
	conv := tb.startConversation(base, "What makes the tides?")
	tb.waitFor("the answer", statusIs(1, "done"))
	tb.openEditor(0)
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('m-0-edit-text').value = 'What makes the tides, in two paragraphs?'`),
		chromedp.Click("#m-0-edit button.edit-send"))
	tb.waitFor("the edit's answer", versionIs(0, 2, 2)+" && "+statusIs(1, "done"))
	tb.do(chromedp.Click("#m-1 form.regen button"))
	tb.waitFor("the regenerated answer", versionIs(1, 2, 2)+" && "+statusIs(1, "done"))
	tb.do(chromedp.Click("#composer textarea#text"))
	shoot(tb, "tree-desktop.png")
	// The top, with the pointer over the question: its Edit shows.
	tb.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('scroller').scrollTop = 0`))
	q := tb.boxOf("#m-0 .bubble")
	tb.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, (q.Left+q.Right)/2, (q.Top+q.Bottom)/2))
	shoot(tb, "tree-top-desktop.png")
	tb.openEditor(0)
	shoot(tb, "tree-editor-desktop.png")
	tb.do(chromedp.KeyEvent(kb.Escape), chromedp.Click("details.menu > summary"))
	tb.waitFor("the menu", `document.querySelector('details.menu').open`)
	shoot(tb, "tree-options-desktop.png")
	tb.close()
	for _, v := range []viewport{phone} {
		tb := b.newTab("tree " + v.name)
		tb.emulate(v, "dark")
		tb.navigate(conv)
		tb.waitFor("the answer", statusIs(1, "done"))
		shoot(tb, "tree-"+v.name+"-dark.png")
		tb.close()
	}
	w := b.newTab("tree watcher", chromedp.WithNewBrowserContext())
	w.emulate(desktop, "light")
	w.navigate(conv)
	w.waitFor("the answer", statusIs(1, "done"))
	w.do(chromedp.Click("details.menu > summary"))
	w.waitFor("the menu", `document.querySelector('details.menu').open`)
	shoot(w, "tree-watcher-options-desktop.png")
}

// box is an element's getBoundingClientRect, in CSS pixels.
type box struct {
	Top, Bottom, Left, Right float64
}

// boxOf returns the box of the element matching sel (zero when there is none).
func (tb *tab) boxOf(sel string) box {
	tb.t.Helper()
	return evalJS[box](tb, fmt.Sprintf(`(() => {
		const r = document.querySelector(%q)?.getBoundingClientRect();
		return r ? {Top: r.top, Bottom: r.bottom, Left: r.left, Right: r.right} : {Top: 0, Bottom: 0, Left: 0, Right: 0};
	})()`, sel))
}

// windowHeight is the height of the layout viewport.
func (tb *tab) windowHeight() float64 {
	tb.t.Helper()
	return evalJS[float64](tb, `window.innerHeight`)
}

// checkInView fails the test unless the composer lies inside the window and
// answer i's status line inside the visible part of the message list.
func (tb *tab) checkInView(what string, i int) {
	tb.t.Helper()
	h := tb.windowHeight()
	c := tb.boxOf("#composer")
	if c.Top < 0 || c.Bottom > h+0.5 || c.Bottom-c.Top < 20 {
		tb.t.Errorf("%s: %s: the composer's box is %+v in a window %v px high", tb.name, what, c, h)
	}
	s := tb.boxOf("#scroller")
	f := tb.boxOf(fmt.Sprintf("#m-%d-foot", i))
	if f.Top < s.Top-0.5 || f.Bottom > s.Bottom+0.5 {
		tb.t.Errorf("%s: %s: answer %d's status line %+v is outside the visible messages %+v", tb.name, what, i, f, s)
	}
}

// atBottom is a condition: the message list is scrolled to its end.
const atBottom = `(() => { const s = document.getElementById('scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight < 2 })()`

// TestBrowserComposerStaysInView sends six long answers at a desktop and a
// phone size and checks, as each finishes, that the composer lies inside the
// window and the answer's status line is in view (the view followed it); then
// that a reload, and a second tab joining late, land on the latest message.
func TestBrowserComposerStaysInView(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	for _, v := range []viewport{desktop, phone} {
		tb := b.newTab(v.name)
		tb.emulate(v, "light")
		tb.startConversation(base, "[[long 260]] Tell me about streams")
		tb.waitFor("the first answer to be done", statusIs(1, "done"))
		tb.checkInView("after the first answer", 1)
		for k := 1; k < 6; k++ {
			tb.send(fmt.Sprintf("[[long 260]] And part %d?", k+1))
			i := 2*k + 1
			tb.waitFor(fmt.Sprintf("answer %d to be done", i), statusIs(i, "done"))
			tb.waitFor("the view to settle at the end", atBottom)
			tb.checkInView(fmt.Sprintf("after answer %d", i), i)
		}
		if n := evalJS[float64](tb, `document.getElementById('scroller').scrollHeight`); n < 4*tb.windowHeight() {
			t.Fatalf("%s: the conversation is only %v px high: too short to test scrolling", v.name, n)
		}
		if top := evalJS[float64](tb, `document.scrollingElement.scrollTop`); top != 0 {
			t.Errorf("%s: the page itself scrolled by %v px; only the messages should", v.name, top)
		}

		tb.do(chromedp.Reload())
		tb.waitFor("the last answer after a reload", statusIs(11, "done"))
		tb.waitFor("the reloaded page to show the latest message", atBottom)
		tb.checkInView("after a reload", 11)

		late := b.newTab(v.name + " late")
		late.emulate(v, "light")
		late.navigate(evalJS[string](tb, `location.href`))
		late.waitFor("the last answer in a new tab", statusIs(11, "done"))
		late.waitFor("a new tab to show the latest message", atBottom)
		late.checkInView("in a new tab", 11)
		late.close()
		tb.close()
	}
}

// wheel turns the mouse wheel over x, y by dy pixels (negative: up).
// (The protocol wants deltaX too, and a zero would be left out.)
func wheel(x, y, dy float64) chromedp.Action[chromedp.Void] {
	return chromedp.MouseEvent(input.DispatchMouseEventTypeMouseWheel, x, y, func(p *input.DispatchMouseEventParams) {
		p.DeltaX, p.DeltaY = 1e-9, dy
	})
}

// TestBrowserFollowAndJumpToLatest scrolls up while an answer streams: the
// view stops following and "Jump to latest" appears; clicking it shows the
// newest text and follows again, to the end of the answer. A reload in the
// middle of an answer lands at the bottom and follows too.
func TestBrowserFollowAndJumpToLatest(t *testing.T) {
	t.Parallel()
	base := startParley(t, harness.Speed{TPS: 60, Tokens: 120})
	b := startBrowser(t)
	tb := b.newTab("reader")
	tb.emulate(desktop, "light")
	tb.startConversation(base, "[[long 200]] A long first answer")
	tb.waitFor("the first answer to be done", statusIs(1, "done"))
	tb.waitFor("the view at the end", atBottom)
	if !evalJS[bool](tb, `document.getElementById('jump').hidden`) {
		t.Errorf("Jump to latest shows while the view is at the end")
	}

	tb.send("[[long 600]] A long second answer")
	tb.waitFor("the answer to stream", statusIs(3, "streaming"))
	tb.waitFor("the answer to pass the window's height", `document.querySelector('#m-3').getBoundingClientRect().height > window.innerHeight`)
	tb.waitFor("the view to follow the streaming answer", atBottom)

	// The reader scrolls up (a wheel, as a person would).
	tb.do(wheel(640, 300, -600))
	tb.waitFor("Jump to latest to show", `!document.getElementById('jump').hidden`)
	top := evalJS[float64](tb, `document.getElementById('scroller').scrollTop`)
	grown := tb.textLen(3)
	tb.waitFor("the answer to grow", fmt.Sprintf(`document.querySelector('#m-3 .md').innerText.length > %d + 200`, grown))
	if now := evalJS[float64](tb, `document.getElementById('scroller').scrollTop`); now != top {
		t.Errorf("the view moved from %v to %v while the reader was scrolled up", top, now)
	}
	if tb.status(3) != "streaming" {
		t.Fatalf("the answer ended before the check; make it longer")
	}

	tb.do(chromedp.Click("#jump"))
	tb.waitFor("the view at the newest text", atBottom)
	tb.waitFor("Jump to latest to hide", `document.getElementById('jump').hidden`)
	tb.waitFor("the answer to be done", statusIs(3, "done"))
	tb.waitFor("the view to have followed to the end", atBottom)
	tb.checkInView("after Jump to latest", 3)

	// A reload in the middle of an answer lands at the bottom, and follows.
	tb.send("[[long 600]] A third one")
	tb.waitFor("the third answer to stream", statusIs(5, "streaming"))
	tb.do(chromedp.Reload())
	tb.waitFor("the reloaded page to stream", statusIs(5, "streaming"))
	tb.waitFor("the reloaded page at the bottom", atBottom)
	tb.waitFor("the third answer to be done", statusIs(5, "done"))
	tb.waitFor("the view to have followed to the end", atBottom)
	tb.checkInView("after a reload mid-answer", 5)
}

// drawerState reports the phone drawer as a person and a screen reader meet
// it: whether it is on screen, the toggle's aria-expanded, and whether focus
// is inside it.
type drawerState struct {
	Shown    bool
	Expanded string
	FocusIn  bool
	FocusOn  string // the focused element's id or class
}

func (tb *tab) drawer() drawerState {
	tb.t.Helper()
	return evalJS[drawerState](tb, `(() => {
		const side = document.getElementById('sidebar');
		const r = side.getBoundingClientRect();
		const a = document.activeElement;
		return {
			Shown: getComputedStyle(side).visibility === 'visible' && r.right > 10 && r.left > -1,
			Expanded: document.querySelector('.nav-toggle').getAttribute('aria-expanded'),
			FocusIn: side.contains(a),
			FocusOn: a ? (a.id || a.className || a.tagName) : '',
		};
	})()`)
}

// TestBrowserPhoneDrawer opens the conversation list on a phone and closes
// it each way a person would: its close button, Escape, a tap on the
// backdrop, and choosing a conversation. Focus moves into the drawer when it
// opens and back to the toggle when it closes; aria-expanded says which.
func TestBrowserPhoneDrawer(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	tb := b.newTab("phone")
	tb.emulate(phone, "light")
	first := tb.startConversation(base, "[[echo]]The first conversation")
	tb.waitFor("the first answer", statusIs(1, "done"))
	second := tb.startConversation(base, "[[echo]]The second conversation")
	tb.waitFor("the second answer", statusIs(1, "done"))

	if d := tb.drawer(); d.Shown || d.Expanded != "false" {
		t.Fatalf("the drawer before opening: %+v", d)
	}
	if !evalJS[bool](tb, `document.querySelector('#sidebar a') && getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'`) {
		t.Errorf("the closed drawer's links can still be reached with Tab")
	}
	open := func(how string) {
		t.Helper()
		tb.do(chromedp.Click(".nav-toggle"))
		tb.waitFor("the drawer to open ("+how+")", `document.querySelector('.nav-toggle').getAttribute('aria-expanded') === 'true'`)
		tb.waitFor("the drawer to slide in", `document.getElementById('sidebar').getBoundingClientRect().left > -1`)
		if d := tb.drawer(); !d.Shown || !d.FocusIn {
			t.Errorf("open drawer (before %s): %+v, want it shown with focus inside", how, d)
		}
		if !evalJS[bool](tb, `document.querySelector('.page').inert`) {
			t.Errorf("open drawer: the page behind it is not inert")
		}
	}
	closed := func(how string, focusToggle bool) {
		t.Helper()
		// Focus leaves a hidden drawer at the page's next rendering update
		// (the browser's focus fixup), which may come a frame later.
		tb.waitFor("the drawer to close by "+how, `document.querySelector('.nav-toggle').getAttribute('aria-expanded') === 'false' && getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden' && !document.getElementById('sidebar').contains(document.activeElement)`)
		d := tb.drawer()
		if d.Shown || d.FocusIn {
			t.Errorf("after %s: %+v", how, d)
		}
		if focusToggle && d.FocusOn != "nav-toggle" {
			t.Errorf("after %s focus is on %q, want the toggle", how, d.FocusOn)
		}
	}

	open("the close button")
	tb.do(chromedp.Click("#nav-close"))
	closed("its close button", true)

	open("Escape")
	tb.do(chromedp.KeyEvent(kb.Escape))
	closed("Escape", true)

	open("the backdrop")
	// A tap on the backdrop, right of the drawer.
	tb.do(chromedp.MouseClickXY(float64(phone.width-20), float64(phone.height/2)))
	closed("a tap on the backdrop", true)

	// Choosing a conversation closes the drawer at once, before the next
	// page arrives (held back here, so that the new page's closed drawer
	// proves nothing).
	open("choosing a conversation")
	evalJS[bool](tb, `(window.addEventListener('click', e => e.preventDefault()), true)`)
	tb.do(chromedp.Click(fmt.Sprintf(`#sidebar a[href="/c/%s"]`, convID(first))))
	closed("choosing a conversation", false)
	if got := evalJS[string](tb, `location.href`); got != second {
		t.Errorf("the page changed to %s: the test must hold the navigation back", got)
	}
}

// TestBrowserTabTitleFollows checks that the browser tab's title follows the
// conversation's title in every tab: the automatic title after the first
// answer, then a rename from the Options menu, which closes after Save; the
// other tab's rename field then offers the new title.
func TestBrowserTabTitleFollows(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "Why do cats purr so much")
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the automatic title in the header", `document.getElementById('conv-title').dataset.title !== ''`)
		title := evalJS[string](tb, `document.getElementById('conv-title').innerText`)
		tb.waitFor("the tab's title to follow", fmt.Sprintf(`document.title === %s`, strconv.Quote(title+" · Parley")))
	}

	const renamed = "Purring, explained"
	tab1.do(chromedp.Click("details.menu summary"))
	evalJS[bool](tab1, `(document.getElementById('rename').value = '', true)`)
	tab1.do(
		chromedp.SendKeys("#rename", renamed),
		chromedp.Click(`details.menu form[action$="/title"] button[type=submit]`),
	)
	if evalJS[bool](tab1, `document.querySelector('details.menu').open`) {
		t.Errorf("the Options menu stays open after Save")
	}
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the renamed title on the tab", fmt.Sprintf(`document.title === %s`, strconv.Quote(renamed+" · Parley")))
	}
	tab2.do(chromedp.Click("details.menu summary"))
	tab2.waitFor("tab 2's rename field to offer the new title", fmt.Sprintf(`document.getElementById('rename').value === %s`, strconv.Quote(renamed)))
	tab2.do(chromedp.KeyEvent(kb.Escape))
	if evalJS[bool](tab2, `document.querySelector('details.menu').open`) {
		t.Errorf("Escape does not close the Options menu")
	}
}

// TestBrowserRefusalKeepsText has the server refuse posts (too many a
// minute, too long) from the conversation's composer and from the home
// page: each refusal shows its reason beside the composer, with the wait
// where there is one, and the typed text stays in the box.
func TestBrowserRefusalKeepsText(t *testing.T) {
	t.Parallel()
	base := launchParley(t, brisk, "", nil, "-posts-per-minute", "2", "-max-message-bytes", "2000")
	b := startBrowser(t)
	tb := b.newTab("refused")
	// A refused action answers with its status: Chromium logs it.
	tb.allow = func(p problem) bool {
		return p.kind == "log" && (strings.Contains(p.text, "status of 429") || strings.Contains(p.text, "status of 413"))
	}
	tb.startConversation(base, "[[echo]]One")
	tb.waitFor("the first answer", statusIs(1, "done"))

	tooLong := strings.Repeat("word ", 500)
	tb.typeRaw(tooLong)
	tb.do(chromedp.Click("#composer button.send"))
	tb.waitFor("the refusal of a long message", `document.getElementById('composer-error').innerText.includes('the limit is')`)
	if got := evalJS[string](tb, `document.getElementById('text').value`); got != tooLong {
		t.Errorf("after a 413 the box holds %d bytes, want the %d typed", len(got), len(tooLong))
	}

	tb.sendRaw("[[echo]]Two")
	tb.waitFor("the second answer", statusIs(3, "done"))
	const third = "A third message, over the limit of two a minute"
	tb.typeRaw(third)
	tb.do(chromedp.Click("#composer button.send"))
	tb.waitFor("the refusal", `document.getElementById('composer-error').innerText !== ''`)
	msg := evalJS[string](tb, `document.getElementById('composer-error').innerText`)
	if !regexp.MustCompile(`Try again in \d+ seconds?`).MatchString(msg) {
		t.Errorf("the 429 says %q, without the wait", msg)
	}
	if got := evalJS[string](tb, `document.getElementById('text').value`); got != third {
		t.Errorf("after a 429 the box holds %q, want %q", got, third)
	}
	if tb.exists("#m-4") {
		t.Errorf("the refused message shows in the conversation")
	}
	if box := tb.boxOf("#composer-error"); box.Bottom > tb.windowHeight() || box.Bottom-box.Top < 1 {
		t.Errorf("the refusal is not visible beside the composer: %+v", box)
	}

	// The home page's first post: the same limit, the same treatment.
	tb.navigate(base + "/")
	const first = "A new conversation, refused"
	tb.do(chromedp.SendKeys("#text", first), chromedp.Click("#composer button.send"))
	tb.waitFor("the home page's refusal", `document.getElementById('composer-error').innerText.includes('Try again in')`)
	if got := evalJS[string](tb, `location.pathname + ' ' + document.getElementById('text').value`); got != "/ "+first {
		t.Errorf("after a refused first post the page shows %q, want the home page with the text", got)
	}
}

// typeRaw puts text in the composer's box as it is.
func (tb *tab) typeRaw(text string) {
	tb.t.Helper()
	evalJS[bool](tb, fmt.Sprintf(`(document.getElementById('text').value = %s, true)`, strconv.Quote(text)))
}

// TestBrowserCopyAnswer presses an answer's Copy button: the clipboard then
// holds the answer's Markdown source, exactly.
func TestBrowserCopyAnswer(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	tb := b.newTab("copy")
	grantClipboard(t, tb, mustOrigin(t, base))
	const source = "# A title\n\nSome **bold** text and `code`.\n\n- one\n- two\n\n```go\nfmt.Println(\"hi\")\n```" // a message ends with no white space (handlers/forms.go)
	tb.startConversation(base, "[[echo]]Hello")
	tb.waitFor("the first answer", statusIs(1, "done"))
	tb.sendRaw("[[echo]]" + source)
	tb.waitFor("the answer", statusIs(3, "done"))
	if tb.exists("#m-1-foot .copy-answer") != true || tb.exists("#m-3-foot .copy-answer") != true {
		t.Fatalf("an answer has no Copy button: %s", tb.describe())
	}
	if _, err := chromedp.Call(tb.ctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.Click("#m-3-foot .copy-answer"))
	tb.waitFor("the button to say Copied", `document.querySelector('#m-3-foot .copy-answer').textContent === 'Copied'`)
	if got := evalJS[string](tb, `navigator.clipboard.readText()`, chromedp.EvalAwaitPromise); got != source {
		t.Errorf("the clipboard holds %q, want the answer's Markdown %q", got, source)
	}
	tb.waitFor("the button to say Copy again", `document.querySelector('#m-3-foot .copy-answer').textContent === 'Copy'`)
}

// grantClipboard lets tb's pages read and write the clipboard, and holds
// the clipboard for the rest of the test: Chromium has one for all its
// browser contexts, so tests that copy take turns. The page is kept focused
// (emulated), as the clipboard API wants, whatever window other tests open.
func grantClipboard(t *testing.T, tb *tab, origin string) {
	t.Helper()
	clipboard.Lock()
	t.Cleanup(clipboard.Unlock)
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(tb.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin,
			BrowserContextID: chromedp.FromContext(tb.ctx).BrowserContextID,
		}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	if _, err := chromedp.Call(tb.ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatalf("emulate focus: %v", err)
	}
}

// clipboard is held by the test that uses Chromium's one clipboard.
var clipboard sync.Mutex

// TestBrowserKeyboardPath: a page opens with the composer focused; while an
// answer streams, Send says why it is disabled and Escape in the composer
// stops the answer.
func TestBrowserKeyboardPath(t *testing.T) {
	t.Parallel()
	base := startParley(t, harness.Speed{TPS: 20, Tokens: 400})
	b := startBrowser(t)
	tb := b.newTab("keys")
	tb.navigate(base + "/")
	tb.waitFor("the home composer to have focus", `document.activeElement?.id === 'text'`)
	conv := tb.startConversation(base, "[[echo]]Hello")
	tb.waitFor("the answer", statusIs(1, "done"))
	tb.navigate(conv)
	tb.waitFor("the conversation's composer to have focus", `document.activeElement?.id === 'text'`)

	tb.do(chromedp.SendKeys("#text", "Tell me a long story"), pressEnter(false))
	tb.waitFor("the answer to stream", statusIs(3, "streaming")+" && "+composerBusy)
	title := evalJS[string](tb, `document.querySelector('#composer .send').title`)
	hint := evalJS[string](tb, `document.querySelector('#composer .hint').innerText`)
	if !strings.Contains(title, "Wait for the answer") || !strings.Contains(hint, "Esc") {
		t.Errorf("busy Send explains itself as title %q, hint %q", title, hint)
	}
	tb.do(chromedp.Focus("#text"), chromedp.KeyEvent(kb.Escape))
	tb.waitFor("Escape to stop the answer", statusIs(3, "stopped"))
	tb.waitFor("the composer to be ready again", composerIdle)
}

// TestBrowserNoConsoleErrors opens every kind of page (home, conversation,
// not found) and fetches the icon by both names: no page logs an error (the
// tab fails the test on any), and the icon is served.
func TestBrowserNoConsoleErrors(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	tb := b.newTab("pages")
	tb.navigate(base + "/")
	conv := tb.startConversation(base, "[[echo]]Hi")
	tb.waitFor("the answer", statusIs(1, "done"))
	icon := evalJS[string](tb, `document.querySelector('link[rel=icon]').href`)
	for _, u := range []string{icon, base + "/favicon.ico"} {
		got := evalJS[string](tb, fmt.Sprintf(`fetch(%q).then(r => r.status + ' ' + r.headers.get('Content-Type'))`, u), chromedp.EvalAwaitPromise)
		if got != "200 image/svg+xml" {
			t.Errorf("%s answers %q", u, got)
		}
	}
	missing := base + "/c/" + strings.Repeat("a", 26)
	tb.allow = func(p problem) bool {
		return p.kind == "log" && strings.Contains(p.text, "status of 404") && strings.HasSuffix(p.text, " "+missing)
	}
	tb.navigate(missing)
	tb.waitFor("the not-found page", `document.querySelector('h1').innerText === 'Not found'`)
	tb.navigate(conv)
	tb.waitFor("the conversation again", statusIs(1, "done"))
}

// within waits at most d for the JavaScript condition expr in tb, and fails
// the test with what with the page's state otherwise.
func (tb *tab) within(d time.Duration, what, expr string) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		tb.t.Fatalf("%s: %s did not happen within %s: %v\npage: %s", tb.name, what, d, err, tb.describe())
	}
}

// TestBrowserSidebarIsLive: a conversation started, renamed and deleted in
// one tab shows within a second in the sidebars of the browser's other tabs
// (one on another conversation, one on the home page), and the current
// conversation is marked.
func TestBrowserSidebarIsLive(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	a := b.newTab("A")
	first := a.startConversation(base, "[[echo]]An older conversation")
	a.waitFor("its answer", statusIs(1, "done"))

	other := b.newTab("B: another conversation")
	other.navigate(first)
	other.waitFor("the answer", statusIs(1, "done"))
	if got := evalJS[string](other, `document.querySelector('#side-list li.current a')?.getAttribute('aria-current') + ' ' + new URL(document.querySelector('#side-list li.current a').href).pathname`); got != "page /c/"+convID(first) {
		t.Errorf("the current conversation is marked as %q", got)
	}
	home := b.newTab("C: home")
	home.navigate(base + "/")
	home.waitFor("the home page's sidebar", fmt.Sprintf(`!!document.querySelector('#side-%s')`, convID(first)))

	conv := a.startConversation(base, "[[echo]]A brand new conversation")
	id := convID(conv)
	for _, tb := range []*tab{other, home} {
		tb.within(time.Second, "the new conversation in the sidebar", fmt.Sprintf(`!!document.querySelector('#side-%s a')`, id))
	}
	a.waitFor("the answer", statusIs(1, "done"))

	const renamed = "Renamed in tab A"
	a.do(chromedp.Click("details.menu summary"))
	evalJS[bool](a, `(document.getElementById('rename').value = '', true)`)
	a.do(chromedp.SendKeys("#rename", renamed), chromedp.Click(`details.menu form[action$="/title"] button[type=submit]`))
	for _, tb := range []*tab{other, home} {
		tb.within(time.Second, "the rename in the sidebar", fmt.Sprintf(`document.querySelector('#side-%s a')?.innerText === %s`, id, strconv.Quote(renamed)))
	}

	a.do(chromedp.Click("details.menu summary"))
	a.clickAndAnswerDialog(`details.menu form[action$="/delete"] button[type=submit]`, true)
	for _, tb := range []*tab{other, home} {
		tb.within(time.Second, "the deleted conversation to leave the sidebar", fmt.Sprintf(`!document.querySelector('#side-%s')`, id))
	}
	if !other.exists(fmt.Sprintf("#side-list li.current a[href='/c/%s']", convID(first))) {
		t.Errorf("tab B's own conversation lost its mark: %s", evalJS[string](other, `document.getElementById('side-list').outerHTML`))
	}
}
