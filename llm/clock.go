package llm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ClockConfig tunes the clock model. The last user message may override both
// per answer with the words "tokens=N" and "tps=R" (and "prose=K", see
// [Clock]), so that one server can run answers of different shapes.
type ClockConfig struct {
	TokensPerSecond float64 // default 100 when <= 0
	Tokens          int     // reply length in tokens; default 200 when <= 0
}

// Clock is an offline model for load tests: every token it streams carries
// its sequence number and the wall-clock time it was emitted, written as one
// word "c<seq>n<unix microseconds>" (letters and digits only, so Markdown
// leaves it untouched). A viewer that finds the word in a frame knows how long
// the token took to reach it, and the sequence numbers in the final text show
// any gap or duplicate. [ScanClock] reads the words back.
//
// The reply is shaped as Markdown: a heading, paragraphs, bulleted lists and
// fenced code blocks, so that it exercises block splitting like a real answer.
// With "prose=K" in the last user message only every K-th token is a clock
// word and the others are short English words, so that the bytes per token
// are those of ordinary text.
type Clock struct {
	tokensPerSecond float64
	tokens          int
	now             func() time.Time
}

// NewClock returns a clock model, filling in defaults for unset fields.
func NewClock(cfg ClockConfig) *Clock {
	c := &Clock{tokensPerSecond: cfg.TokensPerSecond, tokens: cfg.Tokens, now: time.Now}
	if c.tokensPerSecond <= 0 {
		c.tokensPerSecond = 100
	}
	if c.tokens <= 0 {
		c.tokens = 200
	}
	return c
}

// Name returns "clock".
func (c *Clock) Name() string { return "clock" }

// Models returns the clock's one model, "clock".
func (c *Clock) Models(context.Context) ([]string, error) { return []string{c.Name()}, nil }

// Limits on what a prompt may ask of the clock model.
const (
	clockMaxTokens = 1_000_000
	clockMaxRate   = 1_000_000
)

// clockParams is the shape of one reply.
type clockParams struct {
	tokens int
	rate   float64
	prose  int // every prose-th token is a clock word; 1 means all of them
}

// params reads the per-answer overrides from the prompt.
func (c *Clock) params(prompt string) clockParams {
	p := clockParams{tokens: c.tokens, rate: c.tokensPerSecond, prose: 1}
	for _, f := range strings.Fields(prompt) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "tokens":
			if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= clockMaxTokens {
				p.tokens = n
			}
		case "tps":
			if r, err := strconv.ParseFloat(v, 64); err == nil && r > 0 && r <= clockMaxRate {
				p.rate = r
			}
		case "prose":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				p.prose = n
			}
		}
	}
	return p
}

// Stream emits the reply token by token at the configured pace. Each clock
// word is stamped just before it is emitted.
func (c *Clock) Stream(ctx context.Context, req Request, emit func(text string) error) (Finish, error) {
	if req.Model != "" && req.Model != c.Name() {
		return "", unknownModel(req.Model)
	}
	p := c.params(lastUserMessage(req.Messages))
	var tick <-chan time.Time
	if interval := time.Duration(float64(time.Second) / p.rate); interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	var l clockLayout
	var buf []byte
	for i := range p.tokens {
		if i > 0 && tick != nil {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("clock stream: %w", ctx.Err())
			case <-tick:
			}
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("clock stream: %w", err)
		}
		prefix, suffix := l.next(i == p.tokens-1)
		buf = append(buf[:0], prefix...)
		if i%p.prose == 0 {
			buf = AppendClock(buf, int64(i), c.now())
		} else {
			buf = append(buf, proseWords[i%len(proseWords)]...)
		}
		buf = append(buf, suffix...)
		if err := emit(string(buf)); err != nil {
			return "", err
		}
	}
	return FinishStop, nil
}

// proseWords fill the tokens between clock words in prose mode.
var proseWords = [...]string{"the", "answer", "keeps", "growing", "while", "people", "read", "it", "and", "more", "words", "arrive"}

// AppendClock appends the clock word of token seq emitted at t.
func AppendClock(b []byte, seq int64, t time.Time) []byte {
	b = append(b, 'c')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, 'n')
	return strconv.AppendInt(b, t.UnixMicro(), 10)
}

// ScanClock calls fn for every clock word in b (HTML or text), in order, with
// its sequence number and emission time in Unix microseconds. A clock word is
// "c", digits, "n", digits, neither preceded nor followed by a letter or digit.
func ScanClock(b []byte, fn func(seq, micros int64)) {
	for i := 0; i < len(b); i++ {
		if b[i] != 'c' || (i > 0 && isAlnum(b[i-1])) {
			continue
		}
		j := i + 1
		seq, j, ok := digitsAt(b, j)
		if !ok || j >= len(b) || b[j] != 'n' {
			continue
		}
		micros, k, ok := digitsAt(b, j+1)
		if !ok || (k < len(b) && isAlnum(b[k])) {
			continue
		}
		fn(seq, micros)
		i = k - 1
	}
}

// digitsAt reads a decimal number of 1 to 18 digits starting at b[i].
func digitsAt(b []byte, i int) (n int64, end int, ok bool) {
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 18 {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	return n, i, i > start
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// clockLayout shapes the reply as Markdown blocks: a heading, then a cycle of
// paragraphs, a bulleted list and a fenced code block. next returns the text
// to put before and after the next token.
type clockLayout struct {
	block int  // blocks already ended: 0 is the heading, then the cycle
	pos   int  // tokens already in the current block
	open  bool // the current block's opening text was written
}

// The blocks of the cycle, as (kind, tokens).
type clockBlock struct {
	kind   byte // 'h' heading, 'p' paragraph, 'l' list, 'c' code
	tokens int
	per    int // tokens per list item or code line
}

var clockCycle = [...]clockBlock{
	{'p', 30, 0}, {'p', 24, 0}, {'l', 18, 6}, {'p', 30, 0}, {'c', 20, 5}, {'p', 16, 0},
}

var clockHeading = clockBlock{'h', 4, 0}

func (l *clockLayout) current() clockBlock {
	if l.block == 0 {
		return clockHeading
	}
	return clockCycle[(l.block-1)%len(clockCycle)]
}

func (l *clockLayout) next(last bool) (prefix, suffix string) {
	b := l.current()
	if !l.open {
		l.open = true
		switch b.kind {
		case 'h':
			prefix = "## "
		case 'l':
			prefix = "- "
		case 'c':
			prefix = "```\n"
		}
	} else if b.per > 0 && l.pos%b.per == 0 && b.kind == 'l' {
		prefix = "- "
	}
	l.pos++
	end := l.pos == b.tokens
	lineEnd := b.per > 0 && l.pos%b.per == 0
	switch {
	case last && b.kind == 'c':
		suffix = "\n```\n"
	case last:
		suffix = "\n"
	case end && b.kind == 'c':
		suffix = "\n```\n\n"
	case end:
		suffix = "\n\n"
	case lineEnd:
		suffix = "\n"
	default:
		suffix = " "
	}
	if end {
		l.block, l.pos, l.open = l.block+1, 0, false
	}
	return prefix, suffix
}
