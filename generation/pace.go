package generation

import (
	"strings"
	"time"
)

// frameOverhead is about what one frame costs beyond the block it re-sends:
// the SSE event lines and the slot markup around the block.
const frameOverhead = 120

// pacer decides when pending text is worth a write, and so a frame to every
// viewer. Each frame re-sends the block still growing (DESIGN.md), so writing
// every few tokens of a long paragraph or code block costs bytes quadratic in
// its length, for every viewer. The pacer keeps the estimated bytes of all
// frames of an answer within budget times the answer's length: early in a
// block text goes out at every flush tick; as the block grows, writes come
// further apart, never more than maxHold after the text arrived. When a block
// ends, the next one starts small and text flows every tick again.
//
// It counts Markdown source bytes, not rendered HTML: both grow together,
// and the generation has no renderer. A budget of 0 writes at every tick.
type pacer struct {
	budget  float64
	maxHold time.Duration

	written int // answer bytes written so far
	tail    int // bytes of the block still growing (since the last blank line)
	spent   int // estimated bytes of the frames written so far
}

// ready reports whether pending text, the oldest of which arrived at since,
// should be written now.
func (p *pacer) ready(pending string, since, now time.Time) bool {
	if pending == "" {
		return false
	}
	if p.budget <= 0 || now.Sub(since) >= p.maxHold {
		return true
	}
	return float64(p.spent+p.cost(pending)) <= p.budget*float64(p.written+len(pending))+paceSlack
}

// paceSlack is frame bytes an answer may spend beyond its budget: the first
// tokens of every answer go out at once, however small.
const paceSlack = 4096

// cost estimates the frame that writing text makes: the growing block as it
// was, plus text, plus the frame's own overhead.
func (p *pacer) cost(text string) int { return p.tail + len(text) + frameOverhead }

// wrote records that text was written.
func (p *pacer) wrote(text string) {
	p.spent += p.cost(text)
	p.written += len(text)
	if i := strings.LastIndex(text, "\n\n"); i >= 0 {
		p.tail = len(text) - i - 2
	} else {
		p.tail += len(text)
	}
}
