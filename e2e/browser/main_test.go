// Package browser_test drives the real binary, on a private redis-server,
// through Debian's headless Chromium with the vendored Datastar beta.11
// client. The tests check what a person sees: answers stream, every tab ends
// with the stored conversation, and reloads, stops and network cuts lose or
// double nothing.
//
// Everything waits by polling a condition in the page with a generous timeout:
// timings on small CI machines are noisy, and no assertion rests on a sleep.
package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/e2e/harness"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// waitTimeout bounds each wait for a condition in a page.
	waitTimeout = 30 * time.Second
	// testTimeout bounds a whole browser test, so that a hung browser fails
	// the test instead of the whole run.
	testTimeout = 3 * time.Minute
)

var (
	// fast answers in about three seconds.
	fast = harness.Speed{TPS: 40, Tokens: 120}
	// slow answers in about twenty seconds: time to open a tab, reload,
	// press Stop or cut the network while the answer is still being
	// written, even on a busy machine.
	slow = harness.Speed{TPS: 10, Tokens: 200}
)

// bin is the parley binary, built once by TestMain; chromium is the
// package's one browser, started by the first test that needs it.
var (
	bin      string
	chromium sharedBrowser
)

func TestMain(m *testing.M) {
	code := harness.Run(m, &bin, 4)
	chromium.stop()
	os.Exit(code)
}

// startParley runs the app (harness.Launch) on a private redis-server and
// returns its base URL.
func startParley(t *testing.T, s harness.Speed) string {
	t.Helper()
	return harness.Launch(t, bin, s, "", nil).URL
}

// launchParley is startParley on a given Redis (a new one when redisURL is
// empty), with environment variables besides REDIS_URL and extra flags.
func launchParley(t *testing.T, s harness.Speed, redisURL string, env map[string]string, extra ...string) string {
	t.Helper()
	return harness.Launch(t, bin, s, redisURL, env, extra...).URL
}

// ---- the browser ----

// browser is one test's window on the package's Chromium: a browser context
// of its own (cookies, storage, permissions), closed at the end of the test.
type browser struct {
	t   *testing.T
	ctx context.Context // the context's first tab; new tabs are its children
}

// startBrowser opens a fresh browser context for the test. It fails the
// test when Chromium is missing (CI installs it), or skips it with -short.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if testing.Short() {
			t.Skipf("%s is missing; browser tests skipped in -short mode", chromiumPath)
		}
		t.Fatalf("%s is missing: install it with `apt-get install chromium` (CI does)", chromiumPath)
	}
	root, err := chromium.get()
	if err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	parent, cancelTimeout := context.WithTimeout(root, testTimeout)
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(func() {
		cancel()
		cancelTimeout()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a browser context: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

// sharedBrowser is a headless Chromium that tests share, each in its own
// browser context: starting one per test costs more CPU than the tests on a
// small machine.
type sharedBrowser struct {
	once    sync.Once
	ctx     context.Context
	err     error
	profile string
	cancel  func()
}

// get starts Chromium the first time and returns the context of its first
// tab, from which tests open their browser contexts.
func (b *sharedBrowser) get() (context.Context, error) {
	b.once.Do(func() {
		// Not t.TempDir: Chromium's helper processes can still write to the
		// profile for a moment after the browser exits.
		b.profile, b.err = os.MkdirTemp("", "parley-chromium-")
		if b.err != nil {
			return
		}
		// Some of these are in the defaults already; the list says all that
		// matters here: no sandbox (CI containers run as root), no GPU, and no
		// background traffic or QUIC that could disturb the app's streams.
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromiumPath),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-quic", true),
			chromedp.UserDataDir(b.profile),
			// A desktop window: at 800 px or less the sidebar is a drawer.
			chromedp.WindowSize(1280, 800),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(allocCtx)
		b.ctx, b.cancel = ctx, func() { cancel(); cancelAlloc() }
		b.err = chromedp.Do(ctx)
	})
	return b.ctx, b.err
}

// stop ends Chromium, if it was started, and removes its profile.
func (b *sharedBrowser) stop() {
	if b.cancel != nil {
		b.cancel()
	}
	if b.profile != "" {
		removeAllRetry(b.profile)
	}
}

// removeAllRetry removes dir, retrying while Chromium's helpers still write.
func removeAllRetry(dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "remove %s: %v\n", dir, err)
}

