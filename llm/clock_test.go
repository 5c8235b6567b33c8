package llm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/markdown"
)

// TestClockReplyCarriesEveryTokenOnce: the rendered reply holds clock words
// 0..N-1 in order, stamped in non-decreasing time, whatever Markdown does to
// the text around them.
func TestClockReplyCarriesEveryTokenOnce(t *testing.T) {
	t.Parallel()
	c := NewClock(ClockConfig{TokensPerSecond: 1e6, Tokens: 10})
	var sb strings.Builder
	msgs := []Message{{Role: RoleUser, Content: "go tokens=257 tps=100000"}}
	if _, err := c.Stream(context.Background(), Request{Messages: msgs}, func(s string) error { sb.WriteString(s); return nil }); err != nil {
		t.Fatal(err)
	}
	html := markdown.NewRenderer().Render(sb.String())
	for _, want := range []string{"<h2>", "<li>", "<pre class=\"chroma\"><code>", "<p>"} {
		if !strings.Contains(html, want) {
			t.Errorf("rendered reply has no %s:\n%s", want, html)
		}
	}
	var next, last int64
	ScanClock([]byte(html), func(seq, micros int64) {
		if seq != next {
			t.Fatalf("token %d after %d", seq, next-1)
		}
		if micros < last {
			t.Fatalf("token %d stamped before the one before it", seq)
		}
		next, last = seq+1, micros
	})
	if next != 257 {
		t.Fatalf("found %d tokens in the rendered reply, want 257", next)
	}
	if d := time.Since(time.UnixMicro(last)); d < 0 || d > time.Minute {
		t.Fatalf("last token stamped %s ago", d)
	}
}

// TestClockProse: with prose=K only every K-th token is a clock word.
func TestClockProse(t *testing.T) {
	t.Parallel()
	c := NewClock(ClockConfig{TokensPerSecond: 1e6})
	var sb strings.Builder
	msgs := []Message{{Role: RoleUser, Content: "tokens=100 prose=10"}}
	if _, err := c.Stream(context.Background(), Request{Messages: msgs}, func(s string) error { sb.WriteString(s); return nil }); err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	ScanClock([]byte(sb.String()), func(seq, _ int64) { seqs = append(seqs, seq) })
	if len(seqs) != 10 || seqs[1] != 10 || seqs[9] != 90 {
		t.Fatalf("clock words %v, want every tenth token", seqs)
	}
	if n := len(strings.Fields(sb.String())); n < 100 {
		t.Fatalf("%d words, want at least 100", n)
	}
}

func TestScanClock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []int64
	}{
		{"c1n2", []int64{1, 2}},
		{"<p>c0n17 c1n18</p>", []int64{0, 17, 1, 18}},
		{"class=\"c1n2\" abc1n2 c1n2x cn2 c1n c12n5,", []int64{1, 2, 12, 5}},
		{"", nil},
	}
	for _, tt := range tests {
		var got []int64
		ScanClock([]byte(tt.in), func(seq, micros int64) { got = append(got, seq, micros) })
		if len(got) != len(tt.want) {
			t.Errorf("ScanClock(%q) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ScanClock(%q) = %v, want %v", tt.in, got, tt.want)
				break
			}
		}
	}
}
