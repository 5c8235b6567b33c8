package llm

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestDemoEcho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, prompt, want string
	}{
		{"text after the directive, byte for byte", "[[echo]] <script>alert(1)</script>\n\n  x  ", " <script>alert(1)</script>\n\n  x  "},
		{"multi-line Markdown", "[[echo]]```html\n<img src=x onerror=alert(1)>\n```\n", "```html\n<img src=x onerror=alert(1)>\n```\n"},
		{"markers in the echoed text are text", "[[echo]]please [[fail]] and [[slow]]", "please [[fail]] and [[slow]]"},
		{"nothing to echo", "[[echo]]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDemo(DemoConfig{TokensPerSecond: 1e6})
			msgs := userMsgs(tt.prompt)
			if got := d.Reply(msgs); got != tt.want {
				t.Fatalf("Reply = %q, want %q", got, tt.want)
			}
			// Stream with a short deadline: [[slow]] in the echoed text
			// must not slow it down to 2 tokens a second, and [[fail]]
			// must not fail it.
			pieces, err := collect(t.Context(), d, msgs)
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if got := strings.Join(pieces, ""); got != tt.want {
				t.Errorf("streamed %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDemoEchoOnlyAtStart(t *testing.T) {
	t.Parallel()
	d := NewDemo(DemoConfig{})
	if got := d.Reply(userMsgs("please [[echo]] this")); got == " this" || !strings.Contains(got, "Your question was") {
		t.Errorf("[[echo]] inside a message changed the reply to %q", got)
	}
	// Only the last user message counts.
	msgs := []Message{{Role: RoleUser, Content: "[[echo]]old"}, {Role: RoleAssistant, Content: "old"}, {Role: RoleUser, Content: "new"}}
	if got := d.Reply(msgs); got == "old" {
		t.Errorf("an earlier [[echo]] decided the reply")
	}
}

func TestDemoLong(t *testing.T) {
	t.Parallel()
	for _, n := range []int{50, 500, 2000} {
		d := NewDemo(DemoConfig{TokensPerSecond: 1e6, Tokens: 10})
		msgs := userMsgs("[[long " + strconv.Itoa(n) + "]] please")
		reply := d.Reply(msgs)
		if reply != d.Reply(msgs) {
			t.Fatalf("[[long %d]]: two replies differ", n)
		}
		pieces := splitPieces(reply)
		// A section is about 120 pieces; the reply stops after the section
		// that reaches n, plus a closing line.
		if len(pieces) < n || len(pieces) > n+200 {
			t.Errorf("[[long %d]]: %d pieces", n, len(pieces))
		}
		streamed, err := collect(t.Context(), d, msgs)
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		if strings.Join(streamed, "") != reply {
			t.Errorf("[[long %d]]: streamed text differs from Reply", n)
		}
		if n < 2000 {
			continue
		}
		// A long answer has many blocks of every kind.
		counts := []struct {
			what string
			re   string
			min  int
		}{
			{"headings", `(?m)^## \d+\. \S`, 10},
			{"bulleted lists", `(?m)^- \S.*\n- \S`, 10},
			{"numbered lists", `(?m)^1\. \S.*\n2\. \S`, 10},
			{"code blocks", "(?m)^```[a-z]+\n", 10},
			{"paragraphs", `(?m)^[A-Z][^\n]+\.\n\n`, 20},
		}
		for _, c := range counts {
			if got := len(regexp.MustCompile(c.re).FindAllString(reply, -1)); got < c.min {
				t.Errorf("[[long %d]] has %d %s, want at least %d", n, got, c.what, c.min)
			}
		}
		langs := map[string]bool{}
		for _, m := range regexp.MustCompile("(?m)^```([a-z]+)\n").FindAllStringSubmatch(reply, -1) {
			langs[m[1]] = true
		}
		if len(langs) < 4 {
			t.Errorf("[[long %d]] has code in %d languages (%v), want several", n, len(langs), langs)
		}
		if fences := len(regexp.MustCompile("(?m)^```").FindAllString(reply, -1)); fences%2 != 0 {
			t.Errorf("[[long %d]] leaves a code fence open", n)
		}
	}
}

func TestDemoLongBadDirective(t *testing.T) {
	t.Parallel()
	d := NewDemo(DemoConfig{Tokens: 100})
	for _, prompt := range []string{"[[long]]", "[[long x]]", "[[long 0]]", "[[long -5]]", "[[long 100001]]", "[[long 20"} {
		if got := d.Reply(userMsgs(prompt)); !strings.Contains(got, "Your question was") {
			t.Errorf("%q: want the ordinary reply, got %q", prompt, got)
		}
	}
}
