package handlers

import (
	"fmt"
	"strings"
	"testing"
)

func TestMessageCache(t *testing.T) {
	c := newMessageCache(1 << 20)
	if got := c.Conversation("a"); got != nil {
		t.Fatalf("empty cache holds %v", got)
	}
	c.Put("a", 0, "1-0", "<p>zero</p>")
	c.Put("a", 2, "3-0", "<p>two</p>")
	c.Put("b", 0, "1-0", "<p>other</p>")
	want := []cachedMessage{{Rev: "1-0", HTML: "<p>zero</p>"}, {}, {Rev: "3-0", HTML: "<p>two</p>"}}
	if got := c.Conversation("a"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("conversation a: %v, want %v", got, want)
	}
	// Another revision of a message replaces the one held.
	c.Put("a", 2, "7-0", "<p>two, again</p>")
	if got := c.Conversation("a")[2]; got != (cachedMessage{Rev: "7-0", HTML: "<p>two, again</p>"}) {
		t.Fatalf("message 2 after a new revision: %v", got)
	}
	if n, _ := c.Len(); n != 3 {
		t.Fatalf("%d messages held, want 3", n)
	}
	// Nothing without a revision.
	c.Put("a", 3, "", "<p>no rev</p>")
	if got := c.Conversation("a"); len(got) != 3 {
		t.Fatalf("a message without a revision was kept: %v", got)
	}
}

// TestMessageCacheBound: the cache stays under its byte limit and drops the
// least recently used messages first.
func TestMessageCacheBound(t *testing.T) {
	const limit = 64 << 10
	c := newMessageCache(limit)
	html := strings.Repeat("x", 1000)
	for conv := range 10 {
		for i := range 20 {
			c.Put(fmt.Sprint("c", conv), i, fmt.Sprint(i+1, "-0"), html)
			// Conversation c0 is read all along: it must survive.
			c.Conversation("c0")
		}
	}
	n, size := c.Len()
	if size > limit || n < limit/2/len(html) {
		t.Fatalf("%d messages in %d bytes, limit %d", n, size, limit)
	}
	if got := c.Conversation("c0"); len(got) != 20 || got[19].HTML != html {
		t.Fatalf("the conversation in use lost messages: %d held", len(got))
	}
	if got := c.Conversation("c1"); got != nil {
		t.Fatalf("the least recently used conversation is still held: %d messages", len(got))
	}
	// One HTML larger than a quarter of the cache is not kept.
	c.Put("big", 0, "1-0", strings.Repeat("y", limit/4+1))
	if got := c.Conversation("big"); got != nil {
		t.Fatal("a huge message was kept")
	}
}
