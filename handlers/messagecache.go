package handlers

import "sync"

// messageCache keeps the rendered HTML of ended messages
// (views.RenderMessage's output) for pages, so that loading a long
// conversation renders, and reads from Redis, only the messages that are new
// or changed. It is shared by every viewer: a message's HTML never depends on who looks at it (see
// package views).
//
// Entries are keyed by conversation, message index and revision: the ID of
// the log entry that last changed the message. Every store script that
// changes a message's role, text, status or error also sets its rev to the
// new entry's ID, and a log never reuses an ID, so an ended message's
// revision determines its HTML. A conversation deleted and created again
// under the same ID gets a new log, whose IDs start from the current time
// (XADD *): later than any the old one held, unless Redis's clock went back
// across the deletion. A cache holds one revision per message: storing
// another replaces it.
//
// It is bounded by bytes and drops the least recently used messages first.
// It is safe for concurrent use.
type messageCache struct {
	limit int

	mu         sync.Mutex
	convs      map[string]*convEntries
	head, tail *cacheEntry // most and least recently used
	bytes      int
}

// convEntries are the messages held of one conversation, by index.
type convEntries struct {
	byIndex []*cacheEntry
	n       int // entries that are not nil
}

type cacheEntry struct {
	conv       string
	index      int
	rev, html  string
	size       int
	prev, next *cacheEntry // towards head, towards tail
}

// cacheEntryOverhead approximates what an entry costs beside its strings:
// the entry itself and its slot in its conversation's slice.
const cacheEntryOverhead = 120

// cachedMessage is one message as a messageCache holds it; both are "" for
// a message it does not hold.
type cachedMessage struct {
	Rev  string
	HTML string
}

// newMessageCache returns a cache holding at most about limit bytes.
func newMessageCache(limit int) *messageCache {
	return &messageCache{limit: limit, convs: map[string]*convEntries{}}
}

// Conversation returns the messages of conv the cache holds, by index (up
// to the last one held), and marks them used. The strings stay valid
// whatever the cache does next.
func (c *messageCache) Conversation(conv string) []cachedMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	ce := c.convs[conv]
	if ce == nil {
		return nil
	}
	out := make([]cachedMessage, len(ce.byIndex))
	for i, e := range ce.byIndex {
		if e != nil {
			out[i] = cachedMessage{Rev: e.rev, HTML: e.html}
			c.unlink(e)
			c.pushFront(e)
		}
	}
	return out
}

// Put stores the HTML of message index of conv at revision rev, replacing
// any other revision of it, and drops the least recently used messages
// beyond the limit. HTML larger than a quarter of the limit is not kept:
// one huge answer must not empty the cache of everything else.
func (c *messageCache) Put(conv string, index int, rev, html string) {
	size := len(html) + len(rev) + cacheEntryOverhead
	if rev == "" || index < 0 || size > c.limit/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ce := c.convs[conv]
	if ce == nil {
		ce = &convEntries{}
		c.convs[conv] = ce
	}
	for len(ce.byIndex) <= index {
		ce.byIndex = append(ce.byIndex, nil)
	}
	e := ce.byIndex[index]
	switch {
	case e == nil:
		e = &cacheEntry{conv: conv, index: index, rev: rev, html: html, size: size}
		ce.byIndex[index] = e
		ce.n++
		c.bytes += size
	case e.rev != rev:
		c.unlink(e)
		c.bytes += size - e.size
		e.rev, e.html, e.size = rev, html, size
	default:
		c.unlink(e)
	}
	c.pushFront(e)
	for c.bytes > c.limit && c.tail != nil {
		c.remove(c.tail)
	}
}

// Len returns the number of messages held and their approximate size in bytes.
func (c *messageCache) Len() (messages, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ce := range c.convs {
		n += ce.n
	}
	return n, c.bytes
}

// remove drops e from the list, its conversation and the byte count.
func (c *messageCache) remove(e *cacheEntry) {
	c.unlink(e)
	c.bytes -= e.size
	ce := c.convs[e.conv]
	ce.byIndex[e.index] = nil
	ce.n--
	if ce.n == 0 {
		delete(c.convs, e.conv)
		return
	}
	// Keep the slice as long as the last message held.
	last := len(ce.byIndex)
	for last > 0 && ce.byIndex[last-1] == nil {
		last--
	}
	ce.byIndex = ce.byIndex[:last]
}

func (c *messageCache) unlink(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *messageCache) pushFront(e *cacheEntry) {
	e.next = c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}
