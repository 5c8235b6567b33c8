package generation

import (
	"context"
	"sync"
	"time"

	"github.com/parley-chat/parley/store"
)

// Limits are the limits shared by every process that admit an answer; 0 is
// no limit. Each counts per browser and per client address, since a cookie
// is free to mint.
type Limits struct {
	PostsPerMinute              int // messages and regenerations, by a browser
	AddressPostsPerMinute       int // the same, by an address
	ConversationsPerHour        int // conversations started, by a browser
	AddressConversationsPerHour int // the same, by an address
	OwnerAnswers                int // answers written at once, for a browser
	AddressAnswers              int // the same, for an address
	DailyTokens                 int64
	StoredBytes                 int64 // text a browser's conversations may hold
}

// Asker is whom an answer counts against: a browser (its session owner) and
// the client address it comes from.
type Asker struct {
	Owner string
	Addr  string
}

// Message asks for the answer to a new message of Conv.
type Message struct {
	Asker
	Conv string
	Text string
	// Key makes the post idempotent: the same key again is the same post,
	// retried, which starts nothing and is not an error.
	Key string
	// Create starts conversation Conv with this message (store.ErrExists
	// when it exists or was deleted).
	Create bool
	// Model, on Create, is the conversation's model ("" the default).
	Model string
}

// Regeneration asks for an answer of Conv again, as a new version. Rev is
// the answer's revision the asker saw: a repeat for the same revision
// starts nothing.
type Regeneration struct {
	Asker
	Conv  string
	Index int // the answer's position; 0 is the last message
	Rev   string
}

// Edit asks for a new version of the user message at Index of Conv, and
// its answer.
type Edit struct {
	Asker
	Conv  string
	Index int
	Text  string
	Key   string // as Message.Key
	Rev   string // the message's revision as the asker saw it (store.Edit.Rev)
}

// Continuation asks the model to go on with the last answer of Conv, which
// it ended at its length limit; Rev as Regeneration's.
type Continuation struct {
	Asker
	Conv string
	Rev  string
}

// Post stores msg and starts its answer, if every limit admits it. A refusal
// is ErrAtCapacity, a *store.LimitError, or the store's (store.ErrBusy,
// ErrForbidden, ErrNotFound, ErrExists, ErrConversationFull); nothing is
// then kept or counted of what this call took.
//
//	err := m.Post(ctx, generation.Message{Asker: a, Conv: id, Text: text, Key: key})
func (m *Manager) Post(ctx context.Context, msg Message) error {
	started, err := m.begin(ctx, msg.Asker, msg.Conv, msg.Create, func(gen string) (bool, error) {
		res, err := m.store.Post(ctx, store.Post{Conv: msg.Conv, Owner: msg.Owner, Text: msg.Text, Key: msg.Key, Gen: gen,
			Create: msg.Create, Model: m.defaultModel(), Choice: msg.Model})
		return err == nil && !res.Duplicate, err
	})
	if err != nil || !started {
		return err // a repeated post was counted the first time
	}
	if err := m.store.Touch(ctx, msg.Conv, msg.Owner); err != nil {
		// The answer runs; only the sidebar misses the conversation.
		m.log.Warn("index conversation", "conversation", msg.Conv, "err", err)
	}
	if err := m.store.AddStored(ctx, msg.Owner, int64(len(msg.Text))); err != nil {
		m.log.Warn("count a message's stored bytes", "conversation", msg.Conv, "err", err)
	}
	return nil
}

// Regenerate writes an answer of r.Conv again as a new version, if every
// limit admits it; its refusals are Post's, and store.ErrNoSuchMessage.
func (m *Manager) Regenerate(ctx context.Context, r Regeneration) error {
	_, err := m.begin(ctx, r.Asker, r.Conv, false, func(gen string) (bool, error) {
		return m.store.Regenerate(ctx, store.Regen{Conv: r.Conv, Owner: r.Owner, Gen: gen, Index: r.Index, Rev: r.Rev, Model: m.defaultModel()})
	})
	return err
}

// Edit stores a new version of a user message and starts its answer, if
// every limit admits it; its refusals are Post's, and store.ErrNoSuchMessage.
func (m *Manager) Edit(ctx context.Context, e Edit) error {
	started, err := m.begin(ctx, e.Asker, e.Conv, false, func(gen string) (bool, error) {
		res, err := m.store.Edit(ctx, store.Edit{Conv: e.Conv, Owner: e.Owner, Index: e.Index, Text: e.Text, Key: e.Key, Rev: e.Rev, Gen: gen, Model: m.defaultModel()})
		return err == nil && !res.Duplicate, err
	})
	if err == nil && started {
		if err := m.store.AddStored(ctx, e.Owner, int64(len(e.Text))); err != nil {
			m.log.Warn("count a message's stored bytes", "conversation", e.Conv, "err", err)
		}
	}
	return err
}

// Continue has the model go on with an answer it ended at its length limit,
// appending to it, if every limit admits it; its refusals are Regenerate's.
func (m *Manager) Continue(ctx context.Context, c Continuation) error {
	_, err := m.begin(ctx, c.Asker, c.Conv, false, func(gen string) (bool, error) {
		_, started, err := m.store.Continue(ctx, store.Continuation{Conv: c.Conv, Owner: c.Owner, Gen: gen, Rev: c.Rev})
		return started, err
	})
	return err
}

// defaultModel is the model of answers in conversations that chose none.
func (m *Manager) defaultModel() string {
	if m.cfg.DefaultModel != "" {
		return m.cfg.DefaultModel
	}
	return m.model.Name()
}

