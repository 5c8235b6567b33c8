package browser_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestBrowserConversationsPage: "Search conversations" in the sidebar opens
// the page of all conversations with its search box focused; Enter searches
// titles and keeps the query; Ctrl+K from a conversation comes back to it;
// on a phone the page fits the screen, each row's date inside the row, and
// the box is not focused (the on-screen keyboard would cover the list).
func TestBrowserConversationsPage(t *testing.T) {
	t.Parallel()
	base := startParley(t, brisk)
	b := startBrowser(t)
	tb := b.newTab("conversations")
	tb.emulate(desktop, "light")
	tb.startConversation(base, "What makes the tides?")
	tb.waitFor("the first answer", statusIs(1, "done"))
	tb.startConversation(base, "Bread without yeast")
	tb.waitFor("the second answer", statusIs(1, "done"))

	if link := tb.boxOf("a.side-search"); link.Bottom-link.Top > 44 {
		t.Errorf("the sidebar's search link is %.0f px high: its words wrap", link.Bottom-link.Top)
	}
	tb.follow("the sidebar's search link", chromedp.Click("a.side-search"))
	tb.waitFor("the page of all conversations", `location.pathname === '/conversations' && document.querySelectorAll('.all-list li').length === 2`)
	if id := evalJS[string](tb, `document.activeElement.id`); id != "q" {
		t.Errorf("the focus is on %q, want the search box", id)
	}
	// Newest first.
	if first := evalJS[string](tb, `document.querySelector('.all-list a').innerText`); first != "Bread without yeast" {
		t.Errorf("the first row is %q, want the newest conversation", first)
	}
	tb.follow("a search", chromedp.SendKeys("#q", "TIDES\n"))
	tb.waitFor("the search's results", `location.search === '?q=TIDES' && document.querySelectorAll('.all-list li').length === 1`)
	if got := evalJS[string](tb, `document.querySelector('.all-list a').innerText`); got != "What makes the tides" {
		t.Errorf("the search found %q", got)
	}
	if q := evalJS[string](tb, `document.getElementById('q').value`); q != "TIDES" {
		t.Errorf("the search box holds %q after the search, want the query", q)
	}
	if os.Getenv("PARLEY_SCREENSHOTS") == "1" {
		saveScreenshot(t, tb, "search-desktop.png")
	}
	tb.follow("a result", chromedp.Click(".all-list a"))
	tb.waitFor("the conversation", `/^\/c\//.test(location.pathname) && !!document.getElementById('m-1')`)

	// Ctrl+K, from the composer, goes to the search with its box focused;
	// with a message typed and not sent it asks first, and staying keeps it.
	if id := evalJS[string](tb, `document.activeElement.id`); id != "text" {
		t.Fatalf("the focus is on %q in the conversation, want the composer", id)
	}
	tb.do(chromedp.SendKeys("#text", "half a thought"))
	if msg := tb.answerDialog("Ctrl+K with a draft", chromedp.KeyEvent("k", chromedp.KeyModifiers(chromedp.ModifierCtrl)), false); !strings.Contains(msg, "has not been sent") {
		t.Errorf("Ctrl+K with a draft asks %q", msg)
	}
	if got := evalJS[string](tb, `location.pathname.startsWith('/c/') ? document.getElementById('text').value : location.pathname`); got != "half a thought" {
		t.Fatalf("after staying, the page holds %q, want the conversation with the draft", got)
	}
	evalJS[bool](tb, `(document.getElementById('text').value = '', true)`)
	tb.follow("Ctrl+K", chromedp.KeyEvent("k", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	tb.waitFor("the search page with its box focused", `location.pathname === '/conversations' && document.activeElement?.id === 'q'`)

	ph := b.newTab("conversations phone")
	ph.emulate(phone, "light")
	ph.navigate(base + "/conversations")
	ph.waitFor("the list", `document.querySelectorAll('.all-list li').length === 2`)
	// After "Older ›" (here, "‹ Newer" would do the same) the focus is on
	// the list, where the person was reading.
	tb.navigate(base + "/conversations?page=1")
	tb.waitFor("the first page", `document.querySelectorAll('.all-list li').length === 2`)
	if in := evalJS[bool](tb, `!!document.activeElement?.closest('.all-list')`); !in {
		t.Error("a page of the list opened with the focus outside the list")
	}
	if id := evalJS[string](ph, `document.activeElement.id`); id == "q" {
		t.Error("on a touch screen the search box took the focus, raising the keyboard")
	}
	if over := evalJS[bool](ph, `document.documentElement.scrollWidth > window.innerWidth`); over {
		t.Error("the page is wider than the phone's screen")
	}
	row, date := ph.boxOf(".all-list li"), ph.boxOf(".all-list time")
	if date.Right > row.Right || date.Left < row.Left || date.Right == 0 {
		t.Errorf("the date %+v is not inside its row %+v", date, row)
	}
	if search := ph.boxOf("#q"); search.Right > evalJS[float64](ph, `window.innerWidth`) {
		t.Errorf("the search box %+v runs off the screen", search)
	}
	// Times are the reader's: in Tokyo, the hour there.
	tokyo := b.newTab("conversations in Tokyo")
	if _, err := chromedp.Call(tokyo.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	tokyo.navigate(base + "/conversations")
	tokyo.waitFor("the list", `document.querySelectorAll('.all-list li').length === 2`)
	at, err := time.Parse(time.RFC3339, evalJS[string](tokyo, `document.querySelector('.all-list time').getAttribute('datetime')`))
	if err != nil {
		t.Fatal(err)
	}
	local := at.In(time.FixedZone("JST", 9*3600))
	h12 := local.Hour() % 12
	if h12 == 0 {
		h12 = 12
	}
	shown := evalJS[string](tokyo, `document.querySelector('.all-list time').textContent`)
	if !strings.HasPrefix(shown, fmt.Sprintf("%02d:%02d", local.Hour(), local.Minute())) && !strings.HasPrefix(shown, fmt.Sprintf("%02d:%02d", h12, local.Minute())) {
		t.Errorf("in Tokyo the list shows %q for %s, want Tokyo's time (%s)", shown, at.Format(time.RFC3339), local.Format("15:04"))
	}

	if os.Getenv("PARLEY_SCREENSHOTS") == "1" {
		saveScreenshot(t, ph, "conversations-phone.png")
		ph.emulate(phone, "dark")
		ph.do(chromedp.Click(".nav-toggle"))
		ph.waitFor("the drawer to open", `document.getElementById('sidebar').getBoundingClientRect().left >= 0`)
		saveScreenshot(t, ph, "drawer-phone-dark.png")
	}
}

// follow runs an action that loads another page and waits for its response.
func (tb *tab) follow(what string, action chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	resp, err := chromedp.RunResponse(tb.ctx, action)
	if err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
	if resp.Status != 200 {
		tb.t.Fatalf("%s: %s gave HTTP %d", tb.name, what, resp.Status)
	}
}