// problem is a console error, an uncaught exception or a browser log error
// seen in a tab.
type problem struct {
	kind string // "console.error", "exception", "log" or "csp" (a Content-Security-Policy violation)
	text string
}

// stream is one request of a tab for the live event stream.
type stream struct {
	id          network.RequestID
	sent        time.Time
	lastEventID string
	status      int64  // 0 until a response arrived
	encoding    string // the response's Content-Encoding
}

// tab is one browser tab (its own window, so that it is visible and keeps
// its live stream open). It records console problems and event-stream
// requests, and fails the test at the end if an unexpected problem appeared.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context
	// allow reports whether a problem is expected in this test. By
	// default none is.
	allow func(problem) bool

	mu       sync.Mutex
	problems []problem
	requests []*stream

	cancel    context.CancelFunc
	closeOnce sync.Once
}

// newTab opens a tab in its own window. By default it shares the browser's
// profile, and so its cookies: it is the same person as every other such
// tab. chromedp.WithNewBrowserContext() in opts makes it a stranger (an
// incognito-like context with a cookie jar of its own).
func (b *browser) newTab(name string, opts ...chromedp.ContextOption) *tab {
	b.t.Helper()
	tb := &tab{t: b.t, name: name, allow: func(problem) bool { return false }}
	ctx, cancel := chromedp.NewContext(b.ctx, append(opts, chromedp.WithListener(tb.listen))...)
	tb.ctx, tb.cancel = ctx, cancel
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open %s: %v", name, err)
	}
	tb.watchCSP()
	b.t.Cleanup(tb.close)
	return tb
}

// close checks the tab's problems and closes it, as a person closing the
// tab would. It may be called more than once.
func (tb *tab) close() {
	tb.closeOnce.Do(func() {
		tb.checkProblems()
		tb.cancel()
	})
}

// cspBinding is the function through which pages report Content-Security-
// Policy violations to the test: a CDP binding, so that reports survive
// navigations and arrive as events even if the page is closed right after.
const cspBinding = "__parleyCSP"

// cspWatcher runs in every document before the page's own scripts. It keeps
// the violations in window.__csp too, for a person debugging in the page.
const cspWatcher = `(() => {
	window.__csp = [];
	document.addEventListener('securitypolicyviolation', e => {
		const v = e.effectiveDirective + ' blocked ' + (e.blockedURI || '(inline)') +
			' in ' + (e.sourceFile || e.documentURI) + ':' + e.lineNumber +
			(e.sample ? ' sample ' + JSON.stringify(e.sample) : '');
		window.__csp.push(v);
		try { window.` + cspBinding + `(v); } catch (_) {}
	}, true);
})()`

// watchCSP makes every document the tab loads from now on report CSP
// violations as problems of kind "csp".
func (tb *tab) watchCSP() {
	tb.t.Helper()
	if _, err := chromedp.Call(tb.ctx, runtime.AddBinding, runtime.AddBindingParams{Name: cspBinding}); err != nil {
		tb.t.Fatalf("%s: add the CSP binding: %v", tb.name, err)
	}
	if _, err := chromedp.Call(tb.ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatcher}); err != nil {
		tb.t.Fatalf("%s: add the CSP watcher: %v", tb.name, err)
	}
}

// listen runs on chromedp's event loop: it must only record, quickly.
func (tb *tab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			tb.problems = append(tb.problems, problem{"console." + string(ev.Type), argsText(ev.Args)})
		}
	case *runtime.EventBindingCalled:
		if ev.Name == cspBinding {
			tb.problems = append(tb.problems, problem{"csp", ev.Payload})
		}
	case *runtime.EventExceptionThrown:
		// The description holds the whole stack; its first line says it.
		text, _, _ := strings.Cut((&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error(), "\n    at ")
		tb.problems = append(tb.problems, problem{"exception", text})
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			tb.problems = append(tb.problems, problem{"log", ev.Entry.Text + " " + ev.Entry.URL})
		}
	case *network.EventRequestWillBeSent:
		if strings.Contains(ev.Request.URL, "/events") && !strings.Contains(ev.Request.URL, "/sidebar/events") {
			s := &stream{id: ev.RequestID, sent: time.Now()}
			for k, v := range ev.Request.Headers {
				if strings.EqualFold(k, "Last-Event-ID") {
					s.lastEventID = fmt.Sprint(v)
				}
			}
			tb.requests = append(tb.requests, s)
		}
	case *network.EventResponseReceived:
		for _, s := range tb.requests {
			if s.id == ev.RequestID {
				s.status = ev.Response.Status
				for k, v := range ev.Response.Headers {
					if strings.EqualFold(k, "Content-Encoding") {
						s.encoding = fmt.Sprint(v)
					}
				}
			}
		}
	}
}

