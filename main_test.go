package main

// End-to-end tests: the real binary (run, as main calls it) against a private
// redis-server, driven through Debian's headless Chromium with the vendored
// Datastar beta.11 client. They check what a person sees: answers stream,
// every tab ends with the stored conversation, and reloads, stops and network
// cuts lose or double nothing.
//
// Everything waits by polling a condition in the page with a generous timeout:
// timings on small CI machines are noisy, and no assertion rests on a sleep.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime/pprof"
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

	"github.com/parley-chat/parley/internal/testredis"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// waitTimeout bounds each wait for a condition in a page.
	waitTimeout = 30 * time.Second
	// testTimeout bounds a whole browser test, so that a hung browser fails
	// the test instead of the whole run.
	testTimeout = 3 * time.Minute
)

// speed is the pace of the offline demo model: tokens per second and answer
// length in tokens.
type speed struct {
	tps    float64
	tokens int
}

var (
	// fast answers in about three seconds.
	fast = speed{tps: 40, tokens: 120}
	// slow answers in about ten seconds: time to open a tab, reload, press
	// Stop or cut the network while the answer is still being written.
	slow = speed{tps: 15, tokens: 150}
)

// TestBrowserStreamsAnswerAcrossTabs starts a conversation from the home page,
// watches the answer grow, opens a second tab mid-answer, and checks that both
// tabs end with what a fresh page load (and the server's HTML) shows.
func TestBrowserStreamsAnswerAcrossTabs(t *testing.T) {
	base := startParley(t, slow)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "How do I stream answers to several tabs?")
	tab1.waitFor("the answer to start streaming", statusIs(1, "streaming"))

	// A second viewer joins while the answer is being written: its page is
	// rendered mid-answer and its stream resumes from that point.
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	if got := tab2.status(1); got != "streaming" {
		t.Fatalf("tab 2 opened after the answer ended (status %q): the test wants it to join mid-answer; slow the demo model", got)
	}

	// The first tab sees the answer grow, frame by frame, from a gzip
	// stream: Chromium decodes each frame as it arrives.
	n := tab1.textLen(1)
	for range 2 {
		n = tab1.waitGrowth(1, n)
	}
	tab2.waitGrowth(1, tab2.textLen(1))
	for _, tb := range []*tab{tab1, tab2} {
		if enc := tb.streamEncodings(); len(enc) == 0 || enc[0] != "gzip" {
			t.Errorf("%s: the live stream's Content-Encoding was %q, want gzip", tb.name, enc)
		}
	}

	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the answer to be done", statusIs(1, "done"))
	}
	if tab1.textLen(1) < 200 {
		t.Fatalf("the finished answer has only %d characters", tab1.textLen(1))
	}

	// A third tab, opened after the end, shows the stored conversation.
	tab3 := b.newTab("tab 3")
	tab3.navigate(conv)
	tab3.waitFor("the answer to be done", statusIs(1, "done"))

	want := tab3.messagesText()
	wantMD := tab3.answerHTML(1)
	for _, tb := range []*tab{tab1, tab2} {
		if got := tb.messagesText(); got != want {
			t.Errorf("%s: #messages text differs from a fresh load:\n%s", tb.name, diff(want, got))
		}
		if got := tb.answerHTML(1); got != wantMD {
			t.Errorf("%s: #m-1 .md HTML differs from a fresh load:\n%s", tb.name, diff(wantMD, got))
		}
		if got, server := tb.answerHTML(1), tb.serverHTML("#m-1 .md"); got != server {
			t.Errorf("%s: #m-1 .md HTML differs from the server's page:\n%s", tb.name, diff(server, got))
		}
	}
}

