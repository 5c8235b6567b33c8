package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestDeadGenerationEndsAsInterrupted: a generation whose process died (here:
// one that holds the lease, writes some text and then never renews) is ended
// by the sweeper as interrupted within the lease, its text kept, and a viewer
// watching sees it.
func TestDeadGenerationEndsAsInterrupted(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.store.LeaseTTL = 500 * time.Millisecond
		c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 50}
	})
	ctx := context.Background()
	conv := store.NewID()
	res, err := a.Store.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hello", Key: "first", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "partial answer"}); err != nil {
		t.Fatal(err)
	}
	_, cursor := a.page(t, conv)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, "GET", a.URL+"/c/"+conv+"/events?after="+cursor, nil)
	resp, err := a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	d, _ := a.page(t, conv)
	start := time.Now()
	_ = readSSE(resp.Body, func(ev sseEvent) bool {
		if err := d.Apply(ev.Fragments()); err != nil {
			t.Errorf("apply: %v", err)
			return false
		}
		return d.Status(1) == store.StatusStreaming
	})
	if got := d.Status(1); got != store.StatusInterrupted {
		t.Fatalf("viewer sees %q after %v, want interrupted", got, time.Since(start))
	}
	msg := a.waitStatus(t, conv, 1, store.StatusInterrupted)
	if msg.Text != "partial answer" || msg.Error == "" {
		t.Fatalf("interrupted answer: text %q, error %q", msg.Text, msg.Error)
	}
	// The dead generation cannot write any more.
	if _, err := a.Store.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: " more", Offset: len("partial answer")}); err != store.ErrStale {
		t.Fatalf("append by the dead generation: %v, want ErrStale", err)
	}
}

// TestModelFailureShowsInPage: a model error ends the answer as failed, keeps
// the text written so far, and the page says what went wrong.
func TestModelFailureShowsInPage(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 500, Tokens: 120} })
	conv := a.create(t, "please [[fail]]")
	msg := a.waitStatus(t, conv, 1, store.StatusFailed)
	if msg.Text == "" || msg.Error == "" {
		t.Fatalf("failed answer: text %q, error %q", msg.Text, msg.Error)
	}
	d, _ := a.page(t, conv)
	if foot := d.HTML("m-1-foot"); !strings.Contains(foot, "Failed") || !strings.Contains(foot, "failed on purpose") {
		t.Fatalf("page does not show the failure: %s", foot)
	}
}
