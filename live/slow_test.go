package live

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// stuckStream is a viewer that never reads: its first write blocks forever.
type stuckStream struct{ release chan struct{} }

func (s stuckStream) Write([]byte) error { <-s.release; return io.ErrClosedPipe }
func (s stuckStream) Flush() error       { return nil }

// recordStream keeps the id of the last frame written.
type recordStream struct {
	mu   sync.Mutex
	n    int
	last string
}

func (s *recordStream) Write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	for _, line := range strings.Split(string(p), "\n") {
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			s.last = id
		}
	}
	return nil
}
func (s *recordStream) Flush() error { return nil }

// TestSlowViewerDoesNotDelayOthers: a viewer that never reads must not slow
// the room or another viewer, and what it holds stays bounded by its queue.
// Not parallel: it measures the process's heap.
func TestSlowViewerDoesNotDelayOthers(t *testing.T) {
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb, store.Config{LogMaxLen: 100000, LeaseTTL: time.Minute, MaxAnswerBytes: 16 << 20, IdempotencyTTL: time.Hour})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const queue = 8
	h := NewHub(rdb, st, markdown.NewRenderer(), log, Config{ViewerQueue: queue, MaxViewers: 100, Heartbeat: time.Hour, SubscribeTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()

	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}

	stuck := stuckStream{release: make(chan struct{})}
	defer close(stuck.release)
	go func() {
		_ = h.Watch(ctx, conv, store.ID{}, WatchOptions{}, func() (Stream, error) { return stuck, nil })
	}()
	fast := &recordStream{}
	go func() {
		_ = h.Watch(ctx, conv, store.ID{}, WatchOptions{}, func() (Stream, error) { return fast, nil })
	}()
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Viewers != 2 || h.Stats().Rooms != 1 {
		if time.Now().After(deadline) {
			t.Fatal("viewers never joined")
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitUntil(t, "both viewers in the room, loaded", func() bool { return roomViewers(h, conv) == 2 && h.Stats().Frames >= 1 })

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const appends = 1500
	for i := range appends {
		if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "word ", Offset: i * len("word ")}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	// The fast viewer gets frames up to the last append while the other is stuck.
	deadline = time.Now().Add(20 * time.Second)
	for {
		h.mu.Lock()
		r := h.rooms[conv]
		h.mu.Unlock()
		if r != nil {
			r.mu.Lock()
			for v := range r.viewers {
				if len(v.queue) > queue {
					t.Errorf("queue grew past its bound: %d", len(v.queue))
				}
			}
			r.mu.Unlock()
		}
		snap, _ := st.Snapshot(ctx, conv, store.ID{})
		fast.mu.Lock()
		n, last := fast.n, fast.last
		fast.mu.Unlock()
		if snap != nil && last == snap.Last.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reading viewer fell behind while another viewer was stuck (frames written %d)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Fatalf("heap grew by %d bytes with a stuck viewer", grown)
	}
}

// testOwner owns the conversations the tests create.
const testOwner = "AAAAAAAAAAAAAAAAAAAAAA"