// streamEncodings returns the Content-Encoding of each event-stream response
// the tab received, in order.
func (tb *tab) streamEncodings() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, s := range tb.requests {
		if s.status != 0 {
			out = append(out, s.encoding)
		}
	}
	return out
}

func argsText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		var s string
		if a.Type == runtime.RemoteObjectTypeString && json.Unmarshal(a.Value, &s) == nil {
			parts = append(parts, s)
		} else if a.Description != "" {
			parts = append(parts, a.Description)
		} else {
			parts = append(parts, string(a.Value))
		}
	}
	return strings.Join(parts, " ")
}

func (tb *tab) checkProblems() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	expected := 0
	for _, p := range tb.problems {
		if tb.allow(p) {
			expected++
			tb.t.Logf("%s: expected %s: %s", tb.name, p.kind, p.text)
		} else {
			tb.t.Errorf("%s: %s: %s", tb.name, p.kind, p.text)
		}
	}
	if expected > 0 {
		tb.t.Logf("%s: %d expected console or log errors", tb.name, expected)
	}
}

// streams returns the tab's event-stream requests so far.
func (tb *tab) streams() []stream {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]stream, len(tb.requests))
	for i, s := range tb.requests {
		out[i] = *s
	}
	return out
}

// streamsOpenedAfter returns the event streams sent after t that got a 200.
func (tb *tab) streamsOpenedAfter(t time.Time) []stream {
	var out []stream
	for _, s := range tb.streams() {
		if s.sent.After(t) && s.status == 200 {
			out = append(out, s)
		}
	}
	return out
}

// ---- actions and queries on a tab ----

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", tb.name, err, tb.describe())
	}
}

func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(url))
}

// startConversation sends text from the home page's form and returns the
// URL of the conversation it lands on.
func (tb *tab) startConversation(base, text string) string {
	tb.t.Helper()
	tb.navigate(base + "/")
	tb.do(chromedp.SendKeys("textarea#text", text))
	resp, err := chromedp.RunResponse(tb.ctx, chromedp.Click("form.composer button[type=submit]"))
	if err != nil {
		tb.t.Fatalf("%s: send the first message: %v", tb.name, err)
	}
	if resp.Status != 200 {
		tb.t.Fatalf("%s: sending the first message gave HTTP %d", tb.name, resp.Status)
	}
	url := evalJS[string](tb, `location.href`)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `/c/[^/?#]+$`).MatchString(url) {
		tb.t.Fatalf("%s: the first message led to %s, not to a conversation", tb.name, url)
	}
	tb.waitFor("the user message", fmt.Sprintf(`document.querySelector('#m-0 .text')?.innerText === %s`, strconv.Quote(text)))
	return url
}

func evalJS[T any](tb *tab, expr string, opts ...chromedp.EvaluateOption) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v", tb.name, expr, err)
	}
	return v
}

// waitFor polls the JavaScript condition expr until it holds.
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	poll[bool](tb, what, expr)
}

// poll waits until expr is truthy and returns its value.
func poll[T any](tb *tab, what, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Poll[T](expr,
		// Timers, not animation frames: they keep running however the
		// window is shown.
		chromedp.WithPollingInterval(25*time.Millisecond),
		chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		tb.t.Fatalf("%s: waiting for %s: %v\npage: %s", tb.name, what, err, tb.describe())
	}
	return v
}

