package generation_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/internal/openaitest"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// providerUps records what the generations told the provider gauge.
type providerUps struct {
	mu  sync.Mutex
	ups []bool
}

func (p *providerUps) GenerationStarted()     {}
func (p *providerUps) GenerationEnded(string) {}
func (p *providerUps) ProviderUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ups = append(p.ups, up)
}

func (p *providerUps) last() (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ups) == 0 {
		return false, 0
	}
	return p.ups[len(p.ups)-1], len(p.ups)
}

// untitled is a model that cannot name conversations.
type untitled struct{ llm.Model }

// provider is a Manager answering from an OpenAI-compatible test server.
type provider struct {
	m   *generation.Manager
	st  *store.Store
	srv *openaitest.Server
	obs *providerUps
}

func newProvider(t *testing.T, instructions string) *provider {
	t.Helper()
	srv := openaitest.New(t)
	model, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL, Model: openaitest.DefaultModel, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rs := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Config{LogMaxLen: 10000, LeaseTTL: 10 * time.Second, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour})
	obs := &providerUps{}
	// Without its Title method: a title request would take a queued reply.
	m := generation.New(st, &stopper{}, untitled{model}, slog.New(slog.NewTextHandler(io.Discard, nil)), generation.Config{
		FlushInterval: 10 * time.Millisecond, MaxConcurrent: 4, LeaseTTL: 10 * time.Second, SweepInterval: time.Second,
		MaxDuration: time.Minute, MaxAnswerBytes: 1 << 20, SystemPrompt: instructions, Observer: obs,
	})
	return &provider{m: m, st: st, srv: srv, obs: obs}
}

// ask posts text to conv (creating it when new) and waits for its answer.
func (p *provider) ask(t *testing.T, conv, text string, create bool) store.Message {
	t.Helper()
	if err := post(t, p.m, generation.Message{Asker: generation.Asker{Owner: testOwner, Addr: "192.0.2.1"},
		Conv: conv, Text: text, Key: store.NewID(), Create: create}); err != nil {
		t.Fatalf("post %q: %v", text, err)
	}
	return p.answer(t, conv)
}

// answer waits for the last answer of conv to end and returns it.
func (p *provider) answer(t *testing.T, conv string) store.Message {
	t.Helper()
	waitAnswered(t, p.st, conv)
	snap, err := p.st.Snapshot(context.Background(), conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return snap.Messages[len(snap.Messages)-1]
}

// body decodes a request body for comparison.
func body(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("request body %q: %v", raw, err)
	}
	return v
}

func wantBody(t *testing.T, got []byte, want string) {
	t.Helper()
	if g, w := body(t, got), body(t, []byte(want)); !reflect.DeepEqual(g, w) {
		t.Errorf("request body\n got %s\nwant %s", got, want)
	}
}

// TestWhatTheModelIsSent compares whole request bodies, as the provider
// received them, with the rule of history.go: instructions first, done and
// stopped answers as shown, failed answers and their partial text left out,
// the questions that leaves back to back joined, and after an edit only the
// selected path.
func TestWhatTheModelIsSent(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "Be brief.")
	conv := store.NewID()
	ctx := context.Background()
	p.srv.Queue(openaitest.Reply{Text: []string{"Paris", "."}})
	if a := p.ask(t, conv, "Capital of France?", true); a.Status != store.StatusDone || a.Text != "Paris." || a.Model != openaitest.DefaultModel {
		t.Fatalf("first answer: %+v", a)
	}
	p.srv.Queue(openaitest.Reply{Text: []string{"Half an ans"}, CutAfter: 1})
	if a := p.ask(t, conv, "And of Spain?", false); a.Status != store.StatusFailed || a.Text != "Half an ans" {
		t.Fatalf("answer cut mid-stream: %+v", a)
	}
	p.srv.Queue(openaitest.Reply{Text: []string{"Madrid."}})
	p.ask(t, conv, "Spain, please.", false)
	reqs := p.srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (a cut after text is not retried)", len(reqs))
	}
	wantBody(t, reqs[2].Body, `{"model":"test-model","stream":true,"messages":[
		{"role":"system","content":"Be brief."},
		{"role":"user","content":"Capital of France?"},
		{"role":"assistant","content":"Paris."},
		{"role":"user","content":"And of Spain?\n\nSpain, please."}]}`)

	// The conversation's own instructions, and an edit: only the new branch.
	own := "Answer in French."
	if err := p.st.SetSettings(ctx, store.SettingsChange{Conv: conv, Owner: testOwner, Instructions: &own}); err != nil {
		t.Fatal(err)
	}
	p.srv.Queue(openaitest.Reply{Text: []string{"Berlin."}})
	snap, err := p.st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.m.Edit(ctx, generation.Edit{Asker: generation.Asker{Owner: testOwner, Addr: "192.0.2.1"}, Conv: conv, Index: 2, Text: "And of Germany?", Key: "e1", Rev: snap.Messages[2].Rev}); err != nil {
		t.Fatal(err)
	}
	p.answer(t, conv)
	reqs = p.srv.Requests()
	wantBody(t, reqs[3].Body, `{"model":"test-model","stream":true,"messages":[
		{"role":"system","content":"Answer in French."},
		{"role":"user","content":"Capital of France?"},
		{"role":"assistant","content":"Paris."},
		{"role":"user","content":"And of Germany?"}]}`)
}

