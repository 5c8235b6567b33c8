package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/store"
)

// scenario is one measured situation. Kind picks the driver: "stream" (answers
// streamed to viewers who join before, during and after them), "idle"
// (viewers connected to finished answers), "page" (loading a long page).
type scenario struct {
	Name   string
	Title  string
	Target string
	Kind   string

	Convs   int     // conversations, each with one measured answer
	Viewers int     // viewers per conversation
	Tokens  int     // tokens of the measured answer
	TPS     float64 // its pace
	Prose   int     // every Prose-th token is a clock word (1: all)

	During    float64 // share of viewers who join while the answer streams
	After     float64 // ... once it has ended
	Reconnect float64 // ... who join before and drop their stream once mid-answer
	Slow      float64 // ... who join before and read slowly

	// Late joiners (stream kind): Joiners viewers connect without a cursor,
	// one every JoinEvery, once JoinAt tokens have been written, and time
	// their first (full) frame.
	JoinAt    int
	Joiners   int
	JoinEvery time.Duration

	Messages int // page kind: messages in the conversation
	Requests int // page kind: page loads timed

	Grace time.Duration // how long past the answer's end to wait for viewers
}

func (s scenario) clockWords() int { return (s.Tokens + s.Prose - 1) / s.Prose }

func (s scenario) answerDuration() time.Duration {
	return time.Duration(float64(s.Tokens) / s.TPS * float64(time.Second))
}

func (s scenario) prompt() string {
	return fmt.Sprintf("measure tokens=%d tps=%s prose=%d", s.Tokens, fmtFloat(s.TPS), s.Prose)
}

// viewers is how many viewers the scenario plans in all.
func (s scenario) viewers() int { return s.Convs*s.Viewers + s.Joiners }

// scenarioNamed finds a scenario by name: one of scenarios(), or a size
// of the crowd ones for plotting against viewers: "fanout-N" (one answer,
// as fanout-1k, to N viewers) and "idle-N" (N idle viewers, 100 a
// conversation, as idle-10k). N is a count such as 100, 2000 or 2k.
func scenarioNamed(name string) (scenario, error) {
	all := scenarios()
	for _, s := range all {
		if s.Name == name {
			return s, nil
		}
	}
	kind, size, ok := strings.Cut(name, "-")
	if !ok || (kind != "fanout" && kind != "idle") {
		return scenario{}, fmt.Errorf("no scenario %q (see -list)", name)
	}
	n, err := parseCount(size)
	if err != nil || n < 1 || n > 100_000 {
		return scenario{}, fmt.Errorf("no scenario %q: after %s- give a number of viewers from 1 to 100k, e.g. %s-2k", name, kind, kind)
	}
	var s scenario
	if kind == "fanout" {
		s = all[0]
		s.Viewers = n
		s.Title = fmt.Sprintf("1 answer at 100 tokens/s, %d viewers", n)
		s.Target = "none at this size (fanout-1k: p99 <= 50 ms; fanout-5k: p99 <= 150 ms)"
		s.Grace = 60*time.Second + time.Duration(n)*30*time.Second/5000
	} else {
		s = all[3]
		s.Convs, s.Viewers = 1, n
		if n > 100 {
			if n%100 != 0 {
				return scenario{}, fmt.Errorf("no scenario %q: idle viewers come 100 a conversation, so give at most 100 or a multiple of 100", name)
			}
			s.Convs, s.Viewers = n/100, 100
		}
		s.Title = fmt.Sprintf("%d idle connected viewers", n)
	}
	s.Name = name
	return s, nil
}

// parseCount reads 100, 2000 or 2k.
func parseCount(s string) (int, error) {
	mult := 1
	if t, ok := strings.CutSuffix(s, "k"); ok {
		s, mult = t, 1000
	}
	n, err := strconv.Atoi(s)
	return n * mult, err
}

