package llm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DemoConfig tunes the demo model.
type DemoConfig struct {
	TokensPerSecond float64 // default 30 when <= 0
	Tokens          int     // approximate reply length in tokens (words/pieces); default 120 when <= 0
}

// Demo is an offline model that streams canned but varied Markdown, so the
// service can be developed, demonstrated and load tested without a provider.
//
// Its reply depends only on the conversation (a hash of the last user message
// and the number of messages) and on the request's Variant (a regenerated
// answer reads differently), so the same request always gets the same reply,
// byte for byte; [Demo.Reply] returns the first variant in full. The reply contains a
// heading, a paragraph quoting the question, a bulleted and a numbered list, a
// fenced Go code block, bold and inline code, and a closing paragraph,
// stretched to about DemoConfig.Tokens pieces.
//
// It serves two models (see [Demo.Models]): "demo", the default, and
// "demo-brief", the same engine answering in a tenth of the tokens: one
// paragraph.
//
// Three markers in the last user message exercise the other endings:
//
//   - [[fail]]: the demo emits about a third of the reply, then returns an
//     *Error of kind Failed.
//   - [[length]]: the demo emits about half of the reply and ends with
//     FinishLength, as a model at its length limit does.
//   - [[slow]]: the demo paces at 2 tokens per second, whatever the config.
//
// A conversation that ends with an assistant message that begins the reply
// the demo gives to the conversation before it, or with such a message and
// then [ContinueText] (as Parley's Continue asks), is asked to go on: the
// demo streams the rest of that reply, and markers have no effect.
//
// Two directives at the very start of the last user message choose the reply
// instead, for tests that need to know what the model says:
//
//   - "[[echo]]": the reply is the rest of the message, byte for byte (so a
//     test can make the "model" return hostile Markdown). Markers in the
//     echoed text are part of the text and have no effect.
//   - "[[long N]]": the reply is about N pieces of varied Markdown, section
//     after section of headings, paragraphs, lists and fenced code in several
//     languages, as a long real answer would be.
type Demo struct {
	tokensPerSecond float64
	tokens          int
}

// NewDemo returns a demo model, filling in defaults for unset fields.
func NewDemo(cfg DemoConfig) *Demo {
	d := &Demo{tokensPerSecond: cfg.TokensPerSecond, tokens: cfg.Tokens}
	if d.tokensPerSecond <= 0 {
		d.tokensPerSecond = 30
	}
	if d.tokens <= 0 {
		d.tokens = 120
	}
	return d
}

// The demo's models.
const (
	demoModel      = "demo"
	demoBriefModel = "demo-brief"
)

// Name returns "demo".
func (d *Demo) Name() string { return demoModel }

// Models returns the demo's two models, "demo" and "demo-brief".
func (d *Demo) Models(context.Context) ([]string, error) {
	return []string{demoModel, demoBriefModel}, nil
}

// The markers that switch the demo into its other endings.
const (
	demoFailMarker   = "[[fail]]"
	demoLengthMarker = "[[length]]"
	demoSlowMarker   = "[[slow]]"
	demoSlowRate     = 2
)

// The directives that choose the reply; see [Demo].
const (
	demoEchoDirective = "[[echo]]"
	demoLongDirective = "[[long "
	// demoLongMax bounds [[long N]], so a typo cannot make the demo write
	// for hours.
	demoLongMax = 100_000
)

// longDirective reports whether prompt starts with "[[long N]]" and returns N.
func longDirective(prompt string) (int, bool) {
	rest, ok := strings.CutPrefix(prompt, demoLongDirective)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "]]")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > demoLongMax {
		return 0, false
	}
	return n, true
}

