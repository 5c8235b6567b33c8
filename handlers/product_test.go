package handlers_test

// Tests of the chat product around the stream: who may change a
// conversation, titles, rename, delete, regenerate, presence, per-browser
// limits and the security headers. Each runs against a private redis-server.

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
)

// action posts a Datastar form to path as browser c and returns status and body.
func (a *app) action(t *testing.T, c *http.Client, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", a.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Datastar-Request", "true")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func (a *app) getPage(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	res, err := c.Get(a.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func TestOnlyTheOwnerChangesAConversation(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "hello there")
	done := a.waitStatus(t, conv, 1, store.StatusDone)
	other := a.NewBrowser()

	// The watcher's page is read-only and says so.
	code, page := a.getPage(t, other, "/c/"+conv)
	if code != 200 || !strings.Contains(page, "You are watching this conversation") ||
		strings.Contains(page, `id="composer"`) || !strings.Contains(page, `class="app readonly"`) {
		t.Fatalf("watcher's page is not read-only (status %d)", code)
	}
	// The owner's page has the composer and the menu.
	if _, page := a.getPage(t, a.Client, "/c/"+conv); !strings.Contains(page, `id="composer"`) || !strings.Contains(page, `class="menu"`) {
		t.Fatal("owner's page lacks the composer or the menu")
	}

	for _, tc := range []struct {
		path string
		form url.Values
	}{
		{"/c/" + conv + "/messages", url.Values{"text": {"let me in"}, "key": {store.NewID()}}},
		{"/c/" + conv + "/stop", nil},
		{"/c/" + conv + "/regenerate", url.Values{"rev": {done.Rev}}},
		{"/c/" + conv + "/title", url.Values{"title": {"mine now"}}},
		{"/c/" + conv + "/delete", nil},
	} {
		code, body := a.action(t, other, tc.path, tc.form)
		if code != http.StatusForbidden || !strings.Contains(body, "Only the person who started this conversation") {
			t.Errorf("%s by a watcher: status %d, body %q", tc.path, code, body)
		}
	}
	snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
	if err != nil || snap.Count != 2 || snap.Title == "mine now" {
		t.Fatalf("a watcher changed the conversation: %+v, %v", snap, err)
	}
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	res, err := http.Get(a.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var c *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == session.CookieName {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 0 {
		t.Fatalf("session cookie: %+v", c)
	}
	owner, err := a.Sessions.Verify(c.Value)
	if err != nil || !session.ValidOwner(owner) {
		t.Fatalf("cookie does not verify: %v", err)
	}

	// A forged cookie (someone else's owner ID, our signature format) is
	// not accepted: the browser gets a new identity, not the victim's.
	conv := a.create(t, "mine")
	a.waitStatus(t, conv, 1, store.StatusDone)
	u, _ := url.Parse(a.URL)
	victim := ""
	for _, ck := range a.Client.Jar.Cookies(u) {
		if ck.Name == session.CookieName {
			victim, _, _ = strings.Cut(ck.Value, ".")
		}
	}
	forger := a.NewBrowser()
	forger.Jar.SetCookies(u, []*http.Cookie{{Name: session.CookieName, Value: victim + ".AAAA"}})
	if code, _ := a.action(t, forger, "/c/"+conv+"/title", url.Values{"title": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("forged cookie: status %d, want 403", code)
	}
}

func TestTitleRenameAndList(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "How do   I stream answers to several browser tabs at once, reliably?")
	a.waitStatus(t, conv, 1, store.StatusDone)
	want := "How do I stream answers to several browser…"
	waitFor(t, "the generated title", func() bool {
		m, err := a.Store.Meta(context.Background(), conv)
		return err == nil && m.Title == want
	})
	if _, page := a.getPage(t, a.Client, "/c/"+conv); !strings.Contains(page, `<h1 id="conv-title" class="conv-title" data-title="`+want+`">`+want+`</h1>`) {
		t.Fatalf("page title is not %q", want)
	}

	// A viewer sees a rename live, as a title frame.
	_, cursor := a.page(t, conv)
	res, cancel := a.events(t, conv, cursor)
	defer cancel()
	if code, body := a.action(t, a.Client, "/c/"+conv+"/title", url.Values{"title": {"  Streaming\n to tabs  "}}); code != 200 {
		t.Fatalf("rename: %d %s", code, body)
	}
	got := ""
	_ = readSSE(res.Body, func(ev sseEvent) bool {
		if strings.Contains(ev.Fragments(), `id="conv-title"`) {
			got = ev.Fragments()
			return false
		}
		return true
	})
	if !strings.Contains(got, ">Streaming to tabs<") || !strings.Contains(got, `id="side-current-title"`) {
		t.Fatalf("title frame: %q", got)
	}

	// Rename rejects an empty title with words a person can act on.
	if code, body := a.action(t, a.Client, "/c/"+conv+"/title", url.Values{"title": {"   "}}); code != 400 || !strings.Contains(body, "Type a title") {
		t.Fatalf("empty title: %d %q", code, body)
	}

	// The sidebar lists this browser's conversations, newest first, and not
	// other people's.
	second := a.create(t, "another one")
	a.waitStatus(t, second, 1, store.StatusDone)
	_, home := a.getPage(t, a.Client, "/")
	i1, i2 := strings.Index(home, "/c/"+second), strings.Index(home, "/c/"+conv)
	if i1 < 0 || i2 < 0 || i1 > i2 {
		t.Fatalf("sidebar order: second at %d, first at %d", i1, i2)
	}
	if _, theirs := a.getPage(t, a.NewBrowser(), "/"); strings.Contains(theirs, "/c/"+conv) {
		t.Fatal("another browser's sidebar lists this browser's conversation")
	}
}

// events opens a conversation's stream after cursor.
func (a *app) events(t *testing.T, conv, cursor string) (*http.Response, context.CancelFunc) {
	t.Helper()
	return a.stream(t, "/c/"+conv+"/events?after="+cursor)
}

// stream opens the live stream at path as the page's Datastar client does.
func (a *app) stream(t *testing.T, path string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+path, nil)
	req.Header.Set("Datastar-Request", "true")
	res, err := a.Client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return res, func() { cancel(); res.Body.Close() }
}

func TestDeleteRemovesEverything(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "short lived")
	a.waitStatus(t, conv, 1, store.StatusDone)
	_, cursor := a.page(t, conv)
	res, cancel := a.events(t, conv, cursor)
	defer cancel()

	if code, body := a.action(t, a.Client, "/c/"+conv+"/delete", nil); code != 200 {
		t.Fatalf("delete: %d %q", code, body)
	}
	// The open stream says so, then ends (cleanly: the client must not retry).
	sawNotice := false
	err := readSSE(res.Body, func(ev sseEvent) bool {
		sawNotice = sawNotice || strings.Contains(ev.Fragments(), "This conversation was deleted")
		return true
	})
	if !sawNotice || err != nil {
		t.Fatalf("viewer of a deleted conversation: notice %v, stream end %v", sawNotice, err)
	}
	keys, err := a.RDB.Keys(context.Background(), "{c:"+conv+"}*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys left after delete: %v (%v)", keys, err)
	}
	if code, _ := a.getPage(t, a.Client, "/c/"+conv); code != 404 {
		t.Fatalf("deleted conversation's page: status %d, want 404", code)
	}
	// A page that reconnects later (a hidden tab) is told, and its stream
	// ends cleanly, so the client does not retry for ever.
	late, lateCancel := a.events(t, conv, cursor)
	defer lateCancel()
	body, _ := io.ReadAll(late.Body)
	if late.StatusCode != 200 || !strings.Contains(string(body), "This conversation was deleted") ||
		!strings.Contains(string(body), "datastar-remove-fragments") {
		t.Fatalf("reconnect to a deleted conversation: %d %q", late.StatusCode, body)
	}
	if _, home := a.getPage(t, a.Client, "/"); strings.Contains(home, "/c/"+conv) {
		t.Fatal("deleted conversation still in the sidebar")
	}
}

