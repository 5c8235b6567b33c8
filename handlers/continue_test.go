package handlers_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestContinueSuccess: an answer the demo cuts at its length limit
// ([[length]]) is done and Cut; Continue has the demo write the rest into
// the same answer, which ends done, whole (the demo's full reply), and still
// one version. A second Continue on the old revision changes nothing.
func TestContinueSuccess(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 400, Tokens: 60} })
	const prompt = "[[length]] tell me about tides"
	conv := a.create(t, prompt)
	cut := a.waitStatus(t, conv, 1, store.StatusDone)
	full := a.Model.Reply([]llm.Message{{Role: llm.RoleUser, Content: prompt}})
	if !cut.Cut || cut.Text == "" || len(cut.Text) >= len(full) || full[:len(cut.Text)] != cut.Text {
		t.Fatalf("the [[length]] answer is %q (cut %t); want a Cut start of the demo's reply %q", cut.Text, cut.Cut, full)
	}

	path := "/c/" + conv
	code, body := a.action(t, a.Client, path+"/continue", url.Values{"rev": {cut.Rev}})
	if code != http.StatusOK {
		t.Fatalf("continue: %d %s", code, body)
	}
	a.waitStatus(t, conv, 1, store.StatusStreaming, store.StatusDone)
	whole := a.waitStatus(t, conv, 1, store.StatusDone)
	if whole.Cut || whole.Versions != 1 || whole.Version != 1 {
		t.Errorf("after Continue the answer is cut %t, version %d of %d; want whole, 1 of 1", whole.Cut, whole.Version, whole.Versions)
	}
	if whole.Text != full {
		t.Errorf("after Continue the answer is not the demo's full reply:\n got: %q\nwant: %q", whole.Text, full)
	}

	// The same form again (a double submit, or a tab that had not heard)
	// starts nothing.
	code, body = a.action(t, a.Client, path+"/continue", url.Values{"rev": {cut.Rev}})
	if code != http.StatusOK && code != http.StatusConflict {
		t.Errorf("continue on the old revision: %d %s", code, body)
	}
	if again := a.snapMessage(t, conv, 1); again != whole {
		t.Errorf("continue on the old revision changed the answer:\n got: %+v\nwant: %+v", again, whole)
	}
}