// longReply builds about n pieces of Markdown: numbered sections, each with a
// heading, paragraphs, a bulleted and a numbered list and a code block in one
// of several languages, so a long answer exercises every kind of block the
// renderer streams.
func longReply(rng *rand.Rand, txt demoText, n int) string {
	var b strings.Builder
	count := 0
	write := func(s string) {
		b.WriteString(s)
		count += len(strings.Fields(s))
	}
	for section := 1; count < n; section++ {
		write(fmt.Sprintf("## %d. %s\n\n", section, pick(rng, txt.titles)))
		write(fmt.Sprintf("%s %s\n\n", pick(rng, txt.fillers), pick(rng, txt.fillers)))
		for _, item := range pickN(rng, txt.bullets, 3) {
			write("- " + item + "\n")
		}
		write("\n")
		for i, step := range pickN(rng, txt.steps, 3) {
			write(fmt.Sprintf("%d. %s\n", i+1, step))
		}
		snippet := txt.snippets[rng.IntN(len(txt.snippets))]
		write(fmt.Sprintf("\n%s\n\n```%s\n%s```\n\n", pick(rng, txt.fillers), snippet.lang, snippet.code))
		write(fmt.Sprintf("%s %s\n\n", pick(rng, txt.fillers), pick(rng, txt.fillers)))
	}
	write(pick(rng, txt.closings) + "\n")
	return b.String()
}

// Stream emits ReplyTo(req) piece by piece at the configured pace. See
// [Demo] for the markers, the directives and going on.
func (d *Demo) Stream(ctx context.Context, req Request, emit func(text string) error) (Finish, error) {
	text, err := d.ReplyTo(req)
	if err != nil {
		return "", err
	}
	prompt := lastUserMessage(req.Messages)
	pieces := splitPieces(text)

	// Markers inside echoed text are data, not instructions; and going on
	// ends the answer the markers cut short.
	_, echo := strings.CutPrefix(prompt, demoEchoDirective)
	_, _, on := goingOn(req.Messages)
	markers := !echo && !on
	rate := d.tokensPerSecond
	if markers && strings.Contains(prompt, demoSlowMarker) {
		rate = demoSlowRate
	}
	fail := markers && strings.Contains(prompt, demoFailMarker)
	length := markers && !fail && strings.Contains(prompt, demoLengthMarker)
	switch {
	case fail:
		pieces = pieces[:max(1, len(pieces)/3)]
	case length:
		pieces = pieces[:max(1, len(pieces)/2)]
	}

	// A ticker keeps a steady pace even when emit takes a while; at rates too
	// high to tick we emit as fast as the receiver takes the pieces.
	var tick <-chan time.Time
	if interval := time.Duration(float64(time.Second) / rate); interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for i, piece := range pieces {
		if i > 0 && tick != nil {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("demo stream: %w", ctx.Err())
			case <-tick:
			}
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("demo stream: %w", err)
		}
		if err := emit(piece); err != nil {
			return "", err
		}
	}
	switch {
	case fail:
		return "", &Error{
			Kind:    Failed,
			Message: "the demo model failed on purpose ([[fail]] in the prompt)",
			Err:     errors.New("demo: [[fail]] marker in the last user message"),
		}
	case length:
		return FinishLength, nil
	}
	return FinishStop, nil
}

// Reply returns the full reply the "demo" model streams for msgs. It is
// deterministic: the same conversation always gives the same text.
func (d *Demo) Reply(msgs []Message) string {
	text, _ := d.ReplyTo(Request{Messages: msgs})
	return text
}

// ReplyTo returns the full reply the demo streams for req: deterministic,
// like Reply, for either model. An unknown model is an *Error of kind
// BadRequest.
func (d *Demo) ReplyTo(req Request) (string, error) {
	brief := false
	switch req.Model {
	case "", demoModel:
	case demoBriefModel:
		brief = true
	default:
		return "", unknownModel(req.Model)
	}
	msgs := req.Messages
	if before, done, ok := goingOn(msgs); ok {
		// A whole reply has nothing to go on with (a person may type
		// ContinueText): the demo answers afresh.
		if full := d.reply(before, brief, req.Variant); len(done) < len(full) && strings.HasPrefix(full, done) {
			return full[len(done):], nil
		}
	}
	return d.reply(msgs, brief, req.Variant), nil
}

// goingOn reports whether msgs asks the model to go on with an answer:
// they end with it (an assistant message), or with it and ContinueText.
// It returns the messages before that answer, and its text.
func goingOn(msgs []Message) (before []Message, done string, ok bool) {
	n := len(msgs)
	if n > 1 && msgs[n-1].Role == RoleUser && msgs[n-1].Content == ContinueText {
		n--
	}
	if n == 0 || msgs[n-1].Role != RoleAssistant {
		return nil, "", false
	}
	return msgs[:n-1], msgs[n-1].Content, true
}

// unknownModel is the error for a Request naming a model that is not served.
func unknownModel(name string) *Error {
	return &Error{
		Kind:    BadRequest,
		Message: fmt.Sprintf("the model %q is not available", name),
		Err:     fmt.Errorf("unknown model %q", name),
	}
}

