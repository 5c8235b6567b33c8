package markdown

import (
	"strconv"
	"testing"
)

// TestBlockCacheIsBounded: the cache returns what Render returns, and holds
// no more than its limit however many blocks pass through it.
func TestBlockCacheIsBounded(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	r.cache = newBlockCache(4 << 10)
	for i := range 500 {
		src := "Paragraph **" + strconv.Itoa(i) + "** of the answer.\n\n"
		if got, want := r.renderFinal(src), r.Render(src); got != want {
			t.Fatalf("cached render of %q = %q, want %q", src, got, want)
		}
		if got, want := r.renderFinal(src), r.Render(src); got != want {
			t.Fatalf("second cached render of %q = %q, want %q", src, got, want)
		}
		total := 0
		for k, v := range r.cache.cur {
			total += len(k) + len(v)
		}
		for k, v := range r.cache.old {
			total += len(k) + len(v)
		}
		if total > 4<<10 {
			t.Fatalf("after %d blocks the cache holds %d bytes, over its 4 KiB limit", i+1, total)
		}
	}
}

// TestDocCachesOnlyFinishedBlocks: a growing answer leaves only its finished
// blocks in the cache, never the prefixes of its last block.
func TestDocCachesOnlyFinishedBlocks(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	d := NewDoc(r)
	for _, piece := range []string{"First ", "paragraph.\n\n", "Second ", "one ", "grows"} {
		d.Append(piece)
	}
	if n := len(r.cache.cur) + len(r.cache.old); n != 1 {
		t.Fatalf("cache holds %d blocks, want 1 (the finished first paragraph)", n)
	}
	if _, ok := r.cache.get("First paragraph.\n\n"); !ok {
		t.Fatal("the finished block is not cached")
	}
}

// TestAppendFinalCachesTheLastBlock: an ended answer's last block is final
// too, and the next Doc of the same text renders nothing again.
func TestAppendFinalCachesTheLastBlock(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	text := "First paragraph.\n\nLast *one*."
	want := NewDoc(NewRenderer())
	want.Append(text)
	d := NewDoc(r)
	d.AppendFinal(text)
	if got := d.Blocks(); len(got) != 2 || got[0] != want.Blocks()[0] || got[1] != want.Blocks()[1] {
		t.Fatalf("AppendFinal blocks = %q, want %q", got, want.Blocks())
	}
	if _, ok := r.cache.get("Last *one*."); !ok {
		t.Fatal("the last block of an ended answer is not cached")
	}
}
