package generation_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/store"
)

// isRenewal reports whether a pipeline renews leases: it registers them
// with the sweepers (a ZADD to parley:gens), which appends never do.
func isRenewal(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if isTrack(c) || isRenewScript(c) {
			return true
		}
	}
	return false
}

// isRenewScript reports whether c runs the renew script (a pipeline resent
// after NOSCRIPT carries no ZADD).
func isRenewScript(c redis.Cmder) bool {
	a := c.Args()
	return (c.Name() == "evalsha" || c.Name() == "eval") && len(a) > 1 && a[1] == renewSHA
}

// renewSHA is the SHA1 of the renew script, as store builds it (scripts.go:
// textkey, prelude, renew).
var renewSHA = func() string {
	h := sha1.New()
	for _, f := range []string{"textkey", "prelude", "renew"} {
		src, err := os.ReadFile("../store/lua/" + f + ".lua")
		if err != nil {
			panic(err)
		}
		h.Write(src)
	}
	return hex.EncodeToString(h.Sum(nil))
}()

// isTrack reports whether c registers generations with the sweepers.
func isTrack(c redis.Cmder) bool {
	a := c.Args()
	return c.Name() == "zadd" && len(a) > 1 && a[1] == "parley:gens"
}

// renewals records the lease renewals a Redis client sends: each pipeline
// of them, and the ones sent alone.
type renewals struct {
	mu sync.Mutex
	// batches holds, for each renewal pipeline in the order sent, how many
	// renewal scripts (EVALSHAs) it carried and how many conversations its
	// ZADD registered.
	batches []renewalBatch
	alone   int // ZADDs to parley:gens sent outside a pipeline
}

type renewalBatch struct {
	done             bool // its replies came
	scripts, tracked int
	// replies holds each renewal's reply by its conversation's meta key.
	replies map[string]string
}

func (r *renewals) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *renewals) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isTrack(cmd) {
			r.mu.Lock()
			r.alone++
			r.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (r *renewals) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, isTrack) {
			// Not a tick's renewals (or the resend of the runs Redis
			// refused for want of the script, which carries no ZADD).
			return next(ctx, cmds)
		}
		r.mu.Lock()
		i := len(r.batches)
		r.batches = append(r.batches, renewalBatch{replies: map[string]string{}})
		r.mu.Unlock()
		err := next(ctx, cmds)
		b := renewalBatch{done: true, replies: map[string]string{}}
		for _, c := range cmds {
			switch {
			case c.Name() == "evalsha":
				b.scripts++
				reply, _ := c.(*redis.Cmd).Text()
				b.replies[c.Args()[3].(string)] = reply // evalsha sha numkeys meta ...
			case isTrack(c):
				b.tracked += (len(c.Args()) - 2) / 2 // zadd key score member ...
			}
		}
		r.mu.Lock()
		r.batches[i] = b
		r.mu.Unlock()
		return err
	}
}

// since returns the renewal pipelines from the i-th on whose replies came
// (up to the first still in flight), and the renewals sent alone so far.
func (r *renewals) since(i int) ([]renewalBatch, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []renewalBatch
	for _, b := range r.batches[min(i, len(r.batches)):] {
		if !b.done {
			break
		}
		out = append(out, b)
	}
	return out, r.alone
}

// sent is the number of renewal pipelines sent so far.
func (r *renewals) sent() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

// full waits for a renewal pipeline that carries n renewals and returns the
// number of pipelines sent until then, it included.
func (r *renewals) full(t *testing.T, n int) int {
	t.Helper()
	var at int
	waitFor(t, fmt.Sprintf("a renewal of all %d leases", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, b := range r.batches {
			if b.scripts == n && len(b.replies) == n {
				at = i + 1
				return true
			}
		}
		return false
	})
	return at
}

// silent starts n answers that say their first word and then nothing for
// longer than the test: only their lease renewals go to Redis. stopAll ends
// them (at the test's end).
func (e *env) silent(t *testing.T, n int) (answers []*answer, stopAll func()) {
	t.Helper()
	for i := range n {
		answers = append(answers, e.start(t, fmt.Sprintf("question %d", i)))
	}
	return answers, func() {
		for _, a := range answers {
			e.stopper.stop(a.conv)
		}
		for _, a := range answers {
			e.wait(t, a)
		}
	}
}

