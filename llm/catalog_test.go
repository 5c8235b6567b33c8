package llm

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/openaitest"
)

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCatalogConfigured(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	c := NewCatalog(m, []string{" big ", "", "small", "big"}, time.Hour)
	if got := c.List(t.Context()); !slices.Equal(got, []string{"big", "small"}) {
		t.Errorf("List = %q, want big, small", got)
	}
	if c.Default() != "big" {
		t.Errorf("Default = %q, want big", c.Default())
	}
	for name, want := range map[string]bool{"": true, "big": true, "small": true, openaitest.DefaultModel: false, "other": false} {
		if got := c.Allows(t.Context(), name); got != want {
			t.Errorf("Allows(%q) = %v, want %v", name, got, want)
		}
	}
	if n := srv.ModelsRequests(); n != 0 {
		t.Errorf("the provider was asked for its models %d times, want never", n)
	}
}

func TestCatalogProviderList(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.SetModels("zeta", openaitest.DefaultModel, "alpha")
	c := NewCatalog(m, nil, time.Hour)
	want := []string{openaitest.DefaultModel, "alpha", "zeta"}
	for range 3 {
		if got := c.List(t.Context()); !slices.Equal(got, want) {
			t.Fatalf("List = %q, want %q (the default first)", got, want)
		}
	}
	if n := srv.ModelsRequests(); n != 1 {
		t.Errorf("the provider was asked %d times, want once within the TTL", n)
	}
	if c.Default() != openaitest.DefaultModel || !c.Allows(t.Context(), "alpha") || c.Allows(t.Context(), "beta") {
		t.Errorf("Default = %q; Allows alpha, beta = %v, %v", c.Default(), c.Allows(t.Context(), "alpha"), c.Allows(t.Context(), "beta"))
	}
}

// TestCatalogRefreshAndFallback checks that a stale list is refreshed, and
// that a failing provider leaves the last good list in place.
func TestCatalogRefreshAndFallback(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.SetModels("served-a")
	c := NewCatalog(m, nil, time.Nanosecond)
	first := []string{openaitest.DefaultModel, "served-a"}
	if got := c.List(t.Context()); !slices.Equal(got, first) {
		t.Fatalf("List = %q, want %q (the default first even when not served)", got, first)
	}
	srv.SetModels("served-b")
	waitFor(t, "the new list", func() bool { return slices.Contains(c.List(t.Context()), "served-b") })

	srv.ModelsReply(openaitest.Reply{Status: 500})
	asked := srv.ModelsRequests()
	waitFor(t, "failed refreshes", func() bool {
		if got := c.List(t.Context()); !slices.Equal(got, []string{openaitest.DefaultModel, "served-b"}) {
			t.Fatalf("List while the provider fails = %q, want the last good list", got)
		}
		return srv.ModelsRequests() >= asked+2
	})
}

func TestCatalogNeverAnswered(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.Close()
	c := NewCatalog(m, nil, time.Hour)
	if got := c.List(t.Context()); !slices.Equal(got, []string{openaitest.DefaultModel}) {
		t.Errorf("List = %q, want just the default", got)
	}
	if !c.Allows(t.Context(), openaitest.DefaultModel) || c.Allows(t.Context(), "other") {
		t.Errorf("Allows default, other = %v, %v; want true, false", c.Allows(t.Context(), openaitest.DefaultModel), c.Allows(t.Context(), "other"))
	}

	// A caller that gives up does not wait for a provider that hangs.
	srv2, m2 := newServed(t, "")
	srv2.ModelsReply(openaitest.Reply{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if got := NewCatalog(m2, nil, time.Hour).List(ctx); !slices.Equal(got, []string{openaitest.DefaultModel}) {
		t.Errorf("List with its context done = %q, want just the default", got)
	}
}

// TestCatalogOneRefresh checks that many callers at once make one request
// to the provider and all get its list.
func TestCatalogOneRefresh(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.SetModels("a", "b")
	srv.ModelsReply(openaitest.Reply{Delay: 100 * time.Millisecond})
	c := NewCatalog(m, nil, time.Hour)
	want := []string{openaitest.DefaultModel, "a", "b"}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if got := c.List(t.Context()); !slices.Equal(got, want) {
				t.Errorf("List = %q, want %q", got, want)
			}
		})
	}
	wg.Wait()
	if n := srv.ModelsRequests(); n != 1 {
		t.Errorf("the provider was asked %d times, want once", n)
	}
}

// TestCatalogPageDoesNotWaitForAHungProvider: with no list yet and a provider
// that takes a minute, a page still gets the default model within firstWait,
// not when its own (long) context ends.
func TestCatalogPageDoesNotWaitForAHungProvider(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.ModelsReply(openaitest.Reply{Delay: time.Minute})
	c := NewCatalog(m, nil, time.Hour)
	start := time.Now()
	if got := c.List(t.Context()); !slices.Equal(got, []string{openaitest.DefaultModel}) {
		t.Errorf("List = %q, want just the default", got)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("List waited %v for a provider that takes a minute", waited)
	}
}

// TestCatalogCheck: the start-up check reports the provider's error, shares
// the request already out, and leaves its list for List.
func TestCatalogCheck(t *testing.T) {
	t.Parallel()
	srv, m := newServed(t, "")
	srv.SetModels("a")
	srv.ModelsReply(openaitest.Reply{Delay: 100 * time.Millisecond})
	c := NewCatalog(m, nil, time.Hour)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Check(t.Context()); err != nil {
			t.Errorf("Check = %v", err)
		}
	})
	// A page asking while the check's request is out joins it.
	waitFor(t, "the check's request", func() bool { return srv.ModelsRequests() == 1 })
	if got := c.List(t.Context()); !slices.Equal(got, []string{openaitest.DefaultModel, "a"}) {
		t.Errorf("List during Check = %q", got)
	}
	wg.Wait()
	if n := srv.ModelsRequests(); n != 1 {
		t.Errorf("the provider was asked %d times by one List and one Check, want once", n)
	}

	down, m2 := newServed(t, "")
	down.ModelsReply(openaitest.Reply{Status: 502})
	if err := NewCatalog(m2, []string{"x"}, time.Hour).Check(t.Context()); err == nil {
		t.Error("Check of a provider answering 502 = nil, want its error (configured names do not skip the check)")
	}
}