// TestBrowserSecondMessageAndStop sends a second message from the composer of
// a conversation page and stops its answer from another tab.
func TestBrowserSecondMessageAndStop(t *testing.T) {
	base := startParley(t, fast)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "First question")
	tab1.waitFor("the first answer to be done", statusIs(1, "done"))

	// The second tab is open before the second message, so it learns of the
	// new messages from its live stream only.
	tab2 := b.newTab("tab 2")
	tab2.navigate(conv)
	tab2.waitFor("the first answer to be done", statusIs(1, "done"))

	// [[slow]] makes the demo model write at 2 tokens a second: plenty of
	// time to press Stop mid-answer.
	const second = "Second question [[slow]]"
	tab1.do(
		chromedp.SendKeys("#composer textarea#text", second),
		chromedp.Click("#composer button[type=submit]"),
	)
	tab1.waitFor("the composer to clear", `document.querySelector('#composer textarea#text').value === ''`)
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the second message to appear", fmt.Sprintf(
			`document.querySelector('#m-2 .text')?.innerText === %s`, strconv.Quote(second)))
		tb.waitFor("the second answer to stream", statusIs(3, "streaming"))
		tb.waitGrowth(3, 0) // so that the stopped answer has some text
	}

	tab2.do(chromedp.Click("#composer button.stop"))
	for _, tb := range []*tab{tab1, tab2} {
		tb.waitFor("the second answer to be stopped", statusIs(3, "stopped"))
	}
	text1, text2 := tab1.answerText(3), tab2.answerText(3)
	if text1 != text2 {
		t.Errorf("the tabs show different stopped answers:\n%s", diff(text1, text2))
	}
	if text2 == "" {
		t.Fatal("the stopped answer is empty")
	}

	// Both tabs show what is stored: the partial answer, marked stopped.
	fresh := b.newTab("tab 3")
	fresh.navigate(conv)
	for _, tb := range []*tab{tab1, tab2} {
		tb.assertSameAnswer(fresh, 3)
	}
}

// TestBrowserReloadMidAnswer reloads the page while the answer is written: the
// reloaded page carries on and ends with the stored answer.
func TestBrowserReloadMidAnswer(t *testing.T) {
	base := startParley(t, slow)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	conv := tab1.startConversation(base, "What happens when I reload?")
	tab1.waitGrowth(1, 0)

	tab1.do(chromedp.Reload())
	if got := tab1.status(1); got != "streaming" {
		t.Fatalf("the answer ended (status %q) before the reload; slow the demo model", got)
	}
	tab1.waitGrowth(1, tab1.textLen(1))
	tab1.waitFor("the answer to be done", statusIs(1, "done"))

	fresh := b.newTab("tab 2")
	fresh.navigate(conv)
	tab1.assertSameAnswer(fresh, 1)
}

