package llm

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// collect runs m.Stream and returns the pieces it emitted and its error.
func collect(ctx context.Context, m Model, msgs []Message) ([]string, error) {
	pieces, _, err := collectReq(ctx, m, Request{Messages: msgs})
	return pieces, err
}

// collectReq runs m.Stream for req and returns the pieces it emitted, how
// the reply ended and its error.
func collectReq(ctx context.Context, m Model, req Request) ([]string, Finish, error) {
	var pieces []string
	finish, err := m.Stream(ctx, req, func(text string) error {
		pieces = append(pieces, text)
		return nil
	})
	return pieces, finish, err
}

func userMsgs(prompt string) []Message {
	return []Message{
		{Role: RoleSystem, Content: "You are helpful."},
		{Role: RoleUser, Content: prompt},
	}
}

func TestDemoName(t *testing.T) {
	t.Parallel()
	if got := NewDemo(DemoConfig{}).Name(); got != "demo" {
		t.Fatalf("Name() = %q, want demo", got)
	}
}

func TestDemoDeterministicAndComplete(t *testing.T) {
	t.Parallel()
	fast := DemoConfig{TokensPerSecond: 1e6}
	tests := []struct {
		name string
		cfg  DemoConfig
		msgs []Message
	}{
		{"short question", fast, userMsgs("How do I reverse a slice in Go?")},
		{"long question", fast, userMsgs(strings.Repeat("Why is the sky blue and the grass green? ", 10))},
		{"no user message", fast, []Message{{Role: RoleSystem, Content: "sys"}}},
		{"no messages", fast, nil},
		{"markdown in question", fast, userMsgs("What does `<script>` do in **HTML**?\n\n- really?")},
		{"long reply", DemoConfig{TokensPerSecond: 1e6, Tokens: 600}, userMsgs("Tell me everything.")},
		{"tiny reply", DemoConfig{TokensPerSecond: 1e6, Tokens: 5}, userMsgs("Short please.")},
		{"unpaced", DemoConfig{TokensPerSecond: 1e12}, userMsgs("As fast as possible.")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDemo(tt.cfg)
			first, err := collect(t.Context(), d, tt.msgs)
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			second, err := collect(t.Context(), NewDemo(tt.cfg), tt.msgs)
			if err != nil {
				t.Fatalf("second Stream: %v", err)
			}
			if strings.Join(first, "\x00") != strings.Join(second, "\x00") {
				t.Errorf("two streams of the same conversation differ")
			}
			reply := d.Reply(tt.msgs)
			if got := strings.Join(first, ""); got != reply {
				t.Errorf("concatenated pieces differ from Reply():\n got: %q\nwant: %q", got, reply)
			}
			if len(first) < 2 {
				t.Errorf("reply streamed in %d pieces, want many", len(first))
			}
			for i, p := range first {
				if strings.TrimSpace(p) == "" {
					t.Errorf("piece %d is only whitespace: %q", i, p)
				}
				if len(strings.Fields(p)) != 1 {
					t.Errorf("piece %d = %q, want one word plus whitespace", i, p)
				}
			}
			checkMarkdown(t, reply)
		})
	}
}

// checkMarkdown asserts the reply exercises the renderer as documented.
func checkMarkdown(t *testing.T, reply string) {
	t.Helper()
	checks := []struct {
		what string
		re   string
	}{
		{"a ## heading", `(?m)^## \S`},
		{"a bulleted list", `(?m)^- \S.*\n- \S`},
		{"a numbered list", `(?m)^1\. \S.*\n2\. \S`},
		{"a fenced go block", "(?s)\n```go\n.+\n```\n"},
		{"bold text", `\*\*[^*]+\*\*`},
		{"inline code", "[^`]`[^`\n]+`[^`]"},
		{"a closing paragraph after the code", "(?s)```\n\n.*[.!]\n$"},
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.re).MatchString(reply) {
			t.Errorf("reply has no %s:\n%s", c.what, reply)
		}
	}
}

func TestDemoEchoesQuestion(t *testing.T) {
	t.Parallel()
	d := NewDemo(DemoConfig{})
	reply := d.Reply(userMsgs("How   do I\nparse <b>JSON</b>?"))
	if !strings.Contains(reply, `"How do I parse <b>JSON</b>?"`) {
		t.Errorf("reply does not quote the question unescaped on one line:\n%s", reply)
	}
	long := strings.Repeat("word ", 100)
	if reply := d.Reply(userMsgs(long)); strings.Contains(reply, long[:200]) {
		t.Errorf("a long question is echoed in full")
	}
}

func TestDemoVaries(t *testing.T) {
	t.Parallel()
	d := NewDemo(DemoConfig{})
	prompts := []string{"a", "b", "What is Go?", "What is Rust?", "Explain TCP.", "Write a poem."}
	seen := map[string]string{}
	for _, p := range prompts {
		r := d.Reply(userMsgs(p))
		if prev, dup := seen[r]; dup {
			t.Errorf("prompts %q and %q give the same reply", prev, p)
		}
		seen[r] = p
	}
	// The number of messages is part of the seed too.
	longer := append(userMsgs("What is Go?"), Message{Role: RoleAssistant, Content: "x"}, Message{Role: RoleUser, Content: "What is Go?"})
	if d.Reply(longer) == d.Reply(userMsgs("What is Go?")) {
		t.Errorf("conversations of different lengths give the same reply")
	}
	// A regenerated answer (another variant) reads differently, the same
	// variant the same; an echo stays an echo; variant 0 is Reply's.
	req := Request{Messages: userMsgs("What is Go?")}
	first, _ := d.ReplyTo(req)
	req.Variant = 1
	second, _ := d.ReplyTo(req)
	again, _ := d.ReplyTo(req)
	if first != d.Reply(userMsgs("What is Go?")) || second == first || again != second {
		t.Errorf("variants: the first is Reply's %v, the second differs %v, is stable %v", first == d.Reply(userMsgs("What is Go?")), second != first, again == second)
	}
	if echo, _ := d.ReplyTo(Request{Messages: userMsgs("[[echo]]same"), Variant: 3}); echo != "same" {
		t.Errorf("an echo's variant 3 is %q", echo)
	}
}

