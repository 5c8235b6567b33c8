package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/store"
)

// TestKilledProcessAnswerEndsInterrupted: the process writing an answer is
// killed with SIGKILL mid-answer. Within the lease another process ends the
// answer as interrupted with the text written so far, every viewer on the
// surviving process sees that, and the conversation takes new messages.
func TestKilledProcessAnswerEndsInterrupted(t *testing.T) {
	t.Parallel()
	const lease, sweep = 2 * time.Second, 200 * time.Millisecond
	srv := testredis.Start(t)
	ps := startAll(t, env(srv.URL(), harness.Speed{TPS: 30, Tokens: 600},
		"PARLEY_LEASE_TTL", lease.String(), "PARLEY_SWEEP_INTERVAL", sweep.String()), "A", "B")
	a, b := ps[0], ps[1]
	st := redisStore(t, srv)
	client := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	conv, err := viewer.Create(ctx, client, a.URL, "Will my answer survive a crash?")
	if err != nil {
		t.Fatal(err)
	}
	var vs []*viewer.Viewer
	for range 3 {
		v, err := viewer.Load(ctx, client, b.URL, conv)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	errs := follow(ctx, vs, viewer.HasEnded(1), nil)
	harness.WaitUntil(t, "some of the answer to reach B's viewers", 20*time.Second, func() bool { return len(vs[0].Text(1)) > 100 })

	a.Kill()
	killed := time.Now()
	before := stored(t, st, conv, 1)
	if before.Status != store.StatusStreaming || before.Text == "" {
		t.Fatalf("the answer was not mid-way when A died: status %q, %d bytes", before.Status, len(before.Text))
	}
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(killed)
	t.Logf("viewers on B saw the answer interrupted %v after the kill (lease %v, sweep every %v)", took.Round(time.Millisecond), lease, sweep)
	if t.Failed() {
		return
	}
	// The lease runs out at most one lease after A's last write, and the next
	// sweep finds it; a few seconds of slack for a loaded machine.
	if bound := lease + sweep + 3*time.Second; took > bound {
		t.Errorf("the answer was ended %v after the kill, over %v", took, bound)
	}
	for i, v := range vs {
		if got := v.Status(1); got != store.StatusInterrupted {
			t.Errorf("viewer %d shows %q, want interrupted", i, got)
		}
	}
	sameAsFresh(t, client, b.URL, conv, vs)
	after := stored(t, st, conv, 1)
	if after.Status != store.StatusInterrupted || after.Error == "" {
		t.Fatalf("stored answer: status %q, error %q", after.Status, after.Error)
	}
	// A batch A sent just before it died may still land; nothing may be lost.
	if !strings.HasPrefix(after.Text, before.Text) {
		t.Fatalf("text was lost when the writer died:\nbefore %q\n after %q", before.Text, after.Text)
	}
	if !logHas(b.FullLogs(), "generation whose process went away", conv) {
		t.Errorf("B did not log that it ended the dead generation")
	}

	// Nothing is left holding the conversation: B takes the next message
	// and writes its answer (stopped here, to keep the test short).
	if res, err := viewer.Post(ctx, client, b.URL, conv, "And now?"); err != nil || res.Status != http.StatusOK {
		t.Fatalf("post after the crash: %v %+v", err, res)
	}
	errs = follow(ctx, vs, viewer.HasEnded(3), nil)
	harness.WaitUntil(t, "B to write the next answer", 20*time.Second, func() bool { return vs[0].Text(3) != "" })
	if res, err := viewer.Stop(ctx, client, b.URL, conv); err != nil || res.Status != http.StatusOK {
		t.Fatalf("stop: %v %+v", err, res)
	}
	for err := range errs {
		t.Error(err)
	}
	sameAsFresh(t, client, b.URL, conv, vs)
}
