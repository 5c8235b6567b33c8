package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/viewer"

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

// TestCutLineIsLive: a viewer who watched an answer end at the length limit
// sees the cut line and Continue, as a page loaded then shows them, and
// sees them go when the owner continues it.
func TestCutLineIsLive(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 400, Tokens: 60} })
	conv := a.create(t, "[[echo]]hi")
	a.waitStatus(t, conv, 1, store.StatusDone)
	a.waitNamed(t, conv)
	d, cursor := a.page(t, conv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := openEvents(ctx, t, a, conv, cursor, "", false)
	defer res.Body.Close()
	if r := a.post(t, conv, "[[length]] tides", store.NewID()); r.StatusCode != http.StatusOK {
		t.Fatalf("post: %d", r.StatusCode)
	}

	// sameAsAPage fails the test unless the followed page is a fresh one.
	sameAsAPage := func(when string) {
		t.Helper()
		fresh, _ := a.page(t, conv)
		if got, want := d.Messages(), fresh.Messages(); got != want {
			t.Fatalf("%s the followed page differs from a fresh one: %s", when, viewer.Diff(want, got))
		}
	}
	cutLine := func() bool { return strings.Contains(d.HTML("m-3-foot"), `class="cut-line"`) }
	continued := false
	var applyErr error
	err := readEvents(res.Body, func(ev sized) bool {
		if applyErr = d.Apply(ev.Fragments()); applyErr != nil || d.Status(3) != store.StatusDone {
			return applyErr == nil
		}
		if !continued {
			if !cutLine() {
				t.Fatalf("the answer ended at the length limit without a cut line: %s", d.HTML("m-3-foot"))
			}
			sameAsAPage("when the cut answer ended,")
			m := a.snapMessage(t, conv, 3)
			if code, body := a.action(t, a.Client, "/c/"+conv+"/continue", url.Values{"rev": {m.Rev}}); code != http.StatusOK {
				t.Fatalf("continue: %d %s", code, body)
			}
			continued = true
			return true
		}
		return cutLine() // until the continued answer ends whole
	})
	if err != nil || applyErr != nil || !continued {
		t.Fatalf("follow the stream: %v, %v (continued %t)", err, applyErr, continued)
	}
	if a.waitStatus(t, conv, 3, store.StatusDone).Cut {
		t.Fatal("the continued answer is still cut")
	}
	sameAsAPage("after Continue")
}