func TestDemoLength(t *testing.T) {
	t.Parallel()
	for _, tokens := range []int{120, 400, 1000} {
		reply := NewDemo(DemoConfig{Tokens: tokens}).Reply(userMsgs("Tell me a story."))
		n := len(splitPieces(reply))
		if n < tokens || n > tokens+60 {
			t.Errorf("Tokens=%d: reply has %d pieces, want about %d", tokens, n, tokens)
		}
	}
	if n := len(splitPieces(NewDemo(DemoConfig{}).Reply(userMsgs("x")))); n < 120 {
		t.Errorf("default reply has %d pieces, want at least 120", n)
	}
}

func TestDemoPacing(t *testing.T) {
	t.Parallel()
	// 40 tokens at 400/s should take about 100ms: assert only that it is not
	// instant (pacing happens) and that it finishes (a generous bound).
	d := NewDemo(DemoConfig{TokensPerSecond: 400, Tokens: 40})
	msgs := userMsgs("pace me")
	n := len(splitPieces(d.Reply(msgs)))
	start := time.Now()
	if _, err := collect(t.Context(), d, msgs); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	elapsed := time.Since(start)
	if min := time.Duration(n-1) * time.Second / 400 / 2; elapsed < min {
		t.Errorf("%d pieces at 400/s took %v, want at least %v", n, elapsed, min)
	}
	if elapsed > 10*time.Second {
		t.Errorf("%d pieces at 400/s took %v", n, elapsed)
	}
}

func TestDemoCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		prompt string
		rate   float64
	}{
		{"paced", "hello", 5},
		{"slow marker", "hello [[slow]]", 1e6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDemo(DemoConfig{TokensPerSecond: tt.rate})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var got int
			done := make(chan error, 1)
			go func() {
				_, err := d.Stream(ctx, Request{Messages: userMsgs(tt.prompt)}, func(string) error {
					got++
					if got == 1 {
						cancel()
					}
					return nil
				})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Stream after cancel = %v, want context.Canceled", err)
				}
				if got != 1 {
					t.Errorf("emitted %d pieces after cancel, want 1", got-1)
				}
			case <-time.After(time.Second):
				t.Fatal("Stream did not return within 1s of cancel")
			}
		})
	}
}

func TestDemoEmitError(t *testing.T) {
	t.Parallel()
	stop := errors.New("client went away")
	calls := 0
	_, err := NewDemo(DemoConfig{TokensPerSecond: 1e6}).Stream(t.Context(), Request{Messages: userMsgs("hi")}, func(string) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Stream = %v, want the emit error", err)
	}
	if calls != 1 {
		t.Errorf("emit called %d times after failing, want 1", calls)
	}
}

func TestDemoFail(t *testing.T) {
	t.Parallel()
	d := NewDemo(DemoConfig{TokensPerSecond: 1e6})
	msgs := userMsgs("please [[fail]] now")
	pieces, err := collect(t.Context(), d, msgs)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Stream = %v, want *Error", err)
	}
	if e.Kind != Failed || !strings.Contains(e.Message, "[[fail]]") {
		t.Errorf("error = %+v, want Kind Failed mentioning [[fail]]", e)
	}
	all := len(splitPieces(d.Reply(msgs)))
	if len(pieces) == 0 || len(pieces) >= all/2 {
		t.Errorf("emitted %d of %d pieces before failing, want about a third", len(pieces), all)
	}
	if got := strings.Join(pieces, ""); !strings.HasPrefix(d.Reply(msgs), got) {
		t.Errorf("emitted text is not a prefix of Reply()")
	}
}

// TestDemoSlow runs alone (not in parallel): its first piece must arrive
// within a 200 ms window.
func TestDemoSlow(t *testing.T) {
	// At 2 tokens/s the second piece cannot arrive within 200ms, even though
	// the configured rate is huge.
	d := NewDemo(DemoConfig{TokensPerSecond: 1e6})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	pieces, err := collect(ctx, d, userMsgs("take it easy [[slow]]"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stream = %v, want deadline exceeded", err)
	}
	if len(pieces) != 1 {
		t.Errorf("emitted %d pieces in 200ms at 2 tokens/s, want 1", len(pieces))
	}
}

func TestSplitPieces(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"one", []string{"one"}},
		{"one two", []string{"one ", "two"}},
		{"a  b\n\nc\n", []string{"a  ", "b\n\n", "c\n"}},
		{"  lead", []string{"  lead"}},
		{"x\n\t\ty", []string{"x\n\t\t", "y"}},
	}
	for _, tt := range tests {
		got := splitPieces(tt.in)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("splitPieces(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