// TestEndingsTellTheTruth: a stream without [DONE] or without a
// finish_reason ends interrupted, its text kept; finish_reason "length"
// ends done and Cut, and Continue asks for the rest and appends it.
func TestEndingsTellTheTruth(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "")
	ctx := context.Background()
	for _, r := range []openaitest.Reply{{Text: []string{"No end"}, NoDone: true}, {Text: []string{"No reason"}, Finish: "-"}} {
		conv := store.NewID()
		p.srv.Queue(r)
		a := p.ask(t, conv, "q", true)
		if a.Status != store.StatusInterrupted || a.Text != r.Text[0] || !strings.Contains(a.Error, "cut off") {
			t.Errorf("reply %+v ended %+v, want interrupted with its text", r, a)
		}
	}
	conv := store.NewID()
	p.srv.Queue(openaitest.Reply{Text: []string{"The first half"}, Finish: "length"})
	a := p.ask(t, conv, "Tell me everything.", true)
	if a.Status != store.StatusDone || !a.Cut || a.Text != "The first half" {
		t.Fatalf("length: %+v", a)
	}
	p.srv.Queue(openaitest.Reply{Text: []string{" and the second."}})
	if err := p.m.Continue(ctx, generation.Continuation{Asker: generation.Asker{Owner: testOwner, Addr: "192.0.2.1"}, Conv: conv, Rev: a.Rev}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the continued answer", func() bool {
		snap, err := p.st.Snapshot(ctx, conv, store.ID{})
		return err == nil && snap.Messages[1].Status == store.StatusDone && snap.Messages[1].Rev != a.Rev
	})
	if b := p.answer(t, conv); b.Text != "The first half and the second." || b.Cut || b.Versions != 1 {
		t.Fatalf("continued: %+v", b)
	}
	reqs := p.srv.Requests()
	wantBody(t, reqs[len(reqs)-1].Body, `{"model":"test-model","stream":true,"messages":[
		{"role":"user","content":"Tell me everything."},
		{"role":"assistant","content":"The first half"},
		{"role":"user","content":"Continue exactly where your previous answer stopped, without repeating any of it."}]}`)
}

// TestProviderFailuresBeforeTheFirstToken: a 429 (honouring Retry-After) or
// a 5xx before the first token is tried again, at most three times, and
// the answer says so meanwhile; a rejected key is not; the provider gauge
// follows the last outcome.
func TestProviderFailuresBeforeTheFirstToken(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "")
	ctx := context.Background()
	conv := store.NewID()
	p.srv.Queue(openaitest.Reply{Status: 429, RetryAfter: "1", Message: "Rate limit reached"},
		openaitest.Reply{Status: 500, Message: "boom"}, openaitest.Reply{Text: []string{"At last."}})
	if err := post(t, p.m, generation.Message{Asker: generation.Asker{Owner: testOwner}, Conv: conv, Text: "q", Key: "k", Create: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retry note", func() bool {
		snap, err := p.st.Snapshot(ctx, conv, store.ID{})
		return err == nil && strings.Contains(snap.Messages[1].Error, "Retrying in 1s")
	})
	if a := p.answer(t, conv); a.Status != store.StatusDone || a.Text != "At last." || a.Error != "" {
		t.Fatalf("after two retries: %+v", a)
	}
	if n := len(p.srv.Requests()); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	if up, _ := p.obs.last(); !up {
		t.Error("provider gauge down after an answer")
	}

	p.srv.Queue(openaitest.Reply{Status: 503}, openaitest.Reply{Status: 503}, openaitest.Reply{Status: 503})
	if a := p.ask(t, store.NewID(), "q", true); a.Status != store.StatusFailed || !strings.Contains(a.Error, "unavailable") {
		t.Fatalf("after three 503s: %+v", a)
	}
	if n := len(p.srv.Requests()); n != 6 {
		t.Fatalf("%d requests, want 6: three tries, no fourth (which would have been answered)", n)
	}
	if up, _ := p.obs.last(); up {
		t.Error("provider gauge up after three 503s")
	}

	p.srv.Queue(openaitest.Reply{Status: 401, Message: "Incorrect API key provided: sk-abc*****xyz."})
	if a := p.ask(t, store.NewID(), "q", true); a.Status != store.StatusFailed || !strings.Contains(a.Error, "API key") {
		t.Fatalf("rejected key: %+v", a)
	}
	if n := len(p.srv.Requests()); n != 7 {
		t.Fatalf("%d requests, want 7: a rejected key is not retried", n)
	}
	if up, _ := p.obs.last(); up {
		t.Error("provider gauge up with a rejected key")
	}
}

// TestTitlesWhenAnswersFail: a conversation whose first answer failed is
// named by its first words at once, provisionally; the first answer with
// text names it for good.
func TestTitlesWhenAnswersFail(t *testing.T) {
	t.Parallel()
	p := newProvider(t, "")
	ctx := context.Background()
	conv := store.NewID()
	p.srv.Queue(openaitest.Reply{Status: 400, Message: "context too long"})
	if a := p.ask(t, conv, "How do tides work on other planets?", true); a.Status != store.StatusFailed {
		t.Fatalf("first answer: %+v", a)
	}
	waitFor(t, "a provisional title", func() bool {
		meta, err := p.st.Meta(ctx, conv)
		return err == nil && meta.Title == "How do tides work on other planets" && meta.TitleProvisional
	})
	p.ask(t, conv, "Please try again.", false)
	waitFor(t, "the title made for good", func() bool {
		meta, err := p.st.Meta(ctx, conv)
		return err == nil && meta.Title == "How do tides work on other planets" && !meta.TitleProvisional
	})
}
