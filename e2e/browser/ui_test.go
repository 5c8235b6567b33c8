package browser_test

// Browser tests of the conversation page's controls (issue 3): the composer
// while an answer streams, titles and the sidebar, rename and delete,
// regenerate and retry, presence, the read-only view of someone else's
// conversation, and the keyboard. Like main_test.go, they drive the real
// binary and a private redis-server through headless Chromium, wait by
// polling conditions in the page, and fail on any console error, exception
// or Content-Security-Policy violation (see tab.listen and cspWatcher).

import (
	"github.com/parley-chat/parley/e2e/harness"

	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

// TestBrowserComposerBusyInEveryTab checks that while an answer streams,
// every tab of the conversation disables Send and shows Stop (and that
// Enter then sends nothing), and that both come back when it ends.
func TestBrowserComposerBusyInEveryTab(t *testing.T) {
	t.Parallel()
	// Twenty seconds an answer: time to look at both tabs while it streams,
	// even on a busy machine.
	base := startParley(t, harness.Speed{TPS: 20, Tokens: 400})
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	// [[echo]]: the demo model answers with the rest of the message, at once.
	conv := tab1.startConversation(base, "[[echo]]First question")
	tab1.waitFor("the first answer to be done", statusIs(1, "done"))
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the composer to be ready", composerIdle)
	}

	tab1.send("Second question")
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("Send to be disabled and Stop shown while the answer streams",
			statusIs(3, "streaming")+" && "+composerBusy)
	}
	// Enter in the busy composer of the other tab sends nothing; the draft
	// stays for later.
	const draft = "A draft written meanwhile"
	tab2.do(
		chromedp.SendKeys("#composer textarea#text", draft),
		pressEnter(false),
	)
	if got := tab2.status(3); got != "streaming" {
		t.Fatalf("the answer ended (status %q) before the check of the busy composer; slow the demo model", got)
	}

	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the answer to be done", statusIs(3, "done"))
		tb.waitFor("Send to be enabled and Stop hidden after the answer", composerIdle)
		if tb.exists("#m-4") {
			t.Errorf("%s: a message was sent while the answer streamed: %s", tb.name, tb.describe())
		}
	}
	if got := evalJS[string](tab2, `document.querySelector('#composer textarea#text').value`); got != draft {
		t.Errorf("tab 2: the draft is %q after the answer, want %q", got, draft)
	}
	if got := evalJS[string](tab2, `document.getElementById('composer-error').innerText`); got != "" {
		t.Errorf("tab 2: the composer shows an error: %q", got)
	}
}

// composerBusy and composerIdle are conditions on the composer: Send
// disabled and Stop shown, or the reverse.
const (
	composerBusy = `(() => {
		const send = document.querySelector('#composer .send'), stop = document.querySelector('#composer .stop');
		return !!send && send.disabled && !!stop && !stop.hidden && stop.getClientRects().length > 0;
	})()`
	composerIdle = `(() => {
		const send = document.querySelector('#composer .send'), stop = document.querySelector('#composer .stop');
		return !!send && !send.disabled && send.getClientRects().length > 0 && !!stop && stop.hidden && stop.getClientRects().length === 0;
	})()`
)

