package llm

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Catalog is the list of models a person may pick from: the configured
// ones, or else the provider's own list, asked for at most once per TTL.
// It is safe for concurrent use.
//
// A page must not wait on a slow provider: while a list is known, List
// answers with it at once and a stale one is refreshed in the background,
// one refresh at a time. Only while no list was ever had does List wait for
// the running refresh, and for at most firstWait; the process's start-up
// Check usually has the list by the time the first page asks.
type Catalog struct {
	model      Model
	configured []string
	ttl        time.Duration

	mu      sync.Mutex
	list    []string      // the provider's last good list, model.Name() first; nil before one
	fetched time.Time     // when the last refresh ended, well or not
	err     error         // the last refresh's error; nil when it succeeded
	running chan struct{} // closed when the running refresh ends; nil when none runs
}

// How long a refresh may take, how soon one is tried again after a failure
// (at most the TTL), and how long a page waits for a first list before it
// offers just the default model.
const (
	catalogFetchTimeout = 10 * time.Second
	catalogRetry        = 30 * time.Second
	firstWait           = 2 * time.Second
)

// NewCatalog returns the catalog of m: configured (trimmed, empty names and
// repeats dropped) when it names any model, else m.Models cached for ttl
// (ttl <= 0: asked every time, one request at a time).
func NewCatalog(m Model, configured []string, ttl time.Duration) *Catalog {
	var names []string
	for _, n := range configured {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return &Catalog{model: m, configured: names, ttl: ttl}
}

// List returns the models to offer. With configured names, those; else the
// provider's list with m.Name() first, the last good one when the provider
// fails, or just m.Name() when it never answered.
func (c *Catalog) List(ctx context.Context) []string {
	if len(c.configured) > 0 {
		return slices.Clone(c.configured)
	}
	c.mu.Lock()
	wait := c.running
	if wait == nil && !c.fresh(time.Now()) {
		wait = c.startLocked(ctx)
	}
	if wait != nil && c.list == nil {
		c.mu.Unlock()
		timer := time.NewTimer(firstWait)
		select {
		case <-wait:
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
		c.mu.Lock()
	}
	list := c.list
	c.mu.Unlock()
	if list == nil {
		return []string{c.model.Name()}
	}
	return slices.Clone(list)
}

// Check asks the provider for its models now (or joins the request already
// out) and returns its error: the process's start-up probe of the key and
// the provider, which so also fills the list before the first page needs it.
// With configured names the provider is asked all the same; what is
// offered stays the configured names.
func (c *Catalog) Check(ctx context.Context) error {
	c.mu.Lock()
	wait := c.running
	if wait == nil {
		wait = c.startLocked(ctx)
	}
	c.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// startLocked starts a refresh and returns the channel its end closes. c.mu
// is held.
func (c *Catalog) startLocked(ctx context.Context) chan struct{} {
	wait := make(chan struct{})
	c.running = wait
	go c.refresh(context.WithoutCancel(ctx), wait)
	return wait
}

// Allows reports whether name may be asked for: "" (the default) and every
// name List returns.
func (c *Catalog) Allows(ctx context.Context, name string) bool {
	return name == "" || slices.Contains(c.List(ctx), name)
}

// Default is the model an answer uses when none is picked: the first
// configured one, else the model's own default.
func (c *Catalog) Default() string {
	if len(c.configured) > 0 {
		return c.configured[0]
	}
	return c.model.Name()
}

// fresh reports whether the last refresh is recent enough to stand. c.mu
// is held.
func (c *Catalog) fresh(now time.Time) bool {
	if c.fetched.IsZero() {
		return false
	}
	window := c.ttl
	if c.err != nil {
		window = min(c.ttl, catalogRetry)
	}
	return now.Sub(c.fetched) < window
}

// refresh asks the provider for its list and keeps it, then closes done.
// It runs apart from the caller that started it, so that caller leaving
// does not fail the refresh for everyone waiting on it.
func (c *Catalog) refresh(ctx context.Context, done chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, catalogFetchTimeout)
	defer cancel()
	ids, err := c.model.Models(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(done)
	c.running = nil
	c.fetched = time.Now()
	c.err = err
	if err != nil {
		return
	}
	list := []string{c.model.Name()}
	for _, id := range ids {
		if !slices.Contains(list, id) {
			list = append(list, id)
		}
	}
	c.list = list
}
