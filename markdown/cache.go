package markdown

import "sync"

// blockCache remembers the HTML of finished blocks, keyed by their Markdown.
//
// A block that a later block follows never changes (Split is prefix-stable),
// yet it was rendered again for every page load, every catch-up frame and
// every room that loaded the conversation: a 200-message page spent most of
// its time re-rendering Markdown it had rendered before, and a viewer joining
// a 5,000-token answer waited for the whole answer to be rendered again.
// Rendering is a pure function of the source, so the result can be shared by
// every conversation and goroutine.
//
// The cache is bounded by bytes with two generations: entries go into the
// current map; when it holds half the limit it becomes the old one and the
// previous old one is dropped. A hit in the old map moves the entry back.
// Blocks still growing are never cached (Doc renders them directly), so a
// streaming answer does not fill the cache with its prefixes.
//
// The highlighter keeps another cache of this type, for code.
type blockCache struct {
	limit int

	mu       sync.Mutex
	cur, old map[string]string
	curBytes int
}

// blockCacheBytes bounds the memory of a Renderer's cache (keys and values).
const blockCacheBytes = 32 << 20

func newBlockCache(limit int) *blockCache {
	return &blockCache{limit: limit, cur: map[string]string{}}
}

func (c *blockCache) get(src string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.cur[src]; ok {
		return h, true
	}
	h, ok := c.old[src]
	if ok {
		delete(c.old, src)
		c.addLocked(src, h)
	}
	return h, ok
}

func (c *blockCache) put(src, html string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[src]; !ok {
		c.addLocked(src, html)
	}
}

func (c *blockCache) addLocked(src, html string) {
	size := len(src) + len(html)
	if size > c.limit/2 {
		return
	}
	if c.curBytes+size > c.limit/2 {
		c.old, c.cur, c.curBytes = c.cur, map[string]string{}, 0
	}
	c.cur[src] = html
	c.curBytes += size
}

// renderFinal is Render for a block that will not change: its HTML comes
// from the cache when the same Markdown was rendered before.
func (r *Renderer) renderFinal(src string) string {
	if h, ok := r.cache.get(src); ok {
		return h
	}
	h, _ := r.render(src, true)
	r.cache.put(src, h)
	return h
}