// TestBrowserOfflineReconnect cuts the network mid-answer: the client retries,
// reconnects with Last-Event-ID, and ends with the stored answer, nothing
// missing and nothing doubled. Meanwhile the connection indicator says
// "Reconnecting…", and it clears once the stream is back.
func TestBrowserOfflineReconnect(t *testing.T) {
	app := startParley(t, slow)
	// Chromium's offline emulation fails new requests but leaves a response
	// that is already streaming open (seen with Chromium 156, with both
	// Network.emulateNetworkConditions and ...ByRule), so the live stream is
	// cut by a proxy in front of the app, as a lost connection would be.
	sw := startNetSwitch(t, app)
	b := startBrowser(t)

	tab1 := b.newTab("tab 1")
	// The beta.11 client reports each failed attempt with console.error and
	// Chromium logs the failed requests; that is expected here. Nothing
	// else is: not an exception, not an error about another request.
	tab1.allow = isRetryNoise
	conv := tab1.startConversation(sw.url, "Does it survive a network cut?")
	tab1.waitGrowth(1, 0)
	if got := tab1.connText(); got != "" {
		t.Fatalf("the connection indicator shows %q while the stream is up", got)
	}

	tab1.setOffline(true)
	sw.cut()
	cut := time.Now()
	tab1.waitFor("the connection indicator to say so", `document.querySelector('span.conn')?.innerText === 'Reconnecting…'`)
	t.Logf("the indicator showed the cut after %v", time.Since(cut).Round(time.Millisecond))
	// The outage lasts longer than the client's first retry delays (500 ms,
	// then 1 s), so that it really fails and backs off.
	time.Sleep(time.Until(cut.Add(2500 * time.Millisecond)))
	if got := tab1.status(1); got != "streaming" {
		t.Fatalf("the answer shows %q during the outage; slow the demo model", got)
	}
	if got := tab1.connText(); got != "Reconnecting…" {
		t.Errorf("the connection indicator shows %q during the outage, want Reconnecting…", got)
	}
	atOutageEnd := tab1.textLen(1)
	sw.restore()
	tab1.setOffline(false)
	restored := time.Now()

	tab1.waitFor("the connection indicator to clear", `document.querySelector('span.conn')?.innerText === ''`)
	t.Logf("the indicator cleared %v after the network came back", time.Since(restored).Round(time.Millisecond))
	tab1.waitFor("the answer to be done", statusIs(1, "done"))
	if n := tab1.textLen(1); n <= atOutageEnd {
		t.Errorf("the answer did not grow after the outage (%d characters, %d before)", n, atOutageEnd)
	}
	reconnects := tab1.streamsOpenedAfter(restored)
	if len(reconnects) == 0 {
		t.Fatalf("no event stream was opened after the network came back; streams: %+v", tab1.streams())
	}
	if id := reconnects[0].lastEventID; !regexp.MustCompile(`^\d+-\d+$`).MatchString(id) {
		t.Errorf("the reconnect sent Last-Event-ID %q, want a log entry ID", id)
	}
	if got := tab1.connText(); got != "" {
		t.Errorf("the connection indicator shows %q after the stream caught up", got)
	}

	fresh := b.newTab("tab 2")
	fresh.navigate(conv)
	tab1.assertSameAnswer(fresh, 1)
}

// isRetryNoise reports whether p is what the beta.11 client and Chromium log
// about the live stream while the network is down: the client's "failed to
// reach ... retrying" line and the fetch error it follows ("network error"
// when the stream is cut, "Failed to fetch" when a retry cannot connect),
// and Chromium's failed-request line for the stream.
func isRetryNoise(p problem) bool {
	switch p.kind {
	case "console.error":
		return retryLine.MatchString(p.text) || p.text == "network error" || p.text == "Failed to fetch"
	case "log":
		return failedStream.MatchString(p.text)
	}
	return false
}

var (
	retryLine    = regexp.MustCompile(`^Datastar failed to reach http://\S+/c/[a-z0-9]+/events\S* retrying in \d+ms\.$`)
	failedStream = regexp.MustCompile(`^Failed to load resource: net::ERR_(INTERNET_DISCONNECTED|CONNECTION_RESET|CONNECTION_REFUSED|CONNECTION_CLOSED|EMPTY_RESPONSE) http://\S+/c/[a-z0-9]+/events\S*$`)
)

// ---- the server ----

// startParley runs the app as main does, against a private redis-server, on
// a free port, and returns its base URL. It stops in t.Cleanup and waits for
// the graceful shutdown.
func startParley(t *testing.T, s speed) string {
	t.Helper()
	u, _ := launchParley(t, s, "")
	return u
}

// launchParley is startParley on a given Redis (a new one when redisURL is
// empty) that also returns shutdown, which stops the
// app as SIGTERM would and waits until run has returned. extra flags come
// last, so they override the defaults here.
func launchParley(t *testing.T, s speed, redisURL string, extra ...string) (url string, shutdown func()) {
	t.Helper()
	return launchParleyEnv(t, s, redisURL, nil, extra...)
}