// begin admits and starts one answer: the checks that can refuse it come
// first (owner, then this process's capacity, then the shared limits), then
// write stores what asks for it and takes the lease. write reports false for
// a repeated request, which starts nothing and is not an error. Whatever
// was taken is given back on every path that starts nothing.
func (m *Manager) begin(ctx context.Context, a Asker, conv string, create bool, write func(gen string) (bool, error)) (started bool, err error) {
	if !create {
		if err := m.mustOwn(ctx, a.Owner, conv); err != nil {
			return false, err
		}
	}
	if err := m.reserve(); err != nil {
		return false, err
	}
	gen := store.NewID()
	release, err := m.admit(ctx, a, conv, gen, create)
	if err != nil {
		m.abandon()
		return false, err
	}
	started, err = write(gen)
	if err != nil || !started {
		// Nothing started: the reservations are this generation's own, so
		// giving them back leaves any answer running there its own.
		m.abandon()
		release()
		return false, err
	}
	m.start(conv, gen, func() {
		release()
		m.countAnswer(a.Owner, conv) // only an answer that ran adds bytes
	})
	return true, nil
}

// mustOwn checks that owner owns conversation conv.
func (m *Manager) mustOwn(ctx context.Context, owner, conv string) error {
	if !store.ValidConversationID(conv) {
		return store.ErrNotFound
	}
	meta, err := m.store.Meta(ctx, conv)
	if err != nil {
		return err
	}
	if meta.Owner != owner {
		return store.ErrForbidden
	}
	return nil
}

// admit checks every limit shared by the processes that a new answer in conv
// counts against, cheapest refusal first: the deployment's daily model
// tokens, the browser's stored bytes, posts a minute by the browser and by
// its address, conversations an hour when it starts one, then answers at
// once by both. A fresh cookie resets none of the address's counts. The
// returned release ends the reservations (call it when the answer ends, or
// if it is not started).
func (m *Manager) admit(ctx context.Context, a Asker, conv, gen string, create bool) (release func(), err error) {
	l := m.cfg.Limits
	browser, addr := store.Browser(a.Owner), store.Address(a.Addr)
	if err := m.store.CheckTokens(ctx, l.DailyTokens); err != nil {
		return nil, err
	}
	if err := m.store.CheckStored(ctx, a.Owner, l.StoredBytes); err != nil {
		return nil, err
	}
	counters := []store.Counter{
		{Limit: store.LimitPosts, Who: browser, Max: l.PostsPerMinute, Window: time.Minute},
		{Limit: store.LimitPosts, Who: addr, Max: l.AddressPostsPerMinute, Window: time.Minute},
	}
	if create {
		counters = append(counters,
			store.Counter{Limit: store.LimitConversations, Who: browser, Max: l.ConversationsPerHour, Window: time.Hour},
			store.Counter{Limit: store.LimitConversations, Who: addr, Max: l.AddressConversationsPerHour, Window: time.Hour})
	}
	if err := m.store.CountAll(ctx, counters...); err != nil {
		return nil, err
	}
	if err := m.store.ReserveAnswer(ctx, browser, conv, gen, l.OwnerAnswers, m.cfg.MaxDuration); err != nil {
		return nil, err
	}
	if err := m.store.ReserveAnswer(ctx, addr, conv, gen, l.AddressAnswers, m.cfg.MaxDuration); err != nil {
		m.releaseAnswer(browser, conv, gen, l.OwnerAnswers)
		return nil, err
	}
	return func() {
		m.releaseAnswer(browser, conv, gen, l.OwnerAnswers)
		m.releaseAnswer(addr, conv, gen, l.AddressAnswers)
	}, nil
}

// releaseAnswer ends one reservation of admit; a failure only leaves it to
// age out.
func (m *Manager) releaseAnswer(who store.Subject, conv, gen string, max int) {
	if max <= 0 {
		return
	}
	// Not the request's context: this runs when the answer ends.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.store.ReleaseAnswer(ctx, who, conv, gen); err != nil {
		m.log.Warn("release an answer's reservation; it ages out", "err", err)
	}
}

// countAnswer adds an ended answer's bytes to what its browser keeps; a
// failure only leaves the count low.
func (m *Manager) countAnswer(owner, conv string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := m.store.LastAnswerBytes(ctx, conv)
	if err == nil {
		err = m.store.AddStored(ctx, owner, n)
	}
	if err != nil {
		m.log.Warn("count an answer's stored bytes", "conversation", conv, "err", err)
	}
}

// reserve takes a place for a generation before anything is stored, so a
// request is refused with a clear error instead of storing a message nobody
// will answer. The place is given back by abandon, or when the generation
// start runs has ended.
func (m *Manager) reserve() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return ErrAtCapacity
	}
	select {
	case m.slots <- struct{}{}:
		m.wg.Add(1)
		return nil
	default:
		return ErrAtCapacity
	}
}

// abandon gives back a place reserved for a generation that was not started.
func (m *Manager) abandon() {
	<-m.slots
	m.wg.Done()
}

// start runs generation gen of conv in the background, in a place reserve
// took. ended, when not nil, is called when the generation has ended,
// whatever the way; conversation naming then runs outside the place.
func (m *Manager) start(conv, gen string, ended func()) {
	if ended == nil {
		ended = func() {}
	}
	ended = sync.OnceFunc(ended)
	go func() {
		defer m.wg.Done()
		m.cfg.Observer.GenerationStarted()
		outcome, p, answered := m.run(conv, gen, ended)
		m.cfg.Observer.GenerationEnded(outcome)
		<-m.slots
		ended()
		m.nameConversation(conv, p, answered)
	}()
}