// scenarios are the targets of issue 5, in its order.
func scenarios() []scenario {
	mixed := func(s scenario) scenario {
		s.During, s.After, s.Reconnect, s.Slow = 0.10, 0.05, 0.05, 0.02
		return s
	}
	return []scenario{
		mixed(scenario{Name: "fanout-1k", Kind: "stream", Title: "1 answer at 100 tokens/s, 1,000 viewers",
			Target: "p99 token-to-viewer <= 50 ms, zero gaps/duplicates; naive: Parley >= 10x lower p99 and CPU",
			Convs:  1, Viewers: 1000, Tokens: 500, TPS: 100, Prose: 1, Grace: 60 * time.Second}),
		mixed(scenario{Name: "fanout-5k", Kind: "stream", Title: "1 answer at 100 tokens/s, 5,000 viewers",
			Target: "p99 <= 150 ms", Convs: 1, Viewers: 5000, Tokens: 500, TPS: 100, Prose: 1, Grace: 90 * time.Second}),
		mixed(scenario{Name: "answers-200", Kind: "stream", Title: "200 answers at 50 tokens/s, 5 viewers each",
			Target: "p99 <= 50 ms, server CPU <= 1 core", Convs: 200, Viewers: 5, Tokens: 300, TPS: 50, Prose: 1, Grace: 60 * time.Second}),
		{Name: "idle-10k", Kind: "idle", Title: "10,000 idle connected viewers",
			Target: "<= 16 KiB RSS per viewer", Convs: 100, Viewers: 100, Tokens: 100, TPS: 10000, Prose: 1},
		{Name: "redis", Kind: "stream", Title: "Redis work per answer (1,000 tokens at 100 tokens/s, 10 viewers)",
			Target: "<= 1 round trip per coalesced batch; one subscription connection per process",
			Convs:  1, Viewers: 10, Tokens: 1000, TPS: 100, Prose: 1, Grace: 30 * time.Second},
		{Name: "late-join", Kind: "stream", Title: "late join into a 5,000-token answer",
			Target: "first full frame <= 20 ms (p99)", Convs: 1, Viewers: 5, Tokens: 6000, TPS: 500, Prose: 1,
			JoinAt: 5000, Joiners: 100, JoinEvery: 15 * time.Millisecond, Grace: 30 * time.Second},
		{Name: "sse-bytes", Kind: "stream", Title: "SSE bytes per viewer, 2,000-token Markdown answer",
			Target: "<= 3x the final rendered HTML", Convs: 1, Viewers: 10, Tokens: 2000, TPS: 100, Prose: 8, Grace: 30 * time.Second},
		{Name: "page-200", Kind: "page", Title: "GET /c/{id} with 200 messages",
			Target: "<= 2 ms server time p50", Tokens: 150, TPS: 100000, Prose: 8, Messages: 200, Requests: 400},
	}
}

// runner holds what every scenario run needs.
type runner struct {
	dump    string // where to write what inexact viewers received, "" for nowhere
	profile string // where to write the server's CPU profiles, "" for nowhere
	log     io.Writer
	prog    *progress
	rng     *rand.Rand
	gzip    bool // viewers accept gzip

	serverAffinity string // where the last server's threads were allowed to run
}

// person is one browser: its own cookies (its own owner identity).
func newPerson() *http.Client {
	jar, _ := cookiejar.New(nil) // New never fails without options
	c := newHTTPClient(0)
	c.Jar = jar
	return c
}

var (
	homeOffer   = regexp.MustCompile(`name="conv" value="([a-z2-7]{26}\.[0-9]+\.[A-Za-z0-9_-]+)"`)
	composerKey = regexp.MustCompile(`name="key" value="([a-z2-7]{26})"`)
)

