// Package markdown renders streamed LLM answers as sanitised HTML, one
// top-level block at a time.
//
// An answer grows token by token. Re-sending the whole rendered message for
// every token would cost O(n²) bytes, so the text is cut into blocks with a
// prefix-stable line scanner (see Split): finished blocks are rendered and
// sent once, and only the last, still growing, block is re-rendered.
//
// Whatever the Markdown, a block renders in time roughly linear in its size
// to at most 16 bytes of HTML per byte plus 4 KiB (see limits.go), and a
// growing code block is not highlighted again whole for every token (see
// growWholeBytes).
package markdown