func TestRegenerateOnceAndRetryAFailure(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "please [[fail]] now")
	failed := a.waitStatus(t, conv, 1, store.StatusFailed)

	// Two clicks of Retry name the same revision: one new answer.
	form := url.Values{"rev": {failed.Rev}}
	c1, _ := a.action(t, a.Client, "/c/"+conv+"/regenerate", form)
	c2, _ := a.action(t, a.Client, "/c/"+conv+"/regenerate", form)
	if c1 != 200 || (c2 != 200 && c2 != http.StatusConflict) {
		t.Fatalf("retry: %d then %d", c1, c2)
	}
	// The demo model fails again on the same prompt: what matters is that
	// exactly one regeneration was logged and the answer ended.
	again := a.waitStatus(t, conv, 1, store.StatusFailed)
	regens, err := a.RDB.XRange(context.Background(), "{c:"+conv+"}:log", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range regens {
		if e.Values["t"] == store.EventBranch {
			n++
		}
	}
	if n != 1 || again.Rev == failed.Rev {
		t.Fatalf("%d regenerations logged (want 1), rev %s -> %s", n, failed.Rev, again.Rev)
	}

	// A stale revision (the page was behind) changes nothing.
	if code, _ := a.action(t, a.Client, "/c/"+conv+"/regenerate", form); code != 200 {
		t.Fatalf("stale regenerate: %d", code)
	}
	if m := a.waitStatus(t, conv, 1, store.StatusFailed); m.Rev != again.Rev {
		t.Fatal("a stale regenerate started an answer")
	}
	// Bad input gets a clear answer.
	if code, body := a.action(t, a.Client, "/c/"+conv+"/regenerate", url.Values{"rev": {"nope"}}); code != 400 || !strings.Contains(body, "out of date") {
		t.Fatalf("malformed rev: %d %q", code, body)
	}
}