// reply is the demo's reply to msgs, or the brief one's, in its variant.
func (d *Demo) reply(msgs []Message, brief bool, variant int) string {
	prompt := lastUserMessage(msgs)
	if rest, ok := strings.CutPrefix(prompt, demoEchoDirective); ok {
		return rest
	}
	h := fnv.New64a()
	h.Write([]byte(prompt))
	// Variant 0 keeps the seed it always had.
	seed := h.Sum64() ^ uint64(variant)*0x9e3779b97f4a7c15
	rng := rand.New(rand.NewPCG(seed, uint64(len(msgs))))
	txt := newDemoText()
	if n, ok := longDirective(prompt); ok {
		return longReply(rng, txt, n)
	}
	if brief {
		return briefReply(rng, txt, prompt, max(1, d.tokens/10))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", pick(rng, txt.titles))
	fmt.Fprintf(&b, "Your question was \"%s\", and %s\n\n", quote(prompt), pick(rng, txt.intros))
	for _, item := range pickN(rng, txt.bullets, 3+rng.IntN(2)) {
		fmt.Fprintf(&b, "- %s\n", item)
	}
	b.WriteString("\n")
	for i, step := range pickN(rng, txt.steps, 3) {
		fmt.Fprintf(&b, "%d. %s\n", i+1, step)
	}
	fmt.Fprintf(&b, "\n%s\n\n```go\n%s```\n\n", pick(rng, txt.codeIntros), pick(rng, txt.code))
	closing := pick(rng, txt.closings) + "\n"

	// Stretch with filler paragraphs until the reply reaches the target;
	// a piece is a word plus its trailing space, so counting words counts pieces.
	count := len(strings.Fields(b.String())) + len(strings.Fields(closing))
	for n := 0; count < d.tokens; n++ {
		s := pick(rng, txt.fillers)
		b.WriteString(s)
		count += len(strings.Fields(s))
		if n%3 == 2 || count >= d.tokens {
			b.WriteString("\n\n")
		} else {
			b.WriteString(" ")
		}
	}
	b.WriteString(closing)
	return b.String()
}

// briefReply is one paragraph of about n pieces (more when the question
// is long): the question, an opening, and filler up to n.
func briefReply(rng *rand.Rand, txt demoText, prompt string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Your question was \"%s\", and %s", quote(prompt), pick(rng, txt.intros))
	for count := len(strings.Fields(b.String())); count < n; {
		s := pick(rng, txt.fillers)
		b.WriteString(" " + s)
		count += len(strings.Fields(s))
	}
	b.WriteString("\n")
	return b.String()
}

// lastUserMessage returns the content of the last user message, or "" if there is none.
func lastUserMessage(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleUser {
			return msgs[i].Content
		}
	}
	return ""
}

// quote shortens the question to one line of at most 80 characters for echoing.
func quote(prompt string) string {
	q := strings.Join(strings.Fields(prompt), " ")
	if q == "" {
		return "(nothing)"
	}
	if utf8.RuneCountInString(q) > 80 {
		q = string([]rune(q)[:79]) + "…"
	}
	return q
}

// splitPieces cuts text the way a tokenizer streams it: each piece is a word
// followed by its whitespace. Joining the pieces gives back text exactly.
func splitPieces(text string) []string {
	var pieces []string
	start, word, space := 0, false, false
	for i, r := range text {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if word && space {
			pieces = append(pieces, text[start:i])
			start = i
		}
		word, space = true, false
	}
	if start < len(text) {
		pieces = append(pieces, text[start:])
	}
	return pieces
}

func pick(rng *rand.Rand, from []string) string { return from[rng.IntN(len(from))] }

