package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/clientaddr"
	"github.com/parley-chat/parley/store"
)

// fresh is what startFresh did: the answer, and the new browser that asked.
type fresh struct {
	code        int
	retry, body string
	conv        string
	browser     *http.Client
}

// startFresh posts a first message as a new browser (a fresh cookie jar),
// claiming to come from xff.
func (a *app) startFresh(t *testing.T, text, xff string) fresh {
	t.Helper()
	f := fresh{browser: a.NewBrowser()}
	req, _ := http.NewRequest("POST", a.URL+"/c", strings.NewReader(url.Values{"text": {text}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	res, err := f.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	f.code, f.retry, f.body = res.StatusCode, res.Header.Get("Retry-After"), string(body)
	if f.code == http.StatusSeeOther {
		f.conv = convOf(t, res.Header.Get("Location"))
	}
	return f
}

// TestFreshCookiesStopAtTheAddressLimits: fifty visitors from one address,
// each with a new cookie and a made-up X-Forwarded-For (no proxy is
// trusted), start conversations: the address's limit admits only its share,
// and the rest are refused with a wait and words; behind a trusted proxy the
// forwarded addresses are told apart.
func TestFreshCookiesStopAtTheAddressLimits(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.gen.Limits.PostsPerMinute = 20
		c.gen.Limits.AddressPostsPerMinute = 5
		c.gen.Limits.AddressConversationsPerHour = 8
		c.gen.MaxDuration = time.Minute
	})
	admitted, refused := 0, 0
	for i := range 50 {
		f := a.startFresh(t, "[[echo]]hi", fmt.Sprintf("198.51.100.%d", i))
		code, retry, body := f.code, f.retry, f.body
		switch code {
		case http.StatusSeeOther:
			admitted++
		case http.StatusTooManyRequests:
			refused++
			if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 60 {
				t.Errorf("refusal %d: Retry-After %q", i, retry)
			}
			if !strings.Contains(body, "from your network") {
				t.Errorf("refusal %d does not say why: %s", i, body)
			}
		default:
			t.Fatalf("post %d: status %d", i, code)
		}
	}
	if admitted != 5 || refused != 45 {
		t.Fatalf("50 fresh cookies from one address: %d admitted, %d refused; want 5 and 45", admitted, refused)
	}

	// Behind a trusted proxy each forwarded address has its own count.
	b := newApp(t, func(c *appConfig) {
		c.gen.Limits.AddressPostsPerMinute = 1
		c.gen.MaxDuration = time.Minute
		c.clients, _ = clientaddr.Parse("127.0.0.1")
	})
	for i := range 10 {
		if f := b.startFresh(t, "[[echo]]hi", fmt.Sprintf("198.51.100.%d", i)); f.code != http.StatusSeeOther {
			t.Fatalf("behind a trusted proxy, address %d was refused: %d %s", i, f.code, f.body)
		}
	}
	if f := b.startFresh(t, "[[echo]]hi", "198.51.100.0"); f.code != http.StatusTooManyRequests {
		t.Errorf("a forwarded address over its limit got %d", f.code)
	}
}

// TestAnswersAtOncePerAddress: slow answers from one address with a new
// cookie each stop at the address's answers at once, and free their place
// when they end.
func TestAnswersAtOncePerAddress(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.gen.Limits.AddressAnswers = 2
		c.gen.MaxDuration = time.Minute
		c.demo.TokensPerSecond = 20
	})
	var first fresh
	for i := range 2 {
		f := a.startFresh(t, "a slow answer", "")
		if f.code != http.StatusSeeOther {
			t.Fatalf("answer within the limit: %d", f.code)
		}
		if i == 0 {
			first = f
		}
	}
	f := a.startFresh(t, "one too many", "")
	if f.code != http.StatusTooManyRequests || f.retry == "" || !strings.Contains(f.body, "for your network at once") {
		t.Fatalf("third answer at once from one address: %d, Retry-After %q\n%s", f.code, f.retry, f.body)
	}
	// Stopping one frees its place at once.
	if code, _ := a.action(t, first.browser, "/c/"+first.conv+"/stop", nil); code != http.StatusOK {
		t.Fatalf("stop: %d", code)
	}
	a.waitStatus(t, first.conv, 1, store.StatusStopped)
	if f := a.startFresh(t, "now there is room", ""); f.code != http.StatusSeeOther {
		t.Fatalf("after a stop: %d\n%s", f.code, f.body)
	}
}