func TestRegenerateRewritesTheLastAnswer(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "write something")
	first := a.waitStatus(t, conv, 1, store.StatusDone)
	if code, body := a.action(t, a.Client, "/c/"+conv+"/regenerate", url.Values{"rev": {first.Rev}}); code != 200 {
		t.Fatalf("regenerate: %d %q", code, body)
	}
	second := a.waitStatus(t, conv, 1, store.StatusDone)
	if second.Rev == first.Rev || second.Text == first.Text || second.Text == "" {
		// The demo model varies its reply by the answer's version.
		t.Fatalf("regenerated answer: rev %s -> %s, text equal %v", first.Rev, second.Rev, second.Text == first.Text)
	}
	// A page built from the stream equals a fresh page.
	d, _ := a.page(t, conv)
	if !strings.Contains(d.HTML("messages"), `class="regen owner-only"`) {
		t.Fatal("finished answer has no Regenerate")
	}
}

func TestPresenceCountsViewers(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "watch me")
	a.waitStatus(t, conv, 1, store.StatusDone)
	_, cursor := a.page(t, conv)
	res1, cancel1 := a.events(t, conv, cursor)
	defer cancel1()
	res2, cancel2 := a.events(t, conv, cursor)
	defer cancel2()
	go func() { _, _ = io.Copy(io.Discard, res2.Body) }()

	watching := func(ev sseEvent) string {
		for _, l := range ev.Data {
			if v, ok := strings.CutPrefix(l, "signals "); ok && strings.Contains(v, "watching") {
				return v
			}
		}
		return ""
	}
	var seen []string
	_ = readSSE(res1.Body, func(ev sseEvent) bool {
		if w := watching(ev); w != "" {
			seen = append(seen, w)
			return w != "{watching: 2}"
		}
		return true
	})
	if len(seen) == 0 || seen[len(seen)-1] != "{watching: 2}" {
		t.Fatalf("presence frames: %v", seen)
	}
	// One leaves: the other is told.
	cancel2()
	seen = nil
	_ = readSSE(res1.Body, func(ev sseEvent) bool {
		if w := watching(ev); w != "" {
			seen = append(seen, w)
			return w != "{watching: 1}"
		}
		return true
	})
	if len(seen) == 0 || seen[len(seen)-1] != "{watching: 1}" {
		t.Fatalf("presence after one left: %v", seen)
	}
}

