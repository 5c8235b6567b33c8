package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestViewersConvergeThroughBranches is TestViewersConvergeAtAnyInstant
// for a conversation people steer: while viewers join, reconnect with every
// kind of cursor and leave at random instants, the owner posts, tries to
// switch versions mid-answer (refused: busy), regenerates an answer, edits
// the first question, and switches back through the versions. Every viewer
// must end with the DOM of a fresh page, which shows the selected path.
func TestViewersConvergeThroughBranches(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("attaches many viewers")
	}
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 200, Tokens: 200} })
	conv := a.create(t, "first question")
	a.waitStatus(t, conv, 1, store.StatusDone)
	meta, err := a.Store.Meta(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	owner := generation.Asker{Owner: meta.Owner, Addr: "192.0.2.1"}
	const marker = "All steered"

	const viewers = 120
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	doms := make([]*viewer.DOM, viewers)
	rng := rand.New(rand.NewPCG(9, 13))
	for i := range viewers {
		delay := time.Duration(rng.Int64N(int64(8 * time.Second)))
		kind := reconnect(i % int(numReconnectKinds))
		seed := rng.Uint64()
		wg.Go(func() {
			time.Sleep(delay)
			d, err := watchUntil(ctx, a, conv, kind, seed, func(d *viewer.DOM) bool {
				return strings.Contains(d.HTML("conv-title"), marker)
			})
			if err != nil {
				errs <- fmt.Errorf("viewer %d (%v, joined at %v): %w", i, kind, delay, err)
				return
			}
			doms[i] = d
		})
	}
	steer(t, a, conv, owner)
	if code, body := a.action(t, a.Client, "/c/"+conv+"/title", url.Values{"title": {marker}}); code != http.StatusOK {
		t.Fatalf("rename: %d %s", code, body)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	fresh, _ := a.page(t, conv)
	want := fresh.HTML("messages")
	if !strings.Contains(want, "first question, edited") {
		t.Fatalf("the fresh page does not show the edited branch:\n%s", want)
	}
	for i, d := range doms {
		if got := d.HTML("messages"); got != want {
			t.Errorf("viewer %d (%v) ended with a different page:\n got %s\nwant %s", i, reconnect(i%int(numReconnectKinds)), got, want)
		}
	}
}

// steer is the owner's part of TestViewersConvergeThroughBranches; it ends
// on the edited branch, its first answer's second version.
func steer(t *testing.T, a *app, conv string, owner generation.Asker) {
	ctx := context.Background()
	time.Sleep(2 * time.Second) // some viewers join before anything happens
	if res := a.post(t, conv, "second question", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: status %d", res.StatusCode)
	}
	if err := a.Store.Switch(ctx, store.Switch{Conv: conv, Owner: owner.Owner, Index: 0, Version: 1}); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("switch mid-answer: %v, want ErrBusy", err)
	}
	last := a.waitStatus(t, conv, 3, store.StatusDone)
	if err := a.Gen.Regenerate(ctx, generation.Regeneration{Asker: owner, Conv: conv, Index: 3, Rev: last.Rev}); err != nil {
		t.Fatalf("regenerate: %v", err)
	}
	a.waitStatus(t, conv, 3, store.StatusDone)
	if err := a.Gen.Edit(ctx, generation.Edit{Asker: owner, Conv: conv, Index: 0, Text: "first question, edited", Key: "edit-1",
		Rev: a.waitStatus(t, conv, 0, store.StatusDone).Rev}); err != nil {
		t.Fatalf("edit: %v", err)
	}
	a.waitStatus(t, conv, 1, store.StatusDone)
	for _, w := range []store.Switch{{Index: 0, Version: 1}, {Index: 3, Version: 1}, {Index: 3, Version: 2}, {Index: 0, Version: 2}} {
		w.Conv, w.Owner = conv, owner.Owner
		if err := a.Store.Switch(ctx, w); err != nil {
			t.Fatalf("switch %+v: %v", w, err)
		}
		time.Sleep(300 * time.Millisecond) // viewers join and reconnect between switches
	}
	if err := a.Gen.Regenerate(ctx, generation.Regeneration{Asker: owner, Conv: conv, Index: 1, Rev: a.waitStatus(t, conv, 1, store.StatusDone).Rev}); err != nil {
		t.Fatalf("regenerate the edited branch's answer: %v", err)
	}
	a.waitStatus(t, conv, 1, store.StatusDone)
}