// TestBrowserTitleSidebarRename checks that the title made from the first
// message appears live in the header and the sidebar of every tab once the
// first answer ends, that a fresh page's sidebar lists the conversation, and
// that a rename from the Options menu reaches the other tab live.
func TestBrowserTitleSidebarRename(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "Why is the sky blue?")
	id := convID(conv)
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	for _, tb := range []*tab{tab1, tab2} {
		// Marks the document: a reload would lose it.
		tb.do(chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
		if got := evalJS[[]string](tb, `[document.getElementById('m-1-foot')?.dataset.status,
			document.getElementById('conv-title')?.innerText, document.getElementById('side-current-title')?.innerText]`); got[0] == "streaming" &&
			(got[1] != "New conversation" || got[2] != "New conversation") {
			t.Errorf("%s: the titles are %q while the first answer streams, want New conversation", tb.name, got[1:])
		}
	}

	// The demo model cannot name a conversation: the title is the first
	// message's first words, without the question mark.
	const title = "Why is the sky blue"
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the answer to be done", statusIs(1, "done"))
		tb.waitFor("the title in the header and the sidebar", titlesAre(title))
		if !evalJS[bool](tb, `window.__sameDocument === true`) {
			t.Errorf("%s: the page was reloaded to show the title", tb.name)
		}
	}

	// Another page of the same browser lists the conversation.
	home := b.newTab("home")
	home.navigate(base + "/")
	if got := home.sideEntry(id); got != title {
		t.Errorf("home: the sidebar entry of the conversation reads %q, want %q", got, title)
	}

	const renamed = "Rayleigh scattering, explained"
	tab1.do(
		chromedp.Click("details.menu summary"),
		chromedp.SetValue("details.menu #rename", renamed),
		chromedp.Click(`details.menu form[action$="/title"] button[type=submit]`),
	)
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the new title in the header and the sidebar", titlesAre(renamed))
		if !evalJS[bool](tb, `window.__sameDocument === true`) {
			t.Errorf("%s: the page was reloaded to show the new title", tb.name)
		}
	}
	home.do(chromedp.Reload())
	if got := home.sideEntry(id); got != renamed {
		t.Errorf("home: after the rename the sidebar entry reads %q, want %q", got, renamed)
	}
}

// titlesAre is a condition: the header and the sidebar show title.
func titlesAre(title string) string {
	q := strconv.Quote(title)
	return fmt.Sprintf(`document.getElementById('conv-title')?.innerText === %s && document.getElementById('side-current-title')?.innerText === %s`, q, q)
}

// titles returns the header's and the sidebar's title.
func (tb *tab) titles() [2]string {
	tb.t.Helper()
	v := evalJS[[]string](tb, `[document.getElementById('conv-title')?.innerText ?? '(none)', document.getElementById('side-current-title')?.innerText ?? '(none)']`)
	return [2]string{v[0], v[1]}
}

// sideEntry returns the text of the sidebar's link to conversation id
// (checking where it points), or "" when the sidebar has none.
func (tb *tab) sideEntry(id string) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`(() => {
		const a = document.querySelector('#sidebar #side-%[1]s a');
		if (!a) return '';
		return new URL(a.href).pathname === '/c/%[1]s' ? a.innerText : 'link to ' + a.href;
	})()`, id))
}

