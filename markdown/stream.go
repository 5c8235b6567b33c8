package markdown

import "strings"

// Doc is the incremental state of one growing message: its text and rendered
// blocks. Not safe for concurrent use.
//
// Every block but the last is final (Split is prefix-stable), so Append only
// scans the newly arrived text and re-renders from the last block on: the
// cost of a token is O(size of the last block), not O(whole text).
type Doc struct {
	r    *Renderer
	text strings.Builder
	sc   scanner
	// starts holds the offset in text where each block begins.
	starts []int
	// ends holds the end offset of the text each block's HTML was rendered
	// from, so a block whose text did not change is not rendered again.
	ends []int
	html []string
	// partial says a block's HTML was rendered while it was last and
	// differs from its final HTML (a growing code block not highlighted
	// whole): it must be rendered again once final, even unchanged.
	partial []bool
}

// NewDoc returns an empty Doc that renders its blocks with r.
func NewDoc(r *Renderer) *Doc {
	return &Doc{r: r, sc: newScanner()}
}

// Append adds text and returns the index of the first block whose HTML
// changed (or was created), so the caller sends only Blocks()[first:]. If
// nothing changed visually it may still return the index of the last block
// (0 for an empty Doc).
func (d *Doc) Append(text string) (first int) {
	return d.append(text, false)
}

// AppendFinal is Append for the whole rest of a message that will not grow
// (an answer that has ended): its last block is final too, so its HTML may
// come from, and goes to, the renderer's cache of finished blocks.
// AppendFinal("") after Appends ends a message: the last block's HTML
// becomes its final HTML (a code block it ends in is highlighted whole).
func (d *Doc) AppendFinal(text string) (first int) {
	return d.append(text, true)
}

func (d *Doc) append(text string, final bool) (first int) {
	d.text.WriteString(text)
	all := d.text.String()
	from := max(len(d.starts)-1, 0)
	d.starts = d.sc.scan(all, d.starts)

	first = -1
	for i := from; i < len(d.starts); i++ {
		end := len(all)
		if i+1 < len(d.starts) {
			end = d.starts[i+1]
		}
		// A later block exists: this one is final.
		isFinal := final || i+1 < len(d.starts)
		if i < len(d.ends) && d.ends[i] == end && !(isFinal && d.partial[i]) {
			if isFinal { // rendered while last, final now
				d.r.cache.put(all[d.starts[i]:end], d.html[i])
			}
			continue
		}
		var h string
		partial := false
		if isFinal {
			h = d.r.renderFinal(all[d.starts[i]:end])
		} else {
			h, partial = d.r.render(all[d.starts[i]:end], false)
		}
		if i < len(d.html) {
			if d.html[i] != h && first < 0 {
				first = i
			}
			d.html[i], d.ends[i], d.partial[i] = h, end, partial
			continue
		}
		d.html = append(d.html, h)
		d.ends = append(d.ends, end)
		d.partial = append(d.partial, partial)
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		first = max(len(d.html)-1, 0)
	}
	return first
}

// Blocks returns the rendered HTML of every block, in order. The slice must
// not be modified by the caller.
func (d *Doc) Blocks() []string {
	return d.html
}

// Text returns all text appended so far, as given (line endings are not
// rewritten, so offsets from Split apply to it).
func (d *Doc) Text() string {
	return d.text.String()
}