// pickN returns n distinct items of from, in their original order.
func pickN(rng *rand.Rand, from []string, n int) []string {
	idx := rng.Perm(len(from))[:n]
	keep := make([]bool, len(from))
	for _, i := range idx {
		keep[i] = true
	}
	out := make([]string, 0, n)
	for i, s := range from {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out
}

// demoText holds the fragments the demo builds replies from. They are built by a
// function rather than kept in package variables so the package has no mutable globals.
type demoText struct {
	titles, intros, bullets, steps, codeIntros, code, fillers, closings []string
	// snippets are code in several languages, for [[long N]].
	snippets []demoSnippet
}

// demoSnippet is a code block and the language of its fence.
type demoSnippet struct{ lang, code string }

func newDemoText() demoText {
	return demoText{
		titles: []string{
			"A quick answer",
			"Here is how I would approach it",
			"The short version",
			"Thinking it through",
			"An overview",
			"Let's break it down",
		},
		intros: []string{
			"the answer depends a little on the details.",
			"there are a few moving parts, so let's take them one at a time.",
			"the idea is simpler than it first looks.",
			"I'll sketch the main points first and then show some code.",
			"most of the work is in getting the structure right.",
		},
		bullets: []string{
			"**Keep it simple**: start with the smallest thing that works.",
			"Measure before optimising; `pprof` will tell you where the time goes.",
			"Prefer **plain data** over clever abstractions.",
			"Handle errors where you have the context to explain them.",
			"Use `context.Context` to bound every call that can block.",
			"Write the test first when the behaviour is subtle.",
			"Name things after what they **mean**, not how they work.",
			"Log at the edges, with enough detail to act on.",
		},
		steps: []string{
			"Write down what *done* looks like.",
			"Sketch the data flowing through the system.",
			"Build the simplest version end to end.",
			"Add tests for the tricky cases.",
			"Measure it under a realistic load.",
			"Remove whatever turned out not to be needed.",
		},
		codeIntros: []string{
			"Here is a small example; run it with `go run`:",
			"In Go, that could look like this (check it with `go vet`):",
			"A minimal sketch, using only the `std` library:",
		},
		code: []string{
			"package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfor i := range 3 {\n\t\tfmt.Println(\"hello\", i)\n\t}\n}\n",
			"func sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\treturn total\n}\n",
			"ctx, cancel := context.WithTimeout(ctx, 5*time.Second)\ndefer cancel()\nif err := work(ctx); err != nil {\n\treturn fmt.Errorf(\"work: %w\", err)\n}\n",
			"type Cache struct {\n\tmu sync.Mutex\n\tm  map[string]string\n}\n\nfunc (c *Cache) Get(k string) (string, bool) {\n\tc.mu.Lock()\n\tdefer c.mu.Unlock()\n\tv, ok := c.m[k]\n\treturn v, ok\n}\n",
		},
		fillers: []string{
			"In practice the details matter more than the grand design.",
			"It helps to try the idea on a small example before committing to it.",
			"Each step should leave the system in a working state.",
			"When something surprises you, write a test that captures the surprise.",
			"The cost of a change is mostly in understanding the code around it.",
			"Small, boring pieces compose better than large, clever ones.",
			"Keep an eye on the failure cases, because users will find them first.",
			"A clear name often removes the need for a comment.",
			"Latency adds up quickly when calls are made one after another.",
			"Sometimes the best optimisation is to not do the work at all.",
		},
		snippets: []demoSnippet{
			{"go", "func sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x // add it up\n\t}\n\treturn total\n}\n"},
			{"python", "def mean(xs: list[float]) -> float:\n    \"\"\"Return the average of xs.\"\"\"\n    if not xs:\n        raise ValueError(\"empty\")\n    return sum(xs) / len(xs)\n"},
			{"javascript", "async function load(url) {\n  const res = await fetch(url, { cache: 'no-store' });\n  if (!res.ok) throw new Error(`HTTP ${res.status}`);\n  return res.json();\n}\n"},
			{"sql", "SELECT user_id, count(*) AS answers\nFROM messages\nWHERE role = 'assistant' AND created_at > now() - interval '1 day'\nGROUP BY user_id\nORDER BY answers DESC\nLIMIT 10;\n"},
			{"bash", "#!/bin/sh\nset -eu\nfor f in *.log; do\n  gzip -9 \"$f\" && echo \"packed $f\"\ndone\n"},
			{"rust", "fn main() {\n    let words = vec![\"a\", \"b\", \"c\"];\n    for (i, w) in words.iter().enumerate() {\n        println!(\"{i}: {w}\");\n    }\n}\n"},
		},
		closings: []string{
			"I hope this helps; ask again if you want **more detail** on any step.",
			"That should be **enough to get started**. Good luck!",
			"Let me know if you would like a **longer example**.",
			"**In short:** start small, measure, and iterate.",
		},
	}
}