// launchParleyEnv is launchParley with environment variables besides
// REDIS_URL (secrets, such as PARLEY_ACCESS_CODE, have no flags).
func launchParleyEnv(t *testing.T, s speed, redisURL string, env map[string]string, extra ...string) (url string, shutdown func()) {
	t.Helper()
	if redisURL == "" {
		redisURL = testredis.Start(t).URL()
	}
	args := []string{
		"-addr", "127.0.0.1:0",
		"-model", "demo",
		"-demo-tokens-per-second", strconv.FormatFloat(s.tps, 'f', -1, 64),
		"-demo-tokens", strconv.Itoa(s.tokens),
		"-log-level", "warn",
		"-shutdown-timeout", "5s",
		// Metrics on a free port: on, as in production, but never on a
		// fixed port that another process may hold.
		"-metrics-addr", "127.0.0.1:0",
	}
	args = append(args, extra...)
	// Only REDIS_URL: nothing from the environment (an OPENAI_API_KEY, say)
	// may change what the tests run against.
	getenv := func(k string) string {
		if k == "REDIS_URL" {
			return redisURL
		}
		return env[k]
	}

	ctx, cancel := context.WithCancel(context.Background())
	out, outW := io.Pipe()
	logs := &syncBuffer{}
	exited := make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = run(ctx, args, getenv, outW, logs)
		outW.Close()
	}()
	var once sync.Once
	shutdown = func() { once.Do(func() { cancel(); <-exited }) }
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
			if runErr != nil {
				t.Errorf("parley: %v", runErr)
			}
		case <-time.After(30 * time.Second):
			var stacks bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("parley did not shut down within 30s; goroutines:\n%s", stacks.String())
		}
		if t.Failed() && logs.Len() > 0 {
			t.Logf("parley log:\n%s", logs.String())
		}
	})

	// The port is only known from the line run prints when it listens.
	urls := make(chan string, 1)
	go func() {
		line := regexp.MustCompile(`running at (http://\S+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := line.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-urls:
		return u, shutdown
	case <-exited:
		t.Fatalf("parley stopped before it listened: %v\n%s", runErr, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("parley did not start listening within 30s\n%s", logs.String())
	}
	return "", shutdown
}

// syncBuffer is a bytes.Buffer that the app's logger and the test may use at
// once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// netSwitch is a TCP proxy in front of the app whose cut drops every
// connection through it, and refuses new ones until restore.
type netSwitch struct {
	url string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startNetSwitch(t *testing.T, appURL string) *netSwitch {
	t.Helper()
	target := strings.TrimPrefix(appURL, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sw := &netSwitch{url: "http://" + ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		sw.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go sw.pipe(c, target)
		}
	}()
	return sw
}

func (sw *netSwitch) pipe(c net.Conn, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	if !sw.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	defer sw.untrack(c, up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (sw *netSwitch) track(cs ...net.Conn) bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.down {
		return false
	}
	for _, c := range cs {
		sw.conns[c] = struct{}{}
	}
	return true
}

func (sw *netSwitch) untrack(cs ...net.Conn) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(sw.conns, c)
	}
}

// cut resets every connection, as a dropped network does.
func (sw *netSwitch) cut() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.down = true
	for c := range sw.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not a clean end of the response
		}
		c.Close()
		delete(sw.conns, c)
	}
}

func (sw *netSwitch) restore() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.down = false
}

// ---- the browser ----

// browser is one headless Chromium for one test.
type browser struct {
	t   *testing.T
	ctx context.Context // the browser's first tab; new tabs are its children
}

// startBrowser starts Chromium with a fresh profile. It fails the test when
// Chromium is missing (CI installs it), or skips it with -short.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if testing.Short() {
			t.Skipf("%s is missing; browser tests skipped in -short mode", chromiumPath)
		}
		t.Fatalf("%s is missing: install it with `apt-get install chromium` (CI does)", chromiumPath)
	}
	// Not t.TempDir: Chromium's helper processes can still write to the
	// profile for a moment after the browser exits, which makes the
	// testing package's one-shot RemoveAll fail the test.
	profile, err := os.MkdirTemp("", "parley-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAllRetry(t, profile) })

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
		chromedp.UserDataDir(profile),
		// A desktop window: at 800 px or less the sidebar is a drawer.
		chromedp.WindowSize(1280, 800),
	)
	parent, cancelTimeout := context.WithTimeout(context.Background(), testTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return &browser{t: t, ctx: ctx}
}

func removeAllRetry(t *testing.T, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("remove %s: %v", dir, err)
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