// TestBrowserDeleteConversation deletes a conversation from the Options menu:
// dismissing the confirmation keeps it; accepting it shows the other tab
// that it is gone, its address answers 404, and Redis holds nothing of it.
func TestBrowserDeleteConversation(t *testing.T) {
	t.Parallel()
	rdb := testredis.Start(t)
	base := launchParley(t, fast, rdb.URL(), nil)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "[[echo]]Something to delete later")
	id := convID(conv)
	tab1.waitFor("the answer to be done", statusIs(1, "done"))
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	tab2.waitFor("the answer to be done", statusIs(1, "done"))
	watcher := b.newTab("watcher", chromedp.WithNewBrowserContext())
	watcher.navigate(conv)
	watcher.waitFor("the answer to be done", statusIs(1, "done"))
	pattern := "{c:" + id + "}*"
	if keys := redisKeys(t, rdb.Addr, pattern); len(keys) == 0 {
		t.Fatalf("Redis has no keys matching %s before the delete: the test looks in the wrong place", pattern)
	}

	const deleteButton = `details.menu form[action$="/delete"] button[type=submit]`
	tab1.do(chromedp.Click("details.menu summary"))
	msg := tab1.clickAndAnswerDialog(deleteButton, false)
	if !strings.Contains(msg, "Delete this conversation") {
		t.Errorf("the confirmation asks %q", msg)
	}
	// Dismissed: nothing happens. A request that slipped through would have
	// deleted it by the time a fresh load of the page answers.
	if got := tab1.fetchStatus("GET", conv, ""); got != 200 {
		t.Fatalf("after dismissing the confirmation the conversation answers %d", got)
	}
	if tab2.deleted() || tab1.deleted() {
		t.Fatal("a tab says the conversation was deleted after the confirmation was dismissed")
	}

	tab1.clickAndAnswerDialog(deleteButton, true)
	// The watcher's sidebar loses the entry and its "Watching" heading.
	watcher.waitFor("the watcher's page to say it was deleted", `document.getElementById('notice')?.innerText.includes('This conversation was deleted')`)
	watcher.waitFor("the Watching heading to go", `![...document.querySelectorAll('.side-label')].some(l => l.textContent.trim() === 'Watching' && l.getClientRects().length > 0)`)
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the page to say the conversation was deleted",
			`document.getElementById('notice')?.innerText.includes('This conversation was deleted')`)
		if tb.exists("#messages article") || tb.exists("#composer") {
			t.Errorf("%s: the deleted conversation's messages or composer are still shown: %s", tb.name, tb.describe())
		}
		// Its title, presence and menu go too, and the tab says so.
		tb.waitFor("the tab's title to say it was deleted", `document.title === 'Conversation deleted · Parley'`)
		if got := evalJS[string](tb, `document.getElementById('conv-status').innerText + '|' + document.getElementById('conv-actions').innerHTML`); got != "|" {
			t.Errorf("%s: the deleted conversation's page still shows presence or actions: %q", tb.name, got)
		}
	}

	// A reload answers 404 (Chromium logs the 404 of the document).
	tab2.allow = func(p problem) bool {
		return p.kind == "log" && strings.Contains(p.text, "status of 404") && strings.HasSuffix(p.text, " "+conv)
	}
	resp, err := chromedp.RunResponse(tab2.ctx, chromedp.Reload())
	if err != nil {
		t.Fatalf("reload the deleted conversation: %v", err)
	}
	if resp.Status != 404 {
		t.Errorf("a reload of the deleted conversation answers %d, want 404", resp.Status)
	}

	harness.WaitUntil(t, "the conversation's keys to leave Redis", 10*time.Second, func() bool {
		return len(redisKeys(t, rdb.Addr, pattern)) == 0
	})
	// The browser's list of conversations (parley:o:OWNER) and the running
	// generations (parley:gens) are the zsets outside the conversation's
	// hash tag that name it.
	for _, k := range redisKeys(t, rdb.Addr, "parley:*") {
		if typ, _ := testredis.Command(rdb.Addr, "TYPE", k); typ != "zset" || k != "parley:gens" && strings.HasSuffix(k, ":gens") {
			continue
		}
		if score, err := testredis.Command(rdb.Addr, "ZSCORE", k, id); err != nil || score != nil {
			t.Errorf("%s still lists the deleted conversation (%v, %v)", k, score, err)
		}
	}
	home := b.newTab("home")
	home.navigate(base + "/")
	if got := home.sideEntry(id); got != "" {
		t.Errorf("the sidebar of a fresh page still lists the deleted conversation as %q", got)
	}
}

// deleted reports whether the page says its conversation was deleted.
func (tb *tab) deleted() bool {
	tb.t.Helper()
	return evalJS[bool](tb, `!!document.getElementById('notice')?.innerText.includes('deleted')`)
}