// TestDailyTokenBudget: once the deployment's answers have used the day's
// model tokens, new answers are refused, saying when the budget resets.
func TestDailyTokenBudget(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.gen.Limits.DailyTokens = 50 })
	conv := a.create(t, "[[long 300]] spend the budget")
	a.waitStatus(t, conv, 1, store.StatusDone)
	// The answer's tokens are counted just after its end is written.
	waitFor(t, "the tokens to be counted", func() bool {
		keys, _ := a.RDB.Keys(context.Background(), "parley:tokens:*").Result()
		if len(keys) != 1 {
			return false
		}
		n, _ := a.RDB.Get(context.Background(), keys[0]).Int64()
		return n >= 50
	})
	code, body := a.action(t, a.Client, "/c/"+conv+"/messages", url.Values{"text": {"more"}, "key": {store.NewID()}})
	if code != http.StatusTooManyRequests || !strings.Contains(body, "model budget for today") || !strings.Contains(body, "midnight UTC") {
		t.Fatalf("a post past the daily budget: %d\n%s", code, body)
	}
}

// TestStopAndRenameAreCounted: stops and renames are limited per minute too
// (each reaches every viewer), and say so when refused.
func TestStopAndRenameAreCounted(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.limits.ActionsPerMinute = 2 })
	conv := a.create(t, "[[echo]]hi")
	a.waitStatus(t, conv, 1, store.StatusDone)
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
		code, body := a.action(t, a.Client, "/c/"+conv+"/title", url.Values{"title": {fmt.Sprintf("Name %d", i)}})
		if code != want {
			t.Fatalf("rename %d: %d, want %d\n%s", i, code, want, body)
		}
		if want == http.StatusTooManyRequests && !strings.Contains(body, "a lot of changes") {
			t.Errorf("the refusal does not say why: %s", body)
		}
	}
	if code, _ := a.action(t, a.Client, "/c/"+conv+"/stop", nil); code != http.StatusTooManyRequests {
		t.Errorf("a stop past the limit: %d", code)
	}
}

// TestStoredBytesPerBrowser: a browser's conversations may hold so much
// text; past it a post is refused, saying how to go on, and deleting a
// conversation frees its share.
func TestStoredBytesPerBrowser(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.gen.Limits.StoredBytes = 3000
		c.limits.MaxMessageBytes = 2000
	})
	text := "[[echo]]" + strings.Repeat("words ", 150) // about 900 bytes, answered with as many
	first := a.create(t, text)
	a.waitStatus(t, first, 1, store.StatusDone)
	conv := a.create(t, text)
	a.waitStatus(t, conv, 1, store.StatusDone)
	// An answer's bytes are counted just after its end is written.
	waitFor(t, "both exchanges' bytes to be counted", func() bool { return storedBytes(t, a) >= 3000 })
	// About 3,600 bytes are kept now: the next post is refused.
	code, body := a.action(t, a.Client, "/c/"+conv+"/messages", url.Values{"text": {text}, "key": {store.NewID()}})
	if code != http.StatusConflict || !strings.Contains(body, "Delete some conversations") {
		t.Fatalf("a post past the stored limit: %d\n%s", code, body)
	}
	if code, _ := a.action(t, a.Client, "/c/"+first+"/delete", nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	if res := a.post(t, conv, "[[echo]]short", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("after deleting a conversation: %d", res.StatusCode)
	}
	// Another browser is not limited by this one.
	if f := a.startFresh(t, text, ""); f.code != http.StatusSeeOther {
		t.Errorf("another browser: %d", f.code)
	}
}

// TestStoredBytesCountWhatIsKept: a browser's stored bytes grow by what it
// keeps, once: a repeated post (same key) and a refused one add nothing.
func TestStoredBytesCountWhatIsKept(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.store.MaxMessages = 4 })
	stored := func() int64 { return storedBytes(t, a) }
	conv := a.create(t, "[[echo]]0123456789")
	a.waitStatus(t, conv, 1, store.StatusDone)
	// The answer's bytes are counted just after its end is written.
	first := int64(len("[[echo]]0123456789") + 10)
	waitFor(t, "the first exchange's bytes to be counted", func() bool { return stored() == first })
	key := store.NewID()
	for range 2 { // the same post twice: one message, one answer
		if res := a.post(t, conv, "[[echo]]abcde", key); res.StatusCode != http.StatusOK {
			t.Fatalf("post: %d", res.StatusCode)
		}
	}
	a.waitStatus(t, conv, 3, store.StatusDone)
	want := int64(len("[[echo]]0123456789") + 10 + len("[[echo]]abcde") + 5)
	waitFor(t, "the answer's bytes to be counted", func() bool { return stored() == want })
	// The conversation is full: a refused post keeps nothing.
	if res := a.post(t, conv, "[[echo]]refused", store.NewID()); res.StatusCode != http.StatusConflict {
		t.Fatalf("a post to a full conversation: %d", res.StatusCode)
	}
	if got := stored(); got != want {
		t.Errorf("after a refused post: %d bytes, want %d", got, want)
	}
}

// storedBytes reads the one browser's stored-bytes count of a.
func storedBytes(t *testing.T, a *app) int64 {
	t.Helper()
	keys, err := a.RDB.Keys(context.Background(), "parley:o:*:bytes").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("stored-bytes keys %v, %v", keys, err)
	}
	n, _ := a.RDB.Get(context.Background(), keys[0]).Int64()
	return n
}
