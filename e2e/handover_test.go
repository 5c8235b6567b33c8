package e2e_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestGracefulHandover: two processes behind a load balancer; A gets SIGTERM
// (a deploy) while viewers watch through the balancer and A writes two
// answers, one that can finish within the shutdown bound and one that
// cannot. A's viewers are cut, reconnect through the balancer with their
// Last-Event-ID, land on B and end with exactly the stored page; the short
// answer finishes, the long one ends as interrupted with its text kept, and
// when A has exited nothing is left streaming.
func TestGracefulHandover(t *testing.T) {
	t.Parallel()
	const bound = 12 * time.Second // A's shutdown bound; answers get it less 2 s
	// The short answer takes 8 s: it is still streaming at the deploy, even
	// on a busy machine, and can finish within the bound.
	d := harness.Speed{TPS: 20, Tokens: 160}
	srv := testredis.Start(t)
	ps := startAll(t, env(srv.URL(), d, "PARLEY_SHUTDOWN_TIMEOUT", bound.String()), "A", "B")
	a, b := ps[0], ps[1]
	lb := newBalancer(t, hostPort(t, a.URL), hostPort(t, b.URL))
	st := redisStore(t, srv)
	owner := viewer.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// Both answers are written by A, which took their posts.
	const longQ, shortQ = "Tell me everything [[slow]]", "A short one"
	long, err := viewer.Create(ctx, owner, a.URL, longQ)
	if err != nil {
		t.Fatal(err)
	}
	short, err := viewer.Create(ctx, owner, a.URL, shortQ)
	if err != nil {
		t.Fatal(err)
	}
	// Each viewer is its own browser: its own connections through the
	// balancer, so they spread over A and B.
	var vs []*viewer.Viewer
	for i := range 8 {
		conv := long
		if i%2 == 1 {
			conv = short
		}
		v, err := viewer.Load(ctx, viewer.NewClient(), lb.URL, conv)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	errs := follow(ctx, vs, viewer.HasEnded(1), nil)
	harness.WaitUntil(t, "both answers to reach the viewers", 20*time.Second, func() bool {
		for _, v := range vs {
			if v.Text(1) == "" {
				return false
			}
		}
		return true
	})
	if got := stored(t, st, short, 1).Status; got != store.StatusStreaming {
		t.Fatalf("the short answer ended (%q) before the deploy; slow the demo model", got)
	}
	onA := lb.connections(hostPort(t, a.URL))
	if onA == 0 {
		t.Fatal("the balancer sent no viewer to A")
	}

	start := time.Now()
	if err := a.Terminate(bound + 5*time.Second); err != nil {
		t.Fatalf("A did not shut down cleanly: %v", err)
	}
	took := time.Since(start)
	t.Logf("A shut down in %v (bound %v)", took.Round(time.Millisecond), bound)

	// When A is gone, its answers have ended: it ended them, not a sweeper.
	longMsg, shortMsg := stored(t, st, long, 1), stored(t, st, short, 1)
	if shortMsg.Status != store.StatusDone {
		t.Errorf("the short answer is %q after the deploy, want done", shortMsg.Status)
	}
	want := llm.NewDemo(llm.DemoConfig{TokensPerSecond: d.TPS, Tokens: d.Tokens}).Reply([]llm.Message{{Role: llm.RoleUser, Content: shortQ}})
	if shortMsg.Text != want {
		t.Errorf("the short answer was cut:\n got %q\nwant %q", shortMsg.Text, want)
	}
	if longMsg.Status != store.StatusInterrupted || longMsg.Text == "" || longMsg.Error == "" {
		t.Errorf("the long answer: status %q, %d bytes, error %q; want interrupted with its text", longMsg.Status, len(longMsg.Text), longMsg.Error)
	}
	logs := a.FullLogs()
	if !logHas(logs, long, "answer ended", "status=interrupted") || !logHas(logs, short, "answer ended", "status=done") {
		t.Errorf("A did not end both answers itself")
	}

	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	reconnected := 0
	for _, v := range vs {
		reconnected += min(v.Reconnects(), 1)
	}
	if reconnected == 0 {
		t.Fatal("no viewer was handed over: none reconnected")
	}
	t.Logf("%d of %d viewers were on A and reconnected to B", reconnected, len(vs))
	var longVs, shortVs []*viewer.Viewer
	for i, v := range vs {
		if i%2 == 0 {
			longVs = append(longVs, v)
		} else {
			shortVs = append(shortVs, v)
		}
	}
	sameAsFresh(t, owner, lb.URL, long, longVs)
	sameAsFresh(t, owner, lb.URL, short, shortVs)

	// The balancer now sends everything to B, which takes new conversations.
	if _, err := viewer.Create(ctx, owner, lb.URL, "Still there?"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs, "panic") {
		t.Fatalf("A panicked:\n%s", logs)
	}
}

func hostPort(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}
