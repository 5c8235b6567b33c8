package browser_test

// Browser tests of Continue (an answer the model cut at its length limit)
// and of the downloads in Options, as the owner and a watcher see them.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-chat/parley/llm"
)

// cutShows is a condition: answer i is done and says it was cut off.
func cutShows(i int) string {
	return statusIs(i, "done") + fmt.Sprintf(
		` && document.querySelector('#m-%d-foot .cut-line .cut')?.innerText.trim() === "Cut off at the model's length limit."`, i)
}

// visible is a JavaScript expression: the element sel has a box of some
// size and is not hidden by visibility.
func visible(sel string) string {
	return fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		if (!el || el.getClientRects().length === 0) return false;
		const r = el.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility === 'visible';
	})()`, sel)
}

// download is what a fetch of a download link got.
type download struct {
	Status      int
	Type        string
	Disposition string
	Body        string
}

// fetchDownload fetches href from the page, with the page's cookies.
func (tb *tab) fetchDownload(href string) download {
	tb.t.Helper()
	return evalJS[download](tb, fmt.Sprintf(`fetch(%q, {cache: 'no-store'}).then(async r => ({
		Status: r.status, Type: r.headers.get('Content-Type') ?? '',
		Disposition: r.headers.get('Content-Disposition') ?? '', Body: await r.text()}))`, href),
		chromedp.EvalAwaitPromise)
}

// exported is the part of the JSON download (docs/export.md) the tests read.
type exported struct {
	Version  int    `json:"version"`
	Title    string `json:"title"`
	Path     []int  `json:"path"`
	Messages []struct {
		ID     int    `json:"id"`
		Role   string `json:"role"`
		Status string `json:"status"`
		Text   string `json:"text"`
		CutOff bool   `json:"cut_off"`
	} `json:"messages"`
}

// exportJSON fetches and decodes the conversation's JSON download.
func (tb *tab) exportJSON(conv string) exported {
	tb.t.Helper()
	d := tb.fetchDownload(conv + "/export.json")
	var doc exported
	if d.Status != 200 || json.Unmarshal([]byte(d.Body), &doc) != nil {
		tb.t.Fatalf("%s: export.json: HTTP %d, %q", tb.name, d.Status, d.Body)
	}
	return doc
}

// TestBrowserContinue: an answer the demo cuts at its length limit says so
// in the owner's two tabs and a watcher's, with Continue for the owner
// only; Continue makes the same answer (no new version) the demo's whole
// reply, and the cut line goes away everywhere.
func TestBrowserContinue(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)
	tab1 := b.newTab("tab 1")
	const prompt = "[[length]] How do tides work?"
	conv := tab1.startConversation(base, prompt)
	tab1.waitFor("the cut line", cutShows(1))
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	watcher := b.newTab("watcher", chromedp.WithNewBrowserContext())
	watcher.navigate(conv)
	for _, tb := range []*tab{tab1, tab2, watcher} {
		tb.waitFor("the cut line", cutShows(1))
	}
	const button = "#m-1-foot form.continue button"
	for _, tb := range []*tab{tab1, tab2} {
		if !evalJS[bool](tb, visible(button)) {
			t.Errorf("%s: the owner's Continue button is not visible", tb.name)
		}
	}
	if evalJS[bool](watcher, visible(button)) || evalJS[bool](watcher, visible("#m-1-foot form.continue")) {
		t.Error("the watcher sees Continue")
	}

	// The store's text of the cut answer, read through the page.
	before := tab1.exportJSON(conv)
	if len(before.Messages) != 2 || !before.Messages[1].CutOff {
		t.Fatalf("before Continue the export holds %+v; want a question and a cut answer", before.Messages)
	}
	cutText := before.Messages[1].Text
	cutLen := tab1.textLen(1)

	tab1.do(chromedp.Click(button))
	for _, tb := range []*tab{tab1, tab2, watcher} {
		tb.waitFor("the whole answer", statusIs(1, "done")+` && !document.querySelector('#m-1-foot .cut-line')`)
		if n := tb.textLen(1); n <= cutLen {
			t.Errorf("%s: after Continue the answer has %d characters, %d before", tb.name, n, cutLen)
		}
		if evalJS[bool](tb, `!!document.getElementById('m-2') || !!document.querySelector('#m-1 .versions')`) {
			t.Errorf("%s: Continue made a new message or version: %s", tb.name, tb.describe())
		}
	}
	tab1.assertSameAnswer(tab2, 1)
	// The watcher's page lacks the owner's buttons; its answer is the same.
	if got, want := watcher.answerHTML(1), tab1.answerHTML(1); got != want {
		t.Errorf("the watcher's answer differs from the owner's:\n%s", diff(want, got))
	}

	// The store holds the demo's whole reply, one version of it.
	full := llm.NewDemo(llm.DemoConfig{TokensPerSecond: fast.TPS, Tokens: fast.Tokens}).
		Reply([]llm.Message{{Role: llm.RoleUser, Content: prompt}})
	after := tab1.exportJSON(conv)
	if len(after.Messages) != 2 {
		t.Fatalf("after Continue the export holds %d messages, want 2", len(after.Messages))
	}
	if m := after.Messages[1]; m.Text != full || m.CutOff || m.Status != "done" || !strings.HasPrefix(full, cutText) {
		t.Errorf("after Continue the answer is %s (cut %t): %q\nwant the demo's reply, which begins with the cut text %q:\n%q",
			m.Status, m.CutOff, m.Text, cutText, full)
	}
}

// TestBrowserExport: Options has the two downloads for the owner and a
// watcher, reachable with Tab; the Markdown is the selected path under
// the title, the JSON every version, and both are attachments.
func TestBrowserExport(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)
	owner := b.newTab("owner")
	conv := owner.startConversation(base, "[[echo]]alpha words")
	owner.waitFor("the answer", statusIs(1, "done"))
	// Two versions of the answer, then a second version of the question:
	// the path holds only the last.
	owner.do(chromedp.Click("#m-1 form.regen button"))
	owner.waitFor("version 2/2 of the answer", versionIs(1, 2, 2)+" && "+statusIs(1, "done"))
	owner.openEditor(0)
	owner.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('m-0-edit-text').value = '[[echo]]beta words'`),
		chromedp.Click("#m-0-edit button.edit-send"))
	owner.waitFor("the edit's answer", versionIs(0, 2, 2)+" && "+statusIs(1, "done")+
		` && document.querySelector('#m-1 .md').innerText.includes('beta words')`)
	watcher := b.newTab("watcher", chromedp.WithNewBrowserContext())
	watcher.navigate(conv)
	watcher.waitFor("the answer", statusIs(1, "done"))
	title := poll[string](owner, "the title", `document.getElementById('conv-title')?.dataset.title`)

	for _, tb := range []*tab{owner, watcher} {
		links := tb.tabToDownloads()
		md := tb.fetchDownload(links[0])
		if md.Status != 200 || !strings.HasPrefix(md.Type, "text/markdown") || !strings.HasPrefix(md.Disposition, "attachment;") {
			t.Errorf("%s: %s: HTTP %d, %q, %q", tb.name, links[0], md.Status, md.Type, md.Disposition)
		}
		// The title is escaped as Markdown text: \[\[echo\]\]...
		heading, rest, _ := strings.Cut(md.Body, "\n")
		if strings.ReplaceAll(heading, `\`, "") != "# "+title || !strings.Contains(rest, "beta words") ||
			strings.Contains(rest, "alpha words") || strings.Count(rest, "**Assistant**") != 1 {
			t.Errorf("%s: the Markdown is not the selected path under the title %q:\n%s", tb.name, title, md.Body)
		}
		js := tb.fetchDownload(links[1])
		if js.Status != 200 || !strings.HasPrefix(js.Type, "application/json") || !strings.HasPrefix(js.Disposition, "attachment;") {
			t.Errorf("%s: %s: HTTP %d, %q, %q", tb.name, links[1], js.Status, js.Type, js.Disposition)
		}
		var doc exported
		if err := json.Unmarshal([]byte(js.Body), &doc); err != nil {
			t.Fatalf("%s: the JSON does not decode: %v\n%s", tb.name, err, js.Body)
		}
		var texts []string
		for _, m := range doc.Messages {
			texts = append(texts, m.Role+":"+m.Text)
		}
		// Every version: two questions, the first's two answers and the
		// second's one, in the order they were written.
		want := []string{"user:[[echo]]alpha words", "assistant:alpha words", "assistant:alpha words",
			"user:[[echo]]beta words", "assistant:beta words"}
		if doc.Version != 1 || doc.Title != title || len(doc.Path) != 2 || strings.Join(texts, "|") != strings.Join(want, "|") {
			t.Errorf("%s: the JSON holds version %d, title %q, path %v, messages %q; want every version %q",
				tb.name, doc.Version, doc.Title, doc.Path, texts, want)
		}
	}
}

// tabToDownloads opens Options from the keyboard and presses Tab until the
// Markdown and then the JSON download have the focus, and returns their
// hrefs. It fails the test when Tab never reaches them.
func (tb *tab) tabToDownloads() [2]string {
	tb.t.Helper()
	tb.do(chromedp.Focus("details.menu > summary"), chromedp.KeyEvent(kb.Enter))
	tb.waitFor("Options to open", `document.querySelector('details.menu').open`)
	var hrefs [2]string
	for i, sel := range []string{`details.menu .exports a[href$="/export.md"]`, `details.menu .exports a[href$="/export.json"]`} {
		if !evalJS[bool](tb, visible(sel)) {
			tb.t.Fatalf("%s: %s is not visible in Options", tb.name, sel)
		}
		focused := fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, sel)
		for n := 0; !evalJS[bool](tb, focused); n++ {
			if n == 40 || !evalJS[bool](tb, `document.querySelector('details.menu').open`) {
				tb.t.Fatalf("%s: Tab did not reach %s inside Options (focus on %s)", tb.name, sel,
					evalJS[string](tb, `document.activeElement?.outerHTML.slice(0, 120) ?? 'nothing'`))
			}
			tb.do(chromedp.KeyEvent(kb.Tab))
		}
		hrefs[i] = evalJS[string](tb, `document.activeElement.href`)
	}
	return hrefs
}

// TestBrowserCutScreenshots saves the cut line and Continue on a desktop
// and a phone screen, for people to look at; like TestBrowserScreenshots
// it writes into the tree, so it runs only with PARLEY_SCREENSHOTS=1.
func TestBrowserCutScreenshots(t *testing.T) {
	t.Parallel()
	if os.Getenv("PARLEY_SCREENSHOTS") != "1" {
		t.Skip("set PARLEY_SCREENSHOTS=1 to write testdata/screenshots")
	}
	base := startParley(t, fast)
	b := startBrowser(t)
	setup := b.newTab("setup")
	conv := setup.startConversation(base, "[[length]] How do tides work?")
	setup.waitFor("the cut line", cutShows(1))
	setup.close()
	dir := filepath.Join("..", "..", "testdata", "screenshots")
	for _, v := range []viewport{desktop, phone} {
		tb := b.newTab("cut " + v.name)
		tb.emulate(v, "light")
		tb.navigate(conv)
		tb.waitFor("the cut line", cutShows(1))
		png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		file := filepath.Join(dir, "cut-"+v.name+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", file)
		tb.close()
	}
}
