package browser_test

import (
	"github.com/parley-chat/parley/e2e/harness"

	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// xssVector is one entry of markdown/testdata/xss.json, the corpus the
// markdown package's unit test renders too.
type xssVector struct {
	Name  string `json:"name"`
	Text  string `json:"text"`
	Shows string `json:"shows"` // what a reader sees of it in an answer; empty: Text
}

// TestBrowserXSSCorpus sends every vector of the XSS corpus (script tags,
// event handlers, javascript: and data: URLs plain and obfuscated, SVG and
// MathML, iframes, Markdown links and images, HTML in code, CSS, Datastar
// data-* attributes, template and SSE injection) as a user message, and a
// test model ([[echo]]) returns it as its answer. Each vector tries to set
// window.__xss or open a dialog. In the real page, streamed and then
// reloaded, the test checks that no script ran and no dialog opened, that the
// page holds no executable or loading markup where user or model text goes,
// that the browser fetched nothing from another origin, that every vector's
// text is shown (as typed in the question, as rendered in the answer), and
// that the page logged no console error or CSP violation.
func TestBrowserXSSCorpus(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../markdown/testdata/xss.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []xssVector
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatalf("markdown/testdata/xss.json: %v", err)
	}
	if len(vectors) < 30 {
		t.Fatalf("the corpus has %d vectors, want at least 30", len(vectors))
	}

	// Echoed answers are short: stream them fast. The corpus is sent in a
	// few seconds, above the default posting rate limits.
	base := launchParley(t, harness.Speed{TPS: 2000, Tokens: 20}, "", nil,
		"-posts-per-minute", "0", "-posts-per-minute-per-address", "0")
	// Three browsers, each with its own conversation and a third of the
	// corpus: the same checks, in a third of the time.
	const parts = 3
	for p := range parts {
		var part []xssVector
		for k := p; k < len(vectors); k += parts {
			part = append(part, vectors[k])
		}
		t.Run(fmt.Sprintf("part%d", p+1), func(t *testing.T) {
			t.Parallel()
			checkCorpus(t, base, part)
		})
	}
}

// checkCorpus sends each vector to the echo model in one conversation, then
// checks the streamed page and the same conversation loaded again.
func checkCorpus(t *testing.T, base string, vectors []xssVector) {
	b := startBrowser(t)
	tb := b.newTab("xss")
	watch := watchDialogsAndRequests(t, tb)

	conv := tb.startConversation(base, "[[echo]]The corpus follows.")
	tb.waitFor("the first answer to be done", statusIs(1, "done"))
	for k, v := range vectors {
		tb.sendRaw("[[echo]]" + v.Text)
		tb.waitFor(fmt.Sprintf("the answer to vector %d (%s)", k, v.Name), statusIs(3+2*k, "done"))
	}
	tb.checkXSS(vectors, watch, "streamed")

	// The same conversation rendered by the server in one page.
	tb.navigate(conv)
	tb.waitFor("the last answer", statusIs(1+2*len(vectors), "done"))
	tb.checkXSS(vectors, watch, "reloaded")
	if origin := mustOrigin(t, base); len(watch.foreign(origin)) > 0 {
		t.Errorf("the page fetched from other origins: %q", watch.foreign(origin))
	}
}

// sendRaw puts text in the composer as it is (newlines included, which
// typed would press Enter and send early) and presses Send.
func (tb *tab) sendRaw(text string) {
	tb.t.Helper()
	evalJS[bool](tb, fmt.Sprintf(`(() => { document.querySelector('#composer textarea#text').value = %s; return true })()`, strconv.Quote(text)))
	tb.do(chromedp.Click("#composer button.send"))
	tb.waitFor("the composer to clear", `document.querySelector('#composer textarea#text')?.value === ''`)
}

// pageWatch records the JavaScript dialogs a tab opened (answering them so
// the page goes on) and every URL it requested.
type pageWatch struct {
	mu       sync.Mutex
	dialogs  []string
	requests []string
}

func watchDialogsAndRequests(t *testing.T, tb *tab) *pageWatch {
	t.Helper()
	w := &pageWatch{}
	ctx, cancel := context.WithCancel(tb.ctx)
	t.Cleanup(cancel)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			w.mu.Lock()
			w.dialogs = append(w.dialogs, string(ev.Type)+": "+ev.Message)
			w.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			w.mu.Lock()
			w.requests = append(w.requests, ev.Request.URL)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *pageWatch) opened() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.dialogs...)
}

// foreign returns the requested URLs that are not of origin.
func (w *pageWatch) foreign(origin string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, u := range w.requests {
		if !strings.HasPrefix(u, origin+"/") {
			out = append(out, u)
		}
	}
	return out
}

func mustOrigin(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Scheme + "://" + u.Host
}

// checkXSS checks the page after the corpus (see TestBrowserXSSCorpus).
func (tb *tab) checkXSS(vectors []xssVector, watch *pageWatch, when string) {
	tb.t.Helper()
	if d := watch.opened(); len(d) > 0 {
		tb.t.Errorf("%s: dialogs opened: %q", when, d)
	}
	if ran := evalJS[string](tb, `String(window.__xss ?? '') + String(window.top.__xss ?? '')`); ran != "" {
		tb.t.Errorf("%s: a vector ran script: window.__xss = %q", when, ran)
	}
	if bad := evalJS[[]string](tb, unsafeMarkupJS); len(bad) > 0 {
		tb.t.Errorf("%s: unsafe markup in the page:\n%s", when, strings.Join(bad, "\n"))
	}
	for k, v := range vectors {
		user := evalJS[string](tb, fmt.Sprintf(`document.querySelector('#m-%d .text')?.textContent ?? ''`, 2+2*k))
		if want := "[[echo]]" + v.Text; user != want {
			tb.t.Errorf("%s: vector %d (%s): the question shows %q, want it as typed: %q", when, k, v.Name, user, want)
		}
		shows := v.Shows
		if shows == "" {
			shows = v.Text
		}
		answer := strings.Join(strings.Fields(tb.answerText(3+2*k)), " ")
		if want := strings.Join(strings.Fields(shows), " "); !strings.Contains(answer, want) {
			tb.t.Errorf("%s: vector %d (%s): the answer shows %q, want it to contain %q", when, k, v.Name, answer, want)
		}
	}
}