// redisKeys returns the keys matching pattern, by SCAN as an operator would.
func redisKeys(t *testing.T, addr, pattern string) []string {
	t.Helper()
	var keys []string
	cursor := "0"
	for {
		reply, err := testredis.Command(addr, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
		if err != nil {
			t.Fatalf("SCAN %s: %v", pattern, err)
		}
		page, ok := reply.([]any)
		if !ok || len(page) != 2 {
			t.Fatalf("SCAN %s: unexpected reply %#v", pattern, reply)
		}
		cursor, _ = page[0].(string)
		found, _ := page[1].([]any)
		for _, k := range found {
			keys = append(keys, fmt.Sprint(k))
		}
		if cursor == "0" || cursor == "" {
			return keys
		}
	}
}

// TestBrowserRegenerateAndRetry regenerates the last answer (it streams anew
// in both tabs and ends done), then makes the demo model fail and retries
// the failed answer: the retry streams in both tabs too, and since the
// prompt still says [[fail]], ends failed again with Retry offered again.
func TestBrowserRegenerateAndRetry(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "Tell me about the tides")
	tab1.waitFor("the answer to be done", statusIs(1, "done"))
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	tab2.waitFor("the answer to be done", statusIs(1, "done"))
	before := tab1.answerHTML(1)
	rev := tab1.regenRev(1)

	for _, tb := range []*tab{tab1, tab2} {
		if got := tb.regenButton(1); got != "Regenerate" {
			t.Fatalf("%s: the last answer's button reads %q, want a visible Regenerate", tb.name, got)
		}
		tb.recordStatuses(1)
	}
	tab1.do(chromedp.Click("#m-1 form.regen button"))
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the answer to stream again and be done", streamedThen(1, "done"))
		if got := tb.regenRev(1); got == rev || got == "" {
			t.Errorf("%s: the regenerated answer's revision is %q, the old one was %q", tb.name, got, rev)
		}
	}
	// The demo model varies its reply by the answer's version, as a model
	// that samples would.
	if got := tab1.answerHTML(1); got == before {
		t.Error("the regenerated answer reads as the first did")
	}
	tab2.assertSameAnswer(tab1, 1)

	// A failed answer offers Retry. An earlier answer's Regenerate shows
	// only on hover or focus, or always where nothing hovers (a touch
	// screen, and headless Chromium).
	tab1.send("And now fail [[fail]]")
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the answer to fail", statusIs(3, "failed"))
		tb.waitFor("the error to show", `document.querySelector('#m-3-foot .err')?.innerText.includes('failed on purpose')`)
		if got := tb.regenButton(3); got != "Retry" {
			t.Errorf("%s: the failed answer's button reads %q, want a visible Retry", tb.name, got)
		}
		want := ""
		if evalJS[bool](tb, `matchMedia('(hover: none)').matches`) {
			want = "Regenerate"
		}
		if got := tb.regenButton(1); got != want {
			t.Errorf("%s: the answer before the last shows %q, want %q", tb.name, got, want)
		}
		tb.recordStatuses(3)
	}
	if tab1.answerText(3) == "" {
		t.Error("the failed answer kept no text")
	}
	tab1.do(chromedp.Click("#m-3 form.regen button"))
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the retried answer to stream and fail again", streamedThen(3, "failed"))
		if got := tb.regenButton(3); got != "Retry" {
			t.Errorf("%s: after the retry failed again the button reads %q, want Retry", tb.name, got)
		}
	}
	fresh := b.newTab("fresh")
	fresh.navigate(conv)
	for _, tb := range []*tab{tab1, tab2} {
		tb.assertSameAnswer(fresh, 3)
	}
}

// regenButton returns the text of answer i's Regenerate/Retry button, or ""
// when it is absent or hidden.
func (tb *tab) regenButton(i int) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`(() => {
		const b = document.querySelector('#m-%d form.regen button');
		return b && b.getClientRects().length > 0 ? b.innerText.trim() : '';
	})()`, i))
}

// regenRev returns the revision that answer i's Regenerate form names.
func (tb *tab) regenRev(i int) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`document.querySelector('#m-%d form.regen input[name=rev]')?.value ?? ''`, i))
}