// describe summarises the page for a failure message. It never fails.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const msgs = [...document.querySelectorAll('#messages article')].map(a =>
			a.id + '=' + (a.querySelector('.foot')?.dataset.status ?? 'user') + '/' +
			(a.querySelector('.md, .text')?.innerText.length ?? '?') + ' chars');
		return location.href + ' (' + document.visibilityState + '): ' + msgs.join(', ');
	})()`))
	if err != nil {
		return "(page not readable: " + err.Error() + ")"
	}
	return s
}

// statusIs is a condition: answer i has the status.
func statusIs(i int, status string) string {
	return fmt.Sprintf(`document.getElementById('m-%d-foot')?.dataset.status === %q`, i, status)
}

func (tb *tab) status(i int) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`document.getElementById('m-%d-foot')?.dataset.status ?? ''`, i))
}

func (tb *tab) answerText(i int) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`document.querySelector('#m-%d .md')?.innerText ?? ''`, i))
}

func (tb *tab) textLen(i int) int {
	tb.t.Helper()
	return len(tb.answerText(i))
}

func (tb *tab) answerHTML(i int) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`document.querySelector('#m-%d .md')?.innerHTML ?? ''`, i))
}

// connText is what the connection indicator says ("" while connected).
func (tb *tab) connText() string {
	tb.t.Helper()
	return evalJS[string](tb, `document.querySelector('span.conn')?.innerText ?? '(no span.conn)'`)
}

func (tb *tab) messagesText() string {
	tb.t.Helper()
	return evalJS[string](tb, `document.getElementById('messages').innerText`)
}

// serverHTML fetches the page anew and returns the inner HTML of sel as the
// browser parses the server's HTML, without any script: what is stored.
func (tb *tab) serverHTML(sel string) string {
	tb.t.Helper()
	return evalJS[string](tb, fmt.Sprintf(`fetch(location.href, {cache: 'no-store'})
		.then(r => r.text())
		.then(h => new DOMParser().parseFromString(h, 'text/html').querySelector(%q)?.innerHTML ?? '')`, sel),
		chromedp.EvalAwaitPromise)
}

// waitGrowth waits until answer i has more than n characters while it is
// still streaming, and returns the new length. It fails the test when the
// answer ends first.
func (tb *tab) waitGrowth(i, n int) int {
	tb.t.Helper()
	got := poll[int](tb, fmt.Sprintf("answer %d to grow past %d characters", i, n), fmt.Sprintf(`(() => {
		const foot = document.getElementById('m-%[1]d-foot');
		const md = document.querySelector('#m-%[1]d .md');
		if (!foot || !md) return 0;
		if (foot.dataset.status !== 'streaming') return -1;
		const n = md.innerText.length;
		return n > %[2]d ? n : 0;
	})()`, i, n))
	if got < 0 {
		tb.t.Fatalf("%s: answer %d ended before it grew past %d characters; slow the demo model\npage: %s", tb.name, i, n, tb.describe())
	}
	return got
}

// assertSameAnswer checks that this tab and other show the same conversation
// and the same answer i, and that it is what the server stores.
func (tb *tab) assertSameAnswer(other *tab, i int) {
	tb.t.Helper()
	other.waitFor("the answer to be done", statusIs(i, tb.status(i)))
	if got, want := tb.messagesText(), other.messagesText(); got != want {
		tb.t.Errorf("%s: #messages text differs from %s:\n%s", tb.name, other.name, diff(want, got))
	}
	got, want := tb.answerHTML(i), other.answerHTML(i)
	if got != want {
		tb.t.Errorf("%s: #m-%d .md HTML differs from %s:\n%s", tb.name, i, other.name, diff(want, got))
	}
	if server := tb.serverHTML(fmt.Sprintf("#m-%d .md", i)); got != server {
		tb.t.Errorf("%s: #m-%d .md HTML differs from the server's page:\n%s", tb.name, i, diff(server, got))
	}
}

// setOffline cuts or restores the tab's network. Going offline also fails
// the requests in flight, such as the live stream.
func (tb *tab) setOffline(offline bool) {
	tb.t.Helper()
	_, err := chromedp.Call(tb.ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{
			Offline:            offline,
			DownloadThroughput: -1,
			UploadThroughput:   -1,
		}},
	})
	if err != nil {
		tb.t.Fatalf("%s: set offline=%t: %v", tb.name, offline, err)
	}
	_, err = chromedp.Call(tb.ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
		Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
	})
	if err != nil {
		tb.t.Fatalf("%s: set navigator.onLine=%t: %v", tb.name, !offline, err)
	}
}

// diff shows where two texts part.
func diff(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-80)
	clip := func(s string) string {
		if i >= len(s) {
			return s[from:] + "⟨end⟩"
		}
		return s[from:min(len(s), i+120)]
	}
	return fmt.Sprintf("  lengths: want %d, got %d; first difference at byte %d\n  want: …%q\n  got:  …%q", len(want), len(got), i, clip(want), clip(got))
}