// TestRenewalsShareOneRoundTrip: the leases of all the generations a
// process runs are renewed together, on one tick: each renewal period sends
// one pipeline that renews every lease and registers every conversation
// with the sweepers in one ZADD, and no renewal goes alone.
func TestRenewalsShareOneRoundTrip(t *testing.T) {
	t.Parallel()
	const n = 20
	// A short lease, so that periods (200 ms) pass quickly; the models
	// write their first word and then nothing (a word every 100 s).
	e := newEnvLease(t, 0.01, 50, 600*time.Millisecond)
	counter := &renewals{}
	e.rdb.AddHook(counter)
	_, stopAll := e.silent(t, n)
	defer stopAll()

	from := counter.full(t, n)
	_, aloneBefore := counter.since(from)
	const periods = 3
	waitFor(t, fmt.Sprintf("%d more renewal periods", periods), func() bool {
		b, _ := counter.since(from)
		return len(b) >= periods
	})
	batches, alone := counter.since(from)
	for i, b := range batches {
		t.Logf("renewal pipeline %d: %d renewals, %d conversations registered", i, b.scripts, b.tracked)
		if b.scripts != n || b.tracked != n {
			t.Errorf("renewal pipeline %d renewed %d leases and registered %d conversations, want all %d in each", i, b.scripts, b.tracked, n)
		}
	}
	if alone != aloneBefore {
		t.Errorf("%d renewals went alone, outside the shared pipeline", alone-aloneBefore)
	}
}

// TestStopSeenAtTheNextRenewal: a stop request stored in Redis reaches a
// generation that is writing nothing (so no append carries it) through the
// first shared renewal after it, within one renewal period; the other
// generations renewed with it go on.
func TestStopSeenAtTheNextRenewal(t *testing.T) {
	t.Parallel()
	const n = 5
	e := newEnvLease(t, 0.01, 50, 1500*time.Millisecond) // renewals every 500 ms
	counter := &renewals{}
	e.rdb.AddHook(counter)
	answers, stopAll := e.silent(t, n)
	defer stopAll()
	counter.full(t, n) // all of them run and renew

	victim := answers[2]
	meta := "{c:" + victim.conv + "}:meta"
	ctx := context.Background()
	// Its first word stored, so that no append of it is left to carry the
	// stop instead of a renewal.
	waitFor(t, "the first word of the answer to stop", func() bool {
		snap, err := e.st.Snapshot(ctx, victim.conv, store.ID{})
		return err == nil && len(snap.Messages) == 2 && snap.Messages[1].Text != ""
	})
	// Renewals sent while the stop is being stored may or may not see it;
	// every one sent after it must, and the first is at most a period away.
	c0 := counter.sent()
	if r, err := e.st.Stop(ctx, victim.conv); err != nil || r != store.StopSent {
		t.Fatalf("stop: %v %v", r, err)
	}
	c1 := counter.sent()
	m := e.waitWithin(t, victim, 10*time.Second)
	after, _ := counter.since(c0)
	stopSeen := false
	for i, b := range after {
		r, ok := b.replies[meta]
		if !ok {
			continue
		}
		t.Logf("renewal %d after the stop was asked (%d after it was stored): %q", i, i-(c1-c0), r)
		stopSeen = stopSeen || r == "stop"
		if c0+i >= c1 && r != "stop" {
			t.Errorf("a renewal sent after the stop was stored said %q, want stop", r)
		}
	}
	if !stopSeen {
		t.Error("no renewal told the generation to stop")
	}
	if m.Status != store.StatusStopped || m.Text == "" {
		t.Errorf("stopped answer: status %s, text %q", m.Status, m.Text)
	}
	for _, a := range answers {
		if a == victim {
			continue
		}
		select {
		case <-a.ended:
			t.Errorf("answer to %q ended with the stopped one", a.question)
		default:
		}
	}
}
