package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// TestProcessesShareConversations: three processes on one Redis. An answer
// started through A streams to viewers on B and C (and A), who all end with
// the same page; a Stop pressed on C ends a generation that runs on A, and
// every viewer shows it stopped; every process counts the same people
// watching and shows the same title.
func TestProcessesShareConversations(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	ps := startAll(t, env(srv.URL(), harness.Speed{TPS: 60, Tokens: 200}), "A", "B", "C")
	a, b, c := ps[0], ps[1], ps[2]
	st := redisStore(t, srv)
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	conv, err := viewer.Create(ctx, client, a.URL, "Which process answers me?")
	if err != nil {
		t.Fatal(err)
	}
	var vs []*viewer.Viewer
	for _, p := range []string{b.URL, c.URL, a.URL, b.URL, c.URL} {
		v, err := viewer.Load(ctx, client, p, conv)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if vs[0].Status(1) != store.StatusStreaming {
		t.Fatalf("the answer ended (%q) before the viewers joined; slow the demo model", vs[0].Status(1))
	}
	for err := range follow(ctx, vs, viewer.StatusIs(1, store.StatusDone), nil) {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	sameAsFresh(t, client, c.URL, conv, vs)
	if m := stored(t, st, conv, 1); m.Status != store.StatusDone || len(m.Text) < 200 {
		t.Fatalf("stored answer: status %q, %d bytes", m.Status, len(m.Text))
	}

	// The second answer is slow ([[slow]]: 2 tokens a second) and runs on A,
	// which took the post; Stop is pressed on C.
	if res, err := viewer.Post(ctx, client, a.URL, conv, "Now a long one [[slow]]"); err != nil || res.Status != http.StatusOK {
		t.Fatalf("post: %v %+v", err, res)
	}
	errs := follow(ctx, vs, viewer.HasEnded(3), nil)
	harness.WaitUntil(t, "the slow answer to show on B", 20*time.Second, func() bool { return vs[0].Text(3) != "" })
	// Presence counts every stream of every process: each process's page
	// says the same.
	want := fmt.Sprintf("%d watching", len(vs))
	harness.WaitUntil(t, "every process to count "+want, 15*time.Second, func() bool {
		for _, p := range ps {
			d, err := viewer.Page(ctx, client, p.URL, conv)
			if err != nil || d.TextOfClass("presence") != want {
				return false
			}
		}
		return true
	})
	if res, err := viewer.Stop(ctx, client, c.URL, conv); err != nil || res.Status != http.StatusOK {
		t.Fatalf("stop through C: %v %+v", err, res)
	}
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for i, v := range vs {
		if got := v.Status(3); got != store.StatusStopped {
			t.Errorf("viewer %d shows %q, want stopped", i, got)
		}
	}
	fresh := sameAsFresh(t, client, b.URL, conv, vs)
	// The title the first answer gave the conversation is the same on
	// every process and in every viewer.
	var title string
	for _, p := range ps {
		d, err := viewer.Page(ctx, client, p.URL, conv)
		if err != nil {
			t.Fatal(err)
		}
		got := d.HTML(views.TitleID)
		if title == "" {
			title = got
		}
		if got != title || got == "" {
			t.Errorf("%s shows the title %q, want %q", p.Name, got, title)
		}
	}
	for i, v := range vs {
		if got := v.HTML(views.TitleID); got != title {
			t.Errorf("viewer %d shows the title %q, want %q", i, got, title)
		}
	}
	m := stored(t, st, conv, 3)
	if m.Status != store.StatusStopped || m.Text == "" {
		t.Fatalf("stored stopped answer: status %q, text %q", m.Status, m.Text)
	}
	if !strings.Contains(fresh, `data-status="stopped"`) {
		t.Fatalf("a fresh page does not show the stop:\n%s", fresh)
	}
	// The generation ran on A and ended there, stopped by the request C stored.
	harness.WaitUntil(t, "A to log the end of the stopped answer", 5*time.Second, func() bool {
		return logHas(a.FullLogs(), conv, "status=stopped")
	})
	if logHas(c.FullLogs(), conv, "answer ended") {
		t.Fatal("C ended an answer it was not writing")
	}
}

// logHas reports whether one line of logs contains every part.
func logHas(logs string, parts ...string) bool {
	for line := range strings.SplitSeq(logs, "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
