package handlers_test

import (
	"context"
	"fmt"
	"github.com/parley-chat/parley/internal/viewer"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// reconnect says what Last-Event-ID a viewer sends when it reconnects.
type reconnect int

const (
	noReconnect  reconnect = iota
	lastApplied            // the id of the last frame it applied (what the client does)
	olderApplied           // an id it applied earlier: frames come again and must not double
	malformed              // junk
	forged                 // well-formed, never in the log
	future                 // beyond the end of the log
	emptyCursor            // no cursor at all
	numReconnectKinds
)

func (k reconnect) String() string {
	return [...]string{"none", "last", "older", "malformed", "forged", "future", "empty"}[k]
}

// TestViewersConvergeAtAnyInstant attaches viewers at random instants around
// an answer (before its message is posted, during it, after it) and makes
// some reconnect several times with every kind of Last-Event-ID. Every viewer
// must end with the DOM of a fresh page, and that page must hold the text the
// model produced: no gap, no duplicate.
func TestViewersConvergeAtAnyInstant(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("attaches hundreds of viewers")
	}
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 150, Tokens: 250} })
	conv := a.create(t, "first question")
	a.waitStatus(t, conv, 1, store.StatusDone)

	const viewers = 240
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	doms := make([]*viewer.DOM, viewers)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range viewers {
		delay := time.Duration(rng.Int64N(int64(4 * time.Second)))
		kind := reconnect(i % int(numReconnectKinds))
		seed := rng.Uint64()
		wg.Go(func() {
			time.Sleep(delay)
			d, err := watchUntilDone(ctx, a, conv, 3, kind, seed)
			if err != nil {
				errs <- fmt.Errorf("viewer %d (%v, joined at %v): %w", i, kind, delay, err)
				return
			}
			doms[i] = d
		})
	}
	time.Sleep(time.Second) // a quarter of the viewers join before the post
	if res := a.post(t, conv, "second question", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: status %d", res.StatusCode)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	stored := a.waitStatus(t, conv, 3, store.StatusDone)
	want := a.Model.Reply([]llm.Message{
		{Role: llm.RoleUser, Content: "first question"},
		{Role: llm.RoleAssistant, Content: a.waitStatus(t, conv, 1, store.StatusDone).Text},
		{Role: llm.RoleUser, Content: "second question"},
	})
	if stored.Text != want {
		t.Fatalf("stored answer differs from the model's reply:\n got %q\nwant %q", stored.Text, want)
	}
	fresh, _ := a.page(t, conv)
	wantHTML := fresh.HTML("messages")
	if !strings.Contains(wantHTML, `id="m-3"`) {
		t.Fatalf("fresh page lacks the answer: %s", wantHTML)
	}
	for i, d := range doms {
		if got := d.HTML("messages"); got != wantHTML {
			t.Errorf("viewer %d (%v) ended with a different page:\n got %s\nwant %s", i, reconnect(i%int(numReconnectKinds)), got, wantHTML)
		}
	}
}

// watchUntilDone is one viewer: it loads the page, follows the live stream
// and, for reconnecting kinds, drops the stream a few times and comes back
// with the chosen cursor, until message i has ended.
func watchUntilDone(ctx context.Context, a *app, conv string, i int, kind reconnect, seed uint64) (*viewer.DOM, error) {
	return watchUntil(ctx, a, conv, kind, seed, func(d *viewer.DOM) bool { return done(d.Status(i)) })
}

// watchUntil is watchUntilDone until the page satisfies until.
func watchUntil(ctx context.Context, a *app, conv string, kind reconnect, seed uint64, until func(*viewer.DOM) bool) (*viewer.DOM, error) {
	rng := rand.New(rand.NewPCG(seed, 3))
	d, cursor := a.page(tb{}, conv)
	after := cursor
	header := ""
	var applied []string // ids of the frames applied, in order
	reconnects := 0
	if kind != noReconnect {
		reconnects = 1 + rng.IntN(3)
	}
	for {
		if until(d) {
			return d, nil
		}
		url := a.URL + "/c/" + conv + "/events"
		if after != "" {
			url += "?after=" + after
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("Datastar-Request", "true")
		if header != "" {
			req.Header.Set("Last-Event-ID", header)
		}
		res, err := a.Client.Do(req)
		if err != nil {
			return d, err
		}
		if res.StatusCode != http.StatusOK {
			res.Body.Close()
			return d, fmt.Errorf("events: status %d", res.StatusCode)
		}
		dropAfter := -1
		if reconnects > 0 {
			dropAfter = 1 + rng.IntN(6)
		}
		frames := 0
		var applyErr error
		err = readSSE(res.Body, func(ev sseEvent) bool {
			if ev.Comment {
				return true
			}
			if err := d.Apply(ev.Fragments()); err != nil {
				applyErr = fmt.Errorf("frame %s: %w", ev.ID, err)
				return false
			}
			if ev.ID == "" {
				return true // presence: not a position in the log
			}
			applied = append(applied, ev.ID)
			frames++
			if until(d) {
				return false
			}
			return frames != dropAfter
		})
		res.Body.Close()
		if applyErr != nil {
			return d, applyErr
		}
		if until(d) {
			return d, nil
		}
		if frames != dropAfter {
			return d, fmt.Errorf("stream ended before the answer did (read error: %v)", err)
		}
		reconnects--
		after = "" // a reconnect sends Last-Event-ID, which wins over ?after
		switch kind {
		case lastApplied:
			header = applied[len(applied)-1]
		case olderApplied:
			header = applied[rng.IntN(len(applied))]
		case malformed:
			header = []string{"garbage", "1-", "-", "1-0-0", "💥", "99999999999999999999999-0"}[rng.IntN(6)]
		case forged:
			header = "1-0"
		case future:
			header = "99999999999999-0"
		case emptyCursor:
			header = ""
		}
	}
}

func done(status string) bool {
	return status == store.StatusDone || status == store.StatusStopped ||
		status == store.StatusFailed || status == store.StatusInterrupted
}

// tb lets helpers that take a testing.TB run in viewer goroutines, where
// t.Fatal must not be called: failures there panic and fail the test binary.
type tb struct{ testing.TB }

func (tb) Helper()                   {}
func (tb) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (tb) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// TestAnswerEndingInALongFence: an answer that ends inside a code block long
// enough to be highlighted only in part while it grew (the fence is never
// closed) ends, for a viewer who watched it stream, with the page a fresh
// load renders: the whole block highlighted.
func TestAnswerEndingInALongFence(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "[[echo]]hello")
	a.waitStatus(t, conv, 1, store.StatusDone)
	var code strings.Builder
	for i := range 80 {
		fmt.Fprintf(&code, "func f%d() int { return %d }\n", i, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		wg  sync.WaitGroup
		d   *viewer.DOM
		err error
	)
	wg.Go(func() { d, err = watchUntilDone(ctx, a, conv, 3, noReconnect, 1) })
	if res := a.post(t, conv, "[[echo]]Here it is:%0A%0A```go%0A"+strings.ReplaceAll(code.String(), "\n", "%0A"), store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: status %d", res.StatusCode)
	}
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := a.page(t, conv)
	want := fresh.HTML("messages")
	if !strings.Contains(want, `<span class="nf">f79</span>`) {
		t.Fatalf("the fresh page does not highlight the block's last line:\n%s", want)
	}
	if got := d.HTML("messages"); got != want {
		t.Errorf("the viewer who watched it stream ended with a different page:\n got %s\nwant %s", got, want)
	}
}