func TestPerBrowserLimits(t *testing.T) {
	t.Parallel()
	t.Run("posts per minute", func(t *testing.T) {
		t.Parallel()
		a := newApp(t, func(c *appConfig) { c.gen.Limits.PostsPerMinute = 2 })
		conv := a.create(t, "one") // 1
		a.waitStatus(t, conv, 1, store.StatusDone)
		if res := a.post(t, conv, "two", store.NewID()); res.StatusCode != 200 { // 2
			t.Fatalf("second post: %d", res.StatusCode)
		}
		a.waitStatus(t, conv, 3, store.StatusDone)
		res := a.post(t, conv, "three", store.NewID())
		body, _ := io.ReadAll(res.Body)
		ra := res.Header.Get("Retry-After")
		if res.StatusCode != http.StatusTooManyRequests || ra == "" || ra == "0" || !strings.Contains(string(body), "too quickly") {
			t.Fatalf("third post in a minute: %d, Retry-After %q, %q", res.StatusCode, ra, body)
		}
		// Someone else is not limited by this browser.
		if code, _ := a.action(t, a.NewBrowser(), "/c", url.Values{"text": {"hi"}}); code != http.StatusSeeOther && code != 200 {
			t.Fatalf("another browser: %d", code)
		}
	})
	t.Run("answers at once", func(t *testing.T) {
		t.Parallel()
		a := newApp(t, func(c *appConfig) {
			c.gen.Limits.OwnerAnswers = 1
			c.gen.MaxDuration = time.Minute
			c.demo.TokensPerSecond = 20
		})
		first := a.create(t, "slow one")
		offer, _ := a.offer(t, a.Client)
		code, body := a.action(t, a.Client, "/c", url.Values{"conv": {offer}, "text": {"second"}})
		if code != http.StatusTooManyRequests || !strings.Contains(body, "already have answers being written") {
			t.Fatalf("second answer at once: %d", code)
		}
		if code, _ := a.action(t, a.Client, "/c/"+first+"/stop", nil); code != 200 {
			t.Fatalf("stop: %d", code)
		}
		a.waitStatus(t, first, 1, store.StatusStopped)
		// The refused form's offer is still good: sending it again works.
		if code, _ := a.action(t, a.Client, "/c", url.Values{"conv": {offer}, "text": {"second"}}); code != http.StatusOK {
			t.Fatalf("after the first ended: %d", code)
		}
	})
	t.Run("answers at once, racing", func(t *testing.T) {
		t.Parallel()
		a := newApp(t, func(c *appConfig) {
			c.gen.Limits.OwnerAnswers = 2
			c.gen.MaxDuration = time.Minute
			c.demo.TokensPerSecond = 20
		})
		_, _ = a.getPage(t, a.Client, "/") // the browser's cookie, before the race
		codes := make(chan int, 8)
		for range 8 {
			go func() {
				code, _ := a.action(t, a.Client, "/c", url.Values{"text": {"race"}})
				codes <- code
			}()
		}
		admitted := 0
		for range 8 {
			switch code := <-codes; code {
			case http.StatusOK:
				admitted++
			case http.StatusTooManyRequests:
			default:
				t.Errorf("racing post: status %d", code)
			}
		}
		if admitted < 1 || admitted > 2 {
			t.Fatalf("%d of 8 racing posts admitted with a limit of 2", admitted)
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	res, err := a.Client.Get(a.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self' 'unsafe-eval'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	// A cross-site form post is refused before it reaches a handler.
	req, _ := http.NewRequest("POST", a.URL+"/c", strings.NewReader("text=hi"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err = a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", res.StatusCode)
	}
	if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the cross-site 403 lacks the security headers: %v", res.Header)
	}
	if hsts := res.Header.Get("Strict-Transport-Security"); hsts != "" {
		t.Errorf("plain HTTP got HSTS %q", hsts)
	}
	// Behind a TLS-terminating proxy, HSTS.
	req, _ = http.NewRequest("GET", a.URL+"/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	res, err = a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if hsts := res.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=31536000") {
		t.Errorf("HTTPS got HSTS %q", hsts)
	}
}
