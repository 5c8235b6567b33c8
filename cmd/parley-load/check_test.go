package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	iviewer "github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/views"
)

// answerFrames renders an answer the way the product does: a page with the
// answer's slot, then block patches as it grows (the frames a room sends).
func answerFrames(t *testing.T, words []string) (page []byte, frames [][]byte, final string) {
	t.Helper()
	render := func(blocks []string, status string) views.Message {
		return views.Message{Conv: "c", Index: 1, Role: "assistant", Status: status, Blocks: blocks}
	}
	var sb strings.Builder
	sb.WriteString(`<html><body><div id="messages">`)
	if err := views.Slot(1, []views.Message{render(nil, "streaming")}).Render(context.Background(), &sb); err != nil {
		t.Fatal(err)
	}
	sb.WriteString(`</div></body></html>`)
	page = []byte(sb.String())
	// Two words per block: each frame re-sends the growing block only.
	var blocks []string
	for i, w := range words {
		k := i / 2
		if i%2 == 0 {
			blocks = append(blocks, "<p>"+w+"</p>")
		} else {
			blocks[k] = strings.TrimSuffix(blocks[k], "</p>") + " " + w + "</p>"
		}
		var f strings.Builder
		_ = views.Blocks(1, k, blocks).Render(context.Background(), &f)
		frames = append(frames, []byte(f.String()))
	}
	var f strings.Builder
	_ = views.Foot(render(blocks, "done")).Render(context.Background(), &f)
	frames = append(frames, []byte(f.String()))
	var whole strings.Builder
	_ = views.MessageView(render(blocks, "done")).Render(context.Background(), &whole)
	d, err := iviewer.ParseDOM(strings.NewReader("<html><body>" + whole.String() + "</body></html>"))
	if err != nil {
		t.Fatal(err)
	}
	return page, frames, d.HTML(views.MessageID(1))
}

// TestCheckAnswer: the exactness check accepts exactly the frame histories
// that leave the stored answer, and counts what is missing or doubled.
func TestCheckAnswer(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var words []string
	for i := range 4 {
		words = append(words, string(llm.AppendClock(nil, int64(i), now)))
	}
	page, frames, want := answerFrames(t, words)
	tests := []struct {
		name       string
		frames     [][]byte
		exact      bool
		gaps, dups int
		err        bool
	}{
		{"every frame", frames, true, 0, 0, false},
		{"every frame twice", interleave(frames, frames), true, 0, 0, false},
		{"a growing block's earlier frame lost", append(clone(frames[:2]), frames[3:]...), true, 0, 0, false},
		{"a block's last frame lost", append(clone(frames[:1]), frames[2:]...), false, 1, 0, false},
		{"frames out of order", [][]byte{frames[1], frames[0], frames[2], frames[3], frames[4]}, false, 1, 0, false},
		{"the end lost", frames[:len(frames)-1], false, 0, 0, false},
		{"no frames", nil, false, 4, 0, false},
		{"a frame for an element the page lacks", append(clone(frames[:1]), []byte(`<p id="nowhere"></p>`)), false, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parse := func(i int) ([]*html.Node, error) { return iviewer.ParseFragments(tt.frames[i]) }
			v := checkParsed(page, len(tt.frames), parse, views.MessageID(1), want, len(words))
			if v.Exact != tt.exact || v.Gaps != tt.gaps || v.Dups != tt.dups || (v.Err != "") != tt.err {
				t.Fatalf("checkParsed = %+v, want exact %v, gaps %d, dups %d, error %v", v, tt.exact, tt.gaps, tt.dups, tt.err)
			}
		})
	}
}

func TestTokenDefects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text       string
		n          int
		gaps, dups int
	}{
		{"c0n1 c1n2 c2n3", 3, 0, 0},
		{"c0n1 c2n3", 3, 1, 0},
		{"c0n1 c1n2 c1n2 c2n3", 3, 0, 1},
		{"c0n1 c2n3 c1n2", 3, 0, 1},
		{"", 2, 2, 0},
	}
	for _, tt := range tests {
		gaps, dups := tokenDefects(tt.text, tt.n)
		if gaps != tt.gaps || dups != tt.dups {
			t.Errorf("tokenDefects(%q, %d) = %d gaps, %d dups; want %d, %d", tt.text, tt.n, gaps, dups, tt.gaps, tt.dups)
		}
	}
}

func TestPercentiles(t *testing.T) {
	t.Parallel()
	p := percentiles([]int32{4000, 1000, 3000, 2000}, 0)
	if p.P50 != 2 || p.Max != 4 || p.N != 4 {
		t.Fatalf("percentiles = %+v", p)
	}
	// Tokens never delivered count as slower than any delivered one.
	if p := percentiles([]int32{1000}, 1); p.P99 != p.P99+1 || p.P50 != 1 {
		t.Fatalf("with one undelivered token: %+v, want p99 +Inf and p50 1 ms", p)
	}
}

func TestEndStatusAndCursor(t *testing.T) {
	t.Parallel()
	c := newConv("x", 3, 1, nil)
	if st, ok := c.endStatus([]byte(`<footer id="m-3-foot" class="foot status-done" data-status="done">`)); !ok || st != "done" {
		t.Errorf("endStatus = %q, %v", st, ok)
	}
	if _, ok := c.endStatus([]byte(`<footer id="m-1-foot" class="foot" data-status="done">`)); ok {
		t.Error("endStatus read another answer's footer")
	}
	if got := pageCursor([]byte(`data-on-load="@get('/c/x/events?after=17-2', {retryMaxCount: 1})"`)); got != "17-2" {
		t.Errorf("pageCursor = %q", got)
	}
}

func clone(fs [][]byte) [][]byte { return append([][]byte(nil), fs...) }

func interleave(a, b [][]byte) [][]byte {
	var out [][]byte
	for i := range a {
		out = append(out, a[i], b[i])
	}
	return out
}

// TestParseCacheIsNotMutated: viewers that share parsed frames each get the
// same verdict; merging one viewer's frames does not change another's.
func TestParseCacheIsNotMutated(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var words []string
	for i := range 6 {
		words = append(words, string(llm.AppendClock(nil, int64(i), now)))
	}
	page, frames, want := answerFrames(t, words)
	in, cache := newInterner(), newParseCache()
	blobs := make([]*blob, len(frames))
	for i, f := range frames {
		blobs[i] = in.intern(f)
	}
	for viewer := range 3 {
		v := checkParsed(page, len(blobs), func(i int) ([]*html.Node, error) { return cache.get(blobs[i]) },
			views.MessageID(1), want, len(words))
		if !v.Exact || v.Gaps != 0 || v.Err != "" {
			t.Fatalf("viewer %d: %+v", viewer, v)
		}
	}
}
