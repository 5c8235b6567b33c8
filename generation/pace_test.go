package generation

import (
	"strings"
	"testing"
	"time"
)

// simulate feeds text to a pacer a token per tick (every 25 ms) and returns
// the writes it allowed and the longest any text waited.
func simulate(p *pacer, tokens []string) (writes []string, longest time.Duration) {
	t0 := time.Unix(0, 0)
	pending, since := "", t0
	for i, tok := range tokens {
		now := t0.Add(time.Duration(i) * 25 * time.Millisecond)
		if pending == "" {
			since = now
		}
		pending += tok
		if p.ready(pending, since, now) {
			longest = max(longest, now.Sub(since))
			p.wrote(pending)
			writes = append(writes, pending)
			pending = ""
		}
	}
	if pending != "" {
		writes = append(writes, pending) // the end of the answer: written whatever the pacer says
	}
	return writes, longest
}

func TestPacer(t *testing.T) {
	t.Parallel()
	// One long paragraph, then a code block, then short paragraphs.
	var toks []string
	for range 400 {
		toks = append(toks, "word ")
	}
	toks = append(toks, "\n\n```go\n")
	for range 200 {
		toks = append(toks, "x := 1\n")
	}
	toks = append(toks, "```\n\n")
	for range 20 {
		toks = append(toks, "short paragraph.\n\n")
	}
	total := len(strings.Join(toks, ""))

	t.Run("no budget writes every tick", func(t *testing.T) {
		writes, _ := simulate(&pacer{}, toks)
		if len(writes) != len(toks) {
			t.Fatalf("%d writes for %d ticks", len(writes), len(toks))
		}
	})
	t.Run("budget bounds the bytes of frames", func(t *testing.T) {
		naive := &pacer{}
		simulate(naive, toks)
		p := &pacer{budget: 2, maxHold: time.Hour}
		writes, _ := simulate(p, toks)
		if limit := 2*total + paceSlack + frameOverhead; p.spent > limit {
			t.Errorf("frames cost %d bytes for %d of text (%.2fx); want at most %d", p.spent, total, float64(p.spent)/float64(total), limit)
		}
		if naive.spent < 10*p.spent {
			t.Errorf("pacing saved too little: %d bytes vs %d unpaced", p.spent, naive.spent)
		}
		if strings.Join(writes, "") != strings.Join(toks, "") {
			t.Fatal("the writes lost or reordered text")
		}
		t.Logf("%d writes, %d frame bytes (%.2fx of %d), unpaced %d (%.2fx)",
			len(writes), p.spent, float64(p.spent)/float64(total), total, naive.spent, float64(naive.spent)/float64(total))
	})
	t.Run("no text waits longer than the hold", func(t *testing.T) {
		p := &pacer{budget: 2, maxHold: 300 * time.Millisecond}
		if _, longest := simulate(p, toks); longest > 300*time.Millisecond {
			t.Errorf("text waited %v, more than the 300ms bound", longest)
		}
	})
	t.Run("within budget text goes at once", func(t *testing.T) {
		p := &pacer{budget: 2, maxHold: time.Hour}
		now := time.Unix(0, 0)
		if !p.ready("The", now, now) {
			t.Fatal("an answer's first token waited")
		}
		for range 100 { // a long block written a little at a time: over budget
			p.wrote(strings.Repeat("a", 100))
		}
		if p.ready("more", now, now) {
			t.Fatal("over budget, a few more bytes of the long block went at once")
		}
		if !p.ready("more", now, now.Add(time.Hour)) {
			t.Fatal("text waited beyond the hold")
		}
	})
}
