package browser_test

// Who may use a Parley (PARLEY_ACCESS), in the browser: a passphrase asked
// once, a stranger who may only read a shared link, and people named by an
// identity proxy's header.

import (
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// refusedDocument matches Chromium's log line for a page (or form post)
// answered with status, at one of urls.
func refusedDocument(status string, urls ...string) func(problem) bool {
	var quoted []string
	for _, u := range urls {
		quoted = append(quoted, regexp.QuoteMeta(u))
	}
	re := regexp.MustCompile(`^Failed to load resource: the server responded with a status of ` + status + ` \(\w+\) (` + strings.Join(quoted, "|") + `)$`)
	return func(p problem) bool { return p.kind == "log" && re.MatchString(p.text) }
}

// TestBrowserAccessModes: in code mode a person enters the passphrase once
// (after a wrong try that says how many are left) and chats; a stranger in
// another browser context gets the passphrase page, and reads the first
// person's conversation through its link, read-only. In header mode (the
// header set per browser context with Network.setExtraHTTPHeaders, as an
// identity proxy would) one person in two browser contexts is one owner,
// and someone else only reads.
func TestBrowserAccessModes(t *testing.T) {
	t.Parallel()
	t.Run("code", func(t *testing.T) {
		t.Parallel()
		checkCodeMode(t)
	})
	t.Run("header", func(t *testing.T) {
		t.Parallel()
		checkHeaderMode(t)
	})
}

// checkCodeMode: the passphrase page, a wrong try, the right one, and a
// stranger reading by link.
func checkCodeMode(t *testing.T) {
	const code = "correct horse battery staple"
	base := launchParley(t, fast, "", map[string]string{"PARLEY_ACCESS_CODE": code}, "-access", "code")
	b := startBrowser(t)

	a := b.newTab("A", chromedp.WithNewBrowserContext())
	// The passphrase page answers 401, and the wrong try too.
	a.allow = refusedDocument("401", base+"/", base+"/access")
	a.navigate(base + "/")
	a.waitFor("the passphrase page", `document.querySelector('h1')?.innerText === 'This Parley is private' && !!document.querySelector('input#code[type=password]')`)
	if a.exists("#composer") {
		t.Fatal("the passphrase page has a composer")
	}
	a.enterPassphrase("not it", 401)
	a.waitFor("the wrong try to say so", `document.getElementById('access-error')?.innerText.includes('That passphrase is not right. 4 tries left before a 10-minute wait.')`)
	if v := evalJS[string](a, `document.querySelector('input#code').value`); v != "" {
		t.Fatalf("the passphrase field holds %q after a wrong try", v)
	}
	a.enterPassphrase(code, 200)
	a.waitFor("the home page", `location.pathname === '/' && !!document.querySelector('form#composer textarea#text')`)
	conv := a.startConversation(base, "Who may read this?")
	a.waitFor("the answer to be done", statusIs(1, "done"))
	answer := a.answerText(1)

	// A stranger: the passphrase page at home, the conversation read-only.
	stranger := b.newTab("stranger", chromedp.WithNewBrowserContext())
	stranger.allow = refusedDocument("401", base+"/")
	stranger.navigate(base + "/")
	stranger.waitFor("the passphrase page", `!!document.querySelector('input#code[type=password]')`)
	stranger.navigate(conv)
	stranger.waitFor("the answer", statusIs(1, "done"))
	if got := stranger.answerText(1); got != answer {
		t.Errorf("the stranger reads another answer:\n%s", diff(answer, got))
	}
	if stranger.exists("#composer form") || !stranger.exists("#app.readonly") {
		t.Error("the stranger's view of the link is not read-only")
	}
	if got := evalJS[string](stranger, `document.getElementById('notice').innerText`); !strings.Contains(got, "Enter the passphrase to start your own") {
		t.Errorf("the read-only notice says %q", got)
	}
	// The person with the passphrase still writes.
	a.send("And a second question")
	a.waitFor("the second answer to be done", statusIs(3, "done"))
	stranger.waitFor("the second answer, live", statusIs(3, "done"))
}

// checkHeaderMode: one person in two browser contexts is one owner, someone
// else only reads, and a request without the header is refused.
func checkHeaderMode(t *testing.T) {
	hbase := launchParley(t, fast, "", nil, "-access", "header")
	b := startBrowser(t)
	as := func(name, user string) *tab {
		tb := b.newTab(name, chromedp.WithNewBrowserContext())
		if user != "" {
			if _, err := chromedp.Call(tb.ctx, network.Enable, network.EnableParams{}); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Call(tb.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"X-Forwarded-User": user},
			}); err != nil {
				t.Fatalf("%s: set the user header: %v", name, err)
			}
		}
		return tb
	}
	laptop := as("alice's laptop", "alice@example.com")
	hconv := laptop.startConversation(hbase, "Do my conversations follow me?")
	laptop.waitFor("the answer to be done", statusIs(1, "done"))
	phone := as("alice's phone", "Alice@Example.com")
	phone.navigate(hbase + "/")
	id := hconv[strings.LastIndex(hconv, "/")+1:]
	phone.waitFor("the conversation in the list", `!!document.querySelector('#sidebar #side-`+id+` a')`)
	phone.navigate(hconv)
	phone.waitFor("the composer (alice owns it)", `!!document.querySelector('#composer textarea#text')`)

	bob := as("bob", "bob@example.com")
	bob.navigate(hconv)
	bob.waitFor("the answer", statusIs(1, "done"))
	if bob.exists("#composer form") || !bob.exists("#app.readonly") {
		t.Error("bob's view of alice's conversation is not read-only")
	}
	nobody := as("nobody", "")
	nobody.allow = refusedDocument("403", hbase+"/")
	nobody.navigate(hbase + "/")
	nobody.waitFor("the sign-in page", `document.querySelector('h1')?.innerText === 'Sign-in required'`)
}

// enterPassphrase types the passphrase, submits the form and checks the
// status of the page it ends on.
func (tb *tab) enterPassphrase(code string, status int64) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys("input#code", code))
	resp, err := chromedp.RunResponse(tb.ctx, chromedp.Click("form#access button[type=submit]"))
	if err != nil {
		tb.t.Fatalf("%s: submit the passphrase: %v", tb.name, err)
	}
	if resp.Status != status {
		tb.t.Fatalf("%s: the passphrase form gave HTTP %d, want %d", tb.name, resp.Status, status)
	}
}
