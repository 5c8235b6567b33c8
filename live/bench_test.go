package live

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/render"
	"github.com/parley-chat/parley/store"
)

// benchProse is Markdown as a model writes it: paragraphs and a list.
const benchProse = `Here is how to **stream** an answer to many viewers without blocking anyone.

1. Append each batch of tokens to the log and publish a notice.
2. Let each process hold *one* subscription and hand notices to rooms.
3. Render the frame once per room and write the same bytes to every viewer.

A viewer that falls behind is fast-forwarded from a snapshot, so its queue stays bounded and nobody waits for it. The log is the truth; pub/sub is only a [doorbell](https://redis.io/docs/latest/develop/interact/pubsub/).

`

// benchCode is a fenced code block of about 40 lines, which is highlighted
// as a whole each time it grows.
var benchCode = "```go\n" + strings.Repeat(`func (r *Room) broadcast(f *Frame) {
	for v := range r.viewers {
		v.offer(f) // never blocks
	}
}

`, 7) + "```\n\n"

// tokensOf splits Markdown into tokens as a model sends them: words with
// their trailing space or newline.
func tokensOf(md string) []string {
	var out []string
	for _, line := range strings.SplitAfter(md, "\n") {
		out = append(out, strings.SplitAfter(line, " ")...)
	}
	return out
}

// BenchmarkRenderPatch is a room's work for one batch of text (one token
// here): apply the delta to the answer's Markdown document and render the
// frame that patches the blocks that changed, normally only the growing one.
// The answer starts afresh every 2,000 tokens, a long answer, so the figure
// is per token of answers of realistic length. "prose" grows paragraphs and
// lists; "code" grows fenced code blocks, which are re-highlighted as a
// whole on every token.
func BenchmarkRenderPatch(b *testing.B) {
	for _, c := range []struct{ name, text string }{{"prose", benchProse}, {"code", benchCode}} {
		b.Run(c.name, func(b *testing.B) { benchRenderPatch(b, tokensOf(c.text)) })
	}
}

func benchRenderPatch(b *testing.B, tokens []string) {
	md := markdown.NewRenderer()
	h := &Hub{md: md, log: slog.New(slog.NewTextHandler(io.Discard, nil)), ctx: context.Background()}
	conv := store.NewID()
	r := newRoom(h, conv)
	v := &viewer{queue: make(chan *Frame, 1), kick: make(chan struct{}, 1)}
	r.viewers[v] = struct{}{}
	last := store.ID{Ms: 1}
	fresh := func() {
		if r.state != nil {
			last = r.state.last
		}
		r.state = &convState{last: last, msgs: []*render.Message{
			render.NewMessage(md, conv, store.Message{Index: 0, Role: "user", Status: store.StatusDone, Text: "How?"}),
			render.NewMessage(md, conv, store.Message{Index: 1, Role: "assistant", Status: store.StatusStreaming}),
		}}
	}
	fresh()
	var bytes, n int
	b.ReportAllocs()
	for b.Loop() {
		if n%2000 == 1999 {
			fresh()
		}
		from := r.state.last
		id := store.ID{Ms: from.Ms, Seq: from.Seq + 1}
		ch := newChanges()
		ev := store.Event{ID: id.String(), Type: store.EventDelta, Msg: 1, Text: tokens[n%len(tokens)]}
		if !r.state.apply(r, ev, ch) {
			b.Fatal("delta did not apply")
		}
		r.state.last = id
		r.emit(from, ch)
		bytes += len((<-v.queue).Data)
		n++
	}
	b.ReportMetric(float64(bytes)/float64(n), "frame-bytes/op")
}

// countStream is a viewer's connection that discards what it is given and
// counts the writes of one frame's bytes.
type countStream struct {
	want  []byte
	count *atomic.Int64
	done  chan struct{}
	of    int64
}

func (s countStream) Write(p []byte) error {
	if w := s.want; len(p) > 0 && len(p) == len(w) && &p[0] == &w[0] {
		if s.count.Add(1) == s.of {
			s.done <- struct{}{}
		}
	}
	return nil
}

func (countStream) Flush() error { return nil }

// BenchmarkFanOut is one frame given to a room of N viewers, until every
// viewer has written it to its connection (here one that discards): the
// room's offer to each queue, each viewer goroutine waking, its metering and
// its write. ns/viewer is the cost the hub adds per viewer and frame; a real
// socket write and flush comes on top.
func BenchmarkFanOut(b *testing.B) {
	srv := testredis.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 64})
	defer rdb.Close()
	st := store.New(rdb, store.Config{LogMaxLen: 1000, LeaseTTL: time.Minute, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewHub(rdb, st, markdown.NewRenderer(), log, Config{
		ViewerQueue: 64, MaxViewers: 100000, Heartbeat: time.Hour, SubscribeTimeout: 30 * time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()

	// A typical patch: one growing paragraph block.
	data := frame.Merge("1-1", `<div id="m-1-b-3" class="block"><p>`+strings.Repeat("word ", 50)+`</p></div>`)

	for _, n := range []int{1, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			conv := store.NewID()
			if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true}); err != nil {
				b.Fatal(err)
			}
			snap, err := st.Snapshot(ctx, conv, store.ID{})
			if err != nil {
				b.Fatal(err)
			}
			s := countStream{want: data, count: &atomic.Int64{}, done: make(chan struct{}, 1), of: int64(n)}
			vctx, stop := context.WithCancel(ctx)
			var opened atomic.Int64
			for range n {
				go func() {
					_ = h.Watch(vctx, conv, snap.Last, WatchOptions{}, func() (Stream, error) { opened.Add(1); return s, nil })
				}()
			}
			deadline := time.Now().Add(60 * time.Second)
			for opened.Load() != int64(n) {
				if time.Now().After(deadline) {
					b.Fatal("viewers did not join")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Let the joins' first writes, and the presence count they
			// cause (debounced), go out before the clock starts.
			time.Sleep(presenceDelay(n) + 250*time.Millisecond)
			h.mu.Lock()
			r := h.rooms[conv]
			h.mu.Unlock()

			from := snap.Last
			b.ReportAllocs()
			for b.Loop() {
				id := store.ID{Ms: from.Ms, Seq: from.Seq + 1}
				s.count.Store(0)
				r.broadcast(&Frame{From: from, ID: id, Data: data})
				<-s.done
				from = id
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/viewer")
			b.StopTimer()
			stop()
			for h.Stats().Viewers != 0 {
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