// recordStatuses starts recording every status answer i's footer shows, as
// it changes: a status that lasts less than a poll is still seen.
func (tb *tab) recordStatuses(i int) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const seen = window.__statuses = window.__statuses || {};
		const list = seen[%[1]d] = [];
		const note = () => {
			const s = document.getElementById('m-%[1]d-foot')?.dataset.status ?? '(none)';
			if (list[list.length - 1] !== s) list.push(s);
		};
		note();
		new MutationObserver(note).observe(document.getElementById('messages'),
			{subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
	})()`, i)))
}

// streamedThen is a condition on answer i since recordStatuses: it streamed,
// then reached status, and has it now.
func streamedThen(i int, status string) string {
	return fmt.Sprintf(`(() => {
		const seen = window.__statuses?.[%[1]d] ?? [];
		const k = seen.indexOf('streaming');
		return k >= 0 && seen.slice(k).includes(%[2]q) && %[3]s;
	})()`, i, status, statusIs(i, status))
}

// TestBrowserPresence opens a conversation in two tabs: both say "2
// watching"; closing one brings the other back to "1 watching".
func TestBrowserPresence(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "[[echo]]Who is watching?")
	tab1.waitFor("1 watching", watchingIs(1))
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("2 watching", watchingIs(2))
	}
	tab2.close()
	closed := time.Now()
	tab1.waitFor("1 watching after the other tab closed", watchingIs(1))
	t.Logf("presence went back to 1 %v after the tab closed", time.Since(closed).Round(time.Millisecond))
}

// watchingIs is a condition: the page says n people watch.
func watchingIs(n int) string {
	want := strconv.Itoa(n) + " watching"
	return fmt.Sprintf(`document.querySelector('span.presence')?.innerText === %q`, want)
}

// TestBrowserReadOnlyView opens a conversation from another browser profile
// (another cookie jar: another person): the page says it is read-only and
// has no composer or owner controls, the answer streams into it live, and
// the server refuses every change it asks for with 403.
func TestBrowserReadOnlyView(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)

	owner := b.newTab("owner")
	conv := owner.startConversation(base, "[[echo]]A question others may watch")
	owner.waitFor("the answer to be done", statusIs(1, "done"))
	owner.waitFor("the title", `document.getElementById('conv-title')?.innerText !== 'New conversation'`)
	title := owner.titles()[0]

	watcher := b.newTab("watcher", chromedp.WithNewBrowserContext())
	watcher.navigate(conv)
	watcher.waitFor("the answer to be done", statusIs(1, "done"))
	if !evalJS[bool](watcher, `!!document.querySelector('.app.readonly')`) {
		t.Error("the watcher's page is not marked read-only")
	}
	if got := evalJS[string](watcher, `document.getElementById('notice').innerText`); !strings.Contains(got, "only the person who started it can write here") {
		t.Errorf("the watcher's notice reads %q", got)
	}
	// It stands where the composer would, in view at the conversation's end.
	if n, h := watcher.boxOf("#notice"), watcher.windowHeight(); n.Bottom > h || n.Top < h/2 || !watcher.exists(".dock #notice") {
		t.Errorf("the watcher's notice is at %+v in a window %.0f px high, want it in the dock at the bottom", n, h)
	}
	// The watcher's Options hold the downloads and what the conversation
	// uses, not the owner's forms; the messages' editors (the same HTML
	// for everyone) never show.
	for _, sel := range []string{"#composer", "#composer .stop", "#rename", "#instructions", "#model-form"} {
		if watcher.exists(sel) {
			t.Errorf("the watcher's page has %s", sel)
		}
	}
	if evalJS[bool](watcher, `[...document.querySelectorAll('textarea, .edit-open, form.editor')].some(e => e.getClientRects().length > 0)`) {
		t.Error("the watcher sees an editor or an Edit button")
	}
	if !watcher.exists(`details.menu a[href$="/export.md"]`) {
		t.Error("the watcher's Options lack the Markdown download")
	}
	if got := watcher.regenButton(1); got != "" {
		t.Errorf("the watcher sees the owner's %q button", got)
	}
	if got := evalJS[string](watcher, `document.querySelector('#side-current')?.closest('ul')?.previousElementSibling?.textContent.trim() ?? ''`); got != "Watching" {
		t.Errorf("the watcher's sidebar lists the conversation under %q, want Watching", got)
	}
	// The owner's page is not read-only.
	if evalJS[bool](owner, `!!document.querySelector('.app.readonly') || document.getElementById('notice').innerText.trim() !== ''`) {
		t.Error("the owner's page is marked read-only or shows a notice")
	}
	for _, tb := range []*tab{owner, watcher} {
		tb.waitFor("2 watching", watchingIs(2))
	}

	// The answer to the owner's next message streams into the watcher's page.
	owner.send("A second question")
	watcher.waitFor("the second message", `document.querySelector('#m-2 .text')?.innerText === 'A second question'`)
	watcher.waitGrowth(3, 0)
	watcher.waitFor("the answer to be done", statusIs(3, "done"))
	owner.waitFor("the answer to be done", statusIs(3, "done"))
	// Not the pages' text: the owner's has a Regenerate button.
	if got, want := watcher.answerHTML(3), owner.answerHTML(3); got != want {
		t.Errorf("the watcher's answer differs from the owner's:\n%s", diff(want, got))
	}
	if got, want := watcher.answerHTML(3), watcher.serverHTML("#m-3 .md"); got != want {
		t.Errorf("the watcher's answer differs from the server's page:\n%s", diff(want, got))
	}

	// Every change the watcher asks for is refused, and changes nothing.
	// Chromium logs each refused request.
	refused := regexp.MustCompile(`^Failed to load resource: the server responded with a status of 403 \(Forbidden\) ` +
		regexp.QuoteMeta(conv) + `/(messages|stop|regenerate|title|delete)$`)
	watcher.allow = func(p problem) bool { return p.kind == "log" && refused.MatchString(p.text) }
	rev := owner.regenRev(3)
	for _, c := range []struct{ path, body string }{
		{"/messages", "text=Let+me+in&key=" + store.NewID()},
		{"/stop", ""},
		{"/regenerate", "rev=" + rev},
		{"/title", "title=Taken+over"},
		{"/delete", ""},
	} {
		if got := watcher.fetchStatus("POST", conv+c.path, c.body); got != 403 {
			t.Errorf("POST %s from the watcher answered %d, want 403", c.path, got)
		}
	}
	if watcher.exists("#m-4") || owner.exists("#m-4") {
		t.Error("a refused post added a message")
	}
	if got := owner.titles(); got[0] != title {
		t.Errorf("the refused rename changed the title to %q", got[0])
	}
	if got := owner.regenRev(3); got != rev {
		t.Errorf("the refused regenerate changed the answer (revision %q, was %q)", got, rev)
	}
	if got := owner.fetchStatus("GET", conv, ""); got != 200 {
		t.Errorf("after the refused delete the conversation answers %d", got)
	}
}

// TestBrowserEnterSendsShiftEnterAddsLine types with the keyboard: Shift+Enter
// adds a line, Enter sends, on the home page and in a conversation. It also
// checks that the CSP watcher every test relies on sees a violation.
func TestBrowserEnterSendsShiftEnterAddsLine(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)

	tb := b.newTab("tab 1")
	tb.navigate(base + "/")
	tb.do(
		chromedp.SendKeys("textarea#text", "First line"),
		pressEnter(true),
		chromedp.KeyEvent("second line"),
	)
	if got := evalJS[string](tb, `document.querySelector('textarea#text').value`); got != "First line\nsecond line" {
		t.Fatalf("after Shift+Enter the textarea holds %q", got)
	}
	if got := evalJS[string](tb, `location.pathname`); got != "/" {
		t.Fatalf("Shift+Enter left the home page for %s", got)
	}
	resp, err := chromedp.RunResponse(tb.ctx, pressEnter(false))
	if err != nil {
		t.Fatalf("Enter on the home page: %v", err)
	}
	if resp.Status != 200 || !regexp.MustCompile(`^/c/[a-z0-9]+$`).MatchString(evalJS[string](tb, `location.pathname`)) {
		t.Fatalf("Enter on the home page gave HTTP %d at %s", resp.Status, evalJS[string](tb, `location.href`))
	}
	tb.waitFor("the two-line message", `document.querySelector('#m-0 .text')?.textContent === 'First line\nsecond line'`)
	tb.waitFor("the answer to be done", statusIs(1, "done"))

	tb.do(
		chromedp.SendKeys("#composer textarea#text", "Third"),
		pressEnter(true),
		chromedp.KeyEvent("fourth"),
	)
	if got := evalJS[string](tb, `document.querySelector('#composer textarea#text').value`); got != "Third\nfourth" {
		t.Fatalf("after Shift+Enter the composer holds %q", got)
	}
	if tb.exists("#m-2") {
		t.Fatal("Shift+Enter sent the message")
	}
	tb.do(pressEnter(false))
	tb.waitFor("the second message", `document.querySelector('#m-2 .text')?.textContent === 'Third\nfourth'`)
	tb.waitFor("the composer to clear", `document.querySelector('#composer textarea#text').value === ''`)
	tb.waitFor("the answer to be done", statusIs(3, "done"))

	// The watcher works: markup that slipped into the page could not run,
	// and the test hears of it.
	if ps := tb.peekProblems(); len(ps) != 0 {
		t.Fatalf("problems before the CSP check: %+v", ps)
	}
	ran := evalJS[bool](tb, `(() => {
		const s = document.createElement('script');
		s.textContent = 'window.__injected = true';
		document.body.append(s);
		return window.__injected === true;
	})()`)
	if ran {
		t.Error("an inline script ran: the Content-Security-Policy does not forbid it")
	}
	harness.WaitUntil(t, "the CSP violation to be reported", waitTimeout, func() bool {
		return slices.ContainsFunc(tb.peekProblems(), func(p problem) bool { return p.kind == "csp" })
	})
	for _, p := range tb.takeProblems(func(p problem) bool { return p.kind == "csp" || strings.Contains(p.text, "Content Security Policy") }) {
		if p.kind == "csp" && !strings.HasPrefix(p.text, "script-src") {
			t.Errorf("the violation was reported as %q, want script-src", p.text)
		}
	}
}

// send types text into the conversation's composer and presses Send.
func (tb *tab) send(text string) {
	tb.t.Helper()
	tb.do(
		chromedp.SendKeys("#composer textarea#text", text),
		chromedp.Click("#composer button.send"),
	)
	tb.waitFor("the composer to clear", `document.querySelector('#composer textarea#text').value === ''`)
}

// exists reports whether the page has an element matching sel.
func (tb *tab) exists(sel string) bool {
	tb.t.Helper()
	return evalJS[bool](tb, fmt.Sprintf(`!!document.querySelector(%q)`, sel))
}

// fetchStatus makes a same-origin request from the page, with the page's
// cookies, and returns its HTTP status. A body is sent as a form.
func (tb *tab) fetchStatus(method, url, body string) int {
	tb.t.Helper()
	init := fmt.Sprintf(`{method: %q, cache: 'no-store'}`, method)
	if body != "" {
		init = fmt.Sprintf(`{method: %q, cache: 'no-store', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: %q}`, method, body)
	}
	return evalJS[int](tb, fmt.Sprintf(`fetch(%q, %s).then(r => r.status)`, url, init), chromedp.EvalAwaitPromise)
}

// clickAndAnswerDialog clicks sel, which opens a JavaScript dialog, accepts
// or dismisses it through CDP, and returns its message.
func (tb *tab) clickAndAnswerDialog(sel string, accept bool) string {
	tb.t.Helper()
	return tb.answerDialog("clicking "+sel, chromedp.Click(sel), accept)
}

// answerDialog runs action, which must open a JavaScript dialog, answers it
// and returns its message.
func (tb *tab) answerDialog(what string, action chromedp.Action[chromedp.Void], accept bool) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	type answered struct {
		msg string
		err error
	}
	done := make(chan answered, 1)
	// Subscribed now, before the click: the click returns only once the
	// dialog is answered.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err == nil {
				_, err = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
			}
			done <- answered{ev.Message, err}
			return
		}
	}()
	tb.do(action)
	select {
	case a := <-done:
		if a.err != nil {
			tb.t.Fatalf("%s: answer the dialog: %v", tb.name, a.err)
		}
		return a.msg
	case <-ctx.Done():
		tb.t.Fatalf("%s: %s opened no dialog", tb.name, what)
		return ""
	}
}

// peekProblems returns the problems recorded so far.
func (tb *tab) peekProblems() []problem {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.problems)
}

// takeProblems removes the problems that match and returns them: for a test
// that causes one on purpose.
func (tb *tab) takeProblems(match func(problem) bool) []problem {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var taken, kept []problem
	for _, p := range tb.problems {
		if match(p) {
			taken = append(taken, p)
		} else {
			kept = append(kept, p)
		}
	}
	tb.problems = kept
	return taken
}

// convID returns the conversation ID at the end of a conversation's URL.
func convID(url string) string { return url[strings.LastIndex(url, "/")+1:] }

// pressEnter presses Enter (with Shift when shift is set) in the focused
// element as a keyboard does: one keyDown that carries the text "\r", so that
// a keydown handler's preventDefault also cancels the line break.
// (chromedp.KeyEvent sends the text as a separate char event, which Chromium
// applies even after a prevented keydown: the textarea would get a line
// break that no person's Enter would add.)
func pressEnter(shift bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		var mods int64
		if shift {
			mods = int64(chromedp.ModifierShift)
		}
		key := input.DispatchKeyEventParams{
			Type: input.DispatchKeyEventTypeKeyDown, Modifiers: mods,
			Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
			Text: "\r", UnmodifiedText: "\r",
		}
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, key); err != nil {
			return fmt.Errorf("press Enter: %w", err)
		}
		key.Type, key.Text, key.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, key); err != nil {
			return fmt.Errorf("release Enter: %w", err)
		}
		return nil
	})
}