// unsafeMarkupJS lists what may run script or load something in the parts of
// the page that hold user and model text (and a few things anywhere in the
// document): elements outside what rendered Markdown may contain, event
// handler, style and data-* attributes (Datastar would run data-on-*),
// links to anything but http(s) and mailto, and links without rel.
const unsafeMarkupJS = `(() => {
	const bad = [];
	const say = (el, why) => bad.push(why + ': ' + el.outerHTML.slice(0, 160));
	for (const el of document.querySelectorAll('iframe, frame, object, embed, base, meta[http-equiv], style, script:not([src]), img:not([src^="/"]), form[action^="javascript"]')) {
		say(el, 'forbidden element');
	}
	const mdTags = new Set(['P','BR','HR','H1','H2','H3','H4','H5','H6','BLOCKQUOTE','UL','OL','LI','PRE','CODE','EM','STRONG','DEL',
		'TABLE','THEAD','TBODY','TR','TH','TD','A','INPUT','DIV','SPAN','BUTTON']);
	const mdAttrs = new Set(['id','class','href','title','rel','target','start','align','type','checked','disabled','aria-label']);
	for (const root of document.querySelectorAll('#messages .md')) {
		for (const el of root.querySelectorAll('*')) {
			if (!mdTags.has(el.tagName)) say(el, 'element');
			for (const a of el.attributes) {
				if (!mdAttrs.has(a.name)) say(el, 'attribute ' + a.name);
			}
			if (el.tagName === 'A') {
				if (el.hasAttribute('href') && !/^(https?:|mailto:)/i.test(el.getAttribute('href'))) say(el, 'link');
				if (!/nofollow/.test(el.rel) || !/noreferrer/.test(el.rel)) say(el, 'rel');
			}
			if (el.tagName === 'BUTTON' && !(el.classList.contains('copy') && el.type === 'button')) say(el, 'button');
			if (el.tagName === 'INPUT' && el.type !== 'checkbox') say(el, 'input');
		}
	}
	for (const root of document.querySelectorAll('#messages .text')) {
		if (root.children.length > 0) say(root, 'markup in a question');
	}
	for (const el of document.querySelectorAll('*')) {
		for (const a of el.attributes) {
			if (/^on/i.test(a.name)) say(el, 'handler ' + a.name);
			if (/^(href|src|action|formaction|xlink:href)$/i.test(a.name) && /^\s*(javascript|data|vbscript):/i.test(a.value)) say(el, 'URL');
		}
	}
	return bad;
})()`

// TestBrowserCopyCodeButton presses the copy button of a highlighted code
// block in an answer and checks that the clipboard then holds the code,
// exactly, and the button says so; and that without a clipboard API the
// button selects the code instead, with no console error.
func TestBrowserCopyCodeButton(t *testing.T) {
	t.Parallel()
	base := startParley(t, fast)
	b := startBrowser(t)
	tb := b.newTab("copy")
	origin := mustOrigin(t, base)
	grantClipboard(t, tb, origin)

	const code = "func main() {\n\tfmt.Println(\"<copy & paste>\")\n}\n"
	tb.startConversation(base, "[[echo]]Some code follows.")
	tb.waitFor("the first answer to be done", statusIs(1, "done"))
	tb.sendRaw("[[echo]]Here:\n\n```go\n" + code + "```\n\nDone.")
	tb.waitFor("the answer to be done", statusIs(3, "done"))
	tb.waitFor("a highlighted code block", `!!document.querySelector('#m-3 .code pre.chroma code.language-go span')`)
	if got := evalJS[string](tb, `document.querySelector('#m-3 .code code').textContent`); got != code {
		t.Fatalf("the code block holds %q, want %q", got, code)
	}

	if _, err := chromedp.Call(tb.ctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.Click("#m-3 .code button.copy"))
	tb.waitFor("the button to say Copied", `document.querySelector('#m-3 .code button.copy').textContent === 'Copied'`)
	got := evalJS[string](tb, `navigator.clipboard.readText()`, chromedp.EvalAwaitPromise)
	if got != code {
		t.Errorf("the clipboard holds %q, want %q", got, code)
	}
	tb.waitFor("the button to say Copy again", `document.querySelector('#m-3 .code button.copy').textContent === 'Copy'`)

	// Without a clipboard API (a page served over plain HTTP from another
	// host has none) the code is selected, for the person to copy.
	evalJS[bool](tb, `Object.defineProperty(navigator, 'clipboard', {value: undefined}) && true`)
	tb.do(chromedp.Click("#m-3 .code button.copy"))
	// Selection.toString leaves out the block's final newline.
	tb.waitFor("the code to be selected", fmt.Sprintf(`getSelection().toString() === %s`, strconv.Quote(strings.TrimSuffix(code, "\n"))))
	if got := evalJS[string](tb, `document.querySelector('#m-3 .code button.copy').textContent`); got != "Copy" {
		t.Errorf("after a refused copy the button says %q", got)
	}
}
