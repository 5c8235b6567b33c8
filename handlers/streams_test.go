package handlers_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/clientaddr"
	"github.com/parley-chat/parley/store"
)

// TestViewersPerAddress: with a cap of 3 live streams per client address,
// a 4th stream from one address (a conversation's or a sidebar's) is
// refused with 429 and Retry-After while another address is served, and
// closing one of the three frees a place.
func TestViewersPerAddress(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) {
		c.limits.ViewersPerAddress = 3
		// The test client is on the loopback address: believe the
		// X-Forwarded-For it sends, as behind a proxy.
		res, err := clientaddr.Parse("127.0.0.1,::1")
		if err != nil {
			t.Fatal(err)
		}
		c.clients = res
	})
	conv := store.NewID()
	storeExchange(t, a, conv, true, "hello", "hi")
	// The browser needs a session for its sidebar stream.
	if _, err := a.Client.Get(a.URL + "/"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(path, addr string, datastar bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+path, nil)
		req.Header.Set("X-Forwarded-For", addr)
		if datastar {
			req.Header.Set("Datastar-Request", "true")
		}
		res, err := a.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	events := "/c/" + conv + "/events"
	var held []*http.Response
	defer func() {
		for _, r := range held {
			r.Body.Close()
		}
	}()
	for _, path := range []string{events, events, "/sidebar/events"} {
		res := open(path, "192.0.2.1", true)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200", path, res.StatusCode)
		}
		held = append(held, res)
	}

	// The 4th: a page's stream gets 429, then the connection breaks (so
	// that the beta.11 client retries after its backoff rather than never).
	res := open(events, "192.0.2.1", true)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "10" {
		t.Fatalf("4th stream: status %d, Retry-After %q, want 429 and 10", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if err == nil {
		t.Errorf("the refused Datastar stream ended cleanly (%q): the page would never retry", body)
	}
	// Any other client gets a plain 429, and so does a sidebar stream.
	for _, path := range []string{events, "/sidebar/events"} {
		res := open(path, "192.0.2.1", false)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "10" || err != nil || len(body) == 0 {
			t.Fatalf("%s over the cap: status %d, Retry-After %q, body %q (%v)", path, res.StatusCode, res.Header.Get("Retry-After"), body, err)
		}
	}
	// Another address is served.
	other := open(events, "192.0.2.2", true)
	if other.StatusCode != http.StatusOK {
		t.Fatalf("another address: status %d, want 200", other.StatusCode)
	}
	held = append(held, other)

	// Closing one frees a place (once the server has seen it go).
	held[0].Body.Close()
	held = held[1:]
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := open(events, "192.0.2.1", false)
		if res.StatusCode == http.StatusOK {
			held = append(held, res)
			break
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("after a stream closed: status %d, want 200", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And it is full again.
	if res := open(events, "192.0.2.1", false); res.StatusCode != http.StatusTooManyRequests {
		res.Body.Close()
		t.Fatalf("a 4th stream again: status %d, want 429", res.StatusCode)
	} else {
		res.Body.Close()
	}
}