// createConv opens the home page and posts its form, as a person does, and
// returns the ID of the conversation, read from the redirect to it.
func createConv(ctx context.Context, base string, client *http.Client, text string) (string, error) {
	form := url.Values{"text": {text}}
	// The form's offer (the server's signed choice of ID, for this browser).
	// The naive server has no home page: without one the server chooses.
	if home, err := getPage(ctx, client, base+"/"); err == nil {
		if m := homeOffer.FindSubmatch(home); m != nil {
			form.Set("conv", string(m[1]))
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/c", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	res, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("create conversation: %w", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("create conversation: status %d: %.300s", res.StatusCode, body)
	}
	id, ok := strings.CutPrefix(res.Header.Get("Location"), "/c/")
	if !ok || !store.ValidConversationID(id) {
		return "", fmt.Errorf("create conversation: redirected to %q", res.Header.Get("Location"))
	}
	return id, nil
}

// postMessage sends the composer's form the way the page's Datastar client
// does, retrying while the previous answer still runs (409).
func postMessage(ctx context.Context, base string, client *http.Client, conv, text string) error {
	key := store.NewID()
	if page, err := getPage(ctx, client, base+"/c/"+conv); err == nil {
		if m := composerKey.FindSubmatch(page); m != nil {
			key = string(m[1])
		}
	}
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/c/"+conv+"/messages",
			strings.NewReader(url.Values{"text": {text}, "key": {key}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Datastar-Request", "true")
		req.Header.Set("Origin", base)
		res, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("post message: %w", err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case res.StatusCode == http.StatusOK:
			return nil
		case res.StatusCode == http.StatusConflict && attempt < 2000:
			if !sleepUntil(ctx, time.Now().Add(10*time.Millisecond)) {
				return ctx.Err()
			}
		default:
			return fmt.Errorf("post message: status %d: %.300s", res.StatusCode, body)
		}
	}
}

// waitEnded polls the page until answer i has ended.
func waitEnded(ctx context.Context, base string, client *http.Client, c *conv, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		page, err := getPage(ctx, client, base+"/c/"+c.id)
		if err == nil {
			if st, ok := c.endStatus(page); ok && st != "streaming" {
				if st != store.StatusDone {
					return fmt.Errorf("answer %d of %s ended %s", c.answer, c.id, st)
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("answer %d of %s did not end within %s (last error: %v)", c.answer, c.id, timeout, err)
		}
		if !sleepUntil(ctx, time.Now().Add(20*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// setup creates n conversations whose first answer (a short one) has ended,
// each owned by its own person.
func setupConvs(ctx context.Context, base string, n int, measured scenario) ([]*conv, error) {
	convs := make([]*conv, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range convs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			client := newPerson()
			id, err := createConv(ctx, base, client, "warm up tokens=20 tps=10000 prose=1000")
			if err != nil {
				errs[i] = err
				return
			}
			first := newConv(id, 1, 1, client)
			if err := waitEnded(ctx, base, client, first, 30*time.Second); err != nil {
				errs[i] = err
				return
			}
			convs[i] = newConv(id, 3, measured.clockWords(), client)
		})
	}
	wg.Wait()
	return convs, errors.Join(errs...)
}

// plan decides who joins when, with a fixed seed so runs are comparable.
func (r *runner) plan(s scenario, convs []*conv) []*viewer {
	var vs []*viewer
	d := s.answerDuration()
	for _, c := range convs {
		for range s.Viewers {
			v := &viewer{conv: c, kind: joinBefore}
			switch x := r.rng.Float64(); {
			case x < s.During:
				v.kind = joinDuring
				v.joinAfter = time.Duration(r.rng.Float64() * float64(d))
			case x < s.During+s.After:
				v.kind = joinAfter
			case x < s.During+s.After+s.Reconnect:
				v.cutAfter = time.Duration((0.1 + 0.8*r.rng.Float64()) * float64(d))
			case x < s.During+s.After+s.Reconnect+s.Slow:
				v.slow = true
			}
			vs = append(vs, v)
		}
	}
	return vs
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			return ctx.Err()
		}
	}
	return nil
}
