package render

import (
	"reflect"
	"strings"
	"testing"

	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// TestLiveMessageMatchesPage: an answer that a room builds token by token
// and then ends shows what a page of the stored answer shows, so a page and
// a frame of the same position never disagree.
func TestLiveMessageMatchesPage(t *testing.T) {
	t.Parallel()
	md := markdown.NewRenderer()
	const conv = "c"
	text := "# Title\n\nSome *text* and a list:\n\n- one\n- two\n\n```go\nfunc main() {}\n```\n\nThe end."
	tokens := strings.SplitAfter(text, " ")

	live := NewMessage(md, conv, store.Message{Index: 1, Role: "assistant", Status: store.StatusStreaming, Rev: "1-0"})
	if !live.Answer() || live.Status() != store.StatusStreaming {
		t.Fatalf("a new answer: Answer %v, Status %q", live.Answer(), live.Status())
	}
	for i, tok := range tokens {
		if first := live.Append("2-"+string(rune('0'+i%10)), tok); first < 0 || first > len(live.Blocks()) {
			t.Fatalf("Append returned block %d of %d", first, len(live.Blocks()))
		}
	}
	if _, ok := live.End("3-0", store.StatusDone, "", false); !ok {
		t.Fatal("End on an answer reported no blocks")
	}
	page := Messages(md, conv, []store.Message{{Index: 1, Role: "assistant", Status: store.StatusDone, Text: text, Rev: "3-0"}})
	if got := live.View(); !reflect.DeepEqual(got, page[0]) {
		t.Errorf("live view\n%+v\npage view\n%+v", got, page[0])
	}

	user := NewMessage(md, conv, store.Message{Index: 0, Role: "user", Status: store.StatusDone, Text: "hi *there*", Rev: "1-0"})
	if user.Answer() || user.Blocks() != nil {
		t.Error("a user message has blocks")
	}
	if _, ok := user.End("1-0", store.StatusDone, "", false); ok {
		t.Error("End on a user message reported blocks")
	}
	if got, want := user.View(), Messages(md, conv, []store.Message{{Index: 0, Role: "user", Status: store.StatusDone, Text: "hi *there*", Rev: "1-0"}})[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("user message: %+v, page %+v", got, want)
	}
}
