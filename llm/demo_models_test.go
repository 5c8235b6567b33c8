package llm

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDemoModels(t *testing.T) {
	t.Parallel()
	d := NewDemo(DemoConfig{TokensPerSecond: 1e6, Tokens: 200})
	got, err := d.Models(t.Context())
	if err != nil || !slices.Equal(got, []string{"demo", "demo-brief"}) {
		t.Fatalf("Models = %q, %v; want demo, demo-brief", got, err)
	}
	msgs := userMsgs("How do I reverse a slice in Go?")
	full, finish, err := collectReq(t.Context(), d, Request{Model: "demo", Messages: msgs})
	if err != nil || finish != FinishStop || strings.Join(full, "") != d.Reply(msgs) {
		t.Fatalf("demo: Stream = %q, %v; want Reply(msgs), stop", finish, err)
	}
	brief, finish, err := collectReq(t.Context(), d, Request{Model: "demo-brief", Messages: msgs})
	if err != nil || finish != FinishStop {
		t.Fatalf("demo-brief: Stream = %q, %v", finish, err)
	}
	want, err := d.ReplyTo(Request{Model: "demo-brief", Messages: msgs})
	if err != nil || strings.Join(brief, "") != want {
		t.Errorf("demo-brief streamed %q, want ReplyTo's %q (%v)", strings.Join(brief, ""), want, err)
	}
	if len(brief) == 0 || len(brief) > len(full)/4 {
		t.Errorf("demo-brief sent %d pieces and demo %d; want the brief one much shorter", len(brief), len(full))
	}
	if !strings.Contains(want, "reverse a slice") {
		t.Errorf("brief reply %q does not quote the question", want)
	}

	_, _, err = collectReq(t.Context(), d, Request{Model: "gpt-4o", Messages: msgs})
	var e *Error
	if !errors.As(err, &e) || e.Kind != BadRequest || e.Message != `the model "gpt-4o" is not available` {
		t.Errorf("unknown model: Stream = %v, want BadRequest naming it", err)
	}
}

// TestDemoLength checks the [[length]] marker, and that going on with the
// cut answer gives exactly the rest of it.
func TestDemoLengthAndGoingOn(t *testing.T) {
	t.Parallel()
	d := NewDemo(DemoConfig{TokensPerSecond: 1e6})
	msgs := userMsgs("explain it all [[length]]")
	whole := d.Reply(msgs)
	first, finish, err := collectReq(t.Context(), d, Request{Messages: msgs})
	if err != nil || finish != FinishLength {
		t.Fatalf("Stream = %q, %v; want length", finish, err)
	}
	done := strings.Join(first, "")
	all := len(splitPieces(whole))
	if !strings.HasPrefix(whole, done) || len(first) < all/3 || len(first) > all*2/3 {
		t.Fatalf("emitted %d of %d pieces, want about half, a prefix of Reply", len(first), all)
	}

	goOn := append(slices.Clone(msgs), Message{Role: RoleAssistant, Content: done})
	rest, finish, err := collectReq(t.Context(), d, Request{Messages: goOn})
	if err != nil || finish != FinishStop {
		t.Fatalf("going on: Stream = %q, %v; want stop", finish, err)
	}
	if got := done + strings.Join(rest, ""); got != whole {
		t.Errorf("the answer and its continuation = %q, want Reply %q", got, whole)
	}

	// Parley's Continue sends the cut answer and then ContinueText.
	asked := append(slices.Clone(goOn), Message{Role: RoleUser, Content: ContinueText})
	rest, finish, err = collectReq(t.Context(), d, Request{Messages: asked})
	if err != nil || finish != FinishStop {
		t.Fatalf("continue: Stream = %q, %v; want stop", finish, err)
	}
	if got := done + strings.Join(rest, ""); got != whole {
		t.Errorf("the answer and what Continue added = %q, want Reply %q", got, whole)
	}
	// After a whole answer the same words are a question like any other.
	after := append(slices.Clone(msgs), Message{Role: RoleAssistant, Content: whole}, Message{Role: RoleUser, Content: ContinueText})
	if got := d.Reply(after); !strings.Contains(got, "Continue exactly") {
		t.Errorf("ContinueText after a whole answer got %q, want a fresh reply quoting it", got)
	}
}

func TestClockModels(t *testing.T) {
	t.Parallel()
	c := NewClock(ClockConfig{TokensPerSecond: 1e6, Tokens: 5})
	if got, err := c.Models(t.Context()); err != nil || !slices.Equal(got, []string{"clock"}) {
		t.Errorf("Models = %q, %v; want clock", got, err)
	}
	if _, finish, err := collectReq(t.Context(), c, Request{Model: "clock", Messages: userMsgs("go")}); err != nil || finish != FinishStop {
		t.Errorf("Stream = %q, %v; want stop", finish, err)
	}
	var e *Error
	if _, _, err := collectReq(t.Context(), c, Request{Model: "demo", Messages: userMsgs("go")}); !errors.As(err, &e) || e.Kind != BadRequest {
		t.Errorf("Stream of another model = %v, want BadRequest", err)
	}
}
