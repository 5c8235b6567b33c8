package live

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// pipeStream writes to one end of a net.Pipe, which takes a write only when
// the other end reads it: a client that stopped reading, with real write
// deadlines.
type pipeStream struct{ c net.Conn }

func (s pipeStream) Write(p []byte) error               { _, err := s.c.Write(p); return err }
func (s pipeStream) Flush() error                       { return nil }
func (s pipeStream) SetWriteDeadline(t time.Time) error { return s.c.SetWriteDeadline(t) }

// latencies records what the hub reports as token-to-frame latency.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) TokenToFrame(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *latencies) all() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.d...)
}

func newTestHub(t *testing.T, cfg Config) (*Hub, *store.Store) {
	t.Helper()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Config{LogMaxLen: 1000, LeaseTTL: time.Minute, MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.ViewerQueue, cfg.MaxViewers, cfg.Heartbeat, cfg.SubscribeTimeout = 8, 100, time.Hour, 5*time.Second
	h := NewHub(rdb, st, markdown.NewRenderer(), log, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = h.Run(ctx) }()
	return h, st
}

// TestStalledViewerIsDropped: a viewer whose connection takes no write for
// the write timeout is disconnected and counted, instead of holding its
// stream for ever.
func TestStalledViewerIsDropped(t *testing.T) {
	t.Parallel()
	h, st := newTestHub(t, Config{WriteTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	conv := store.NewID()
	if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true}); err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	defer client.Close() // never read: the first write blocks
	done := make(chan error, 1)
	go func() {
		done <- h.Watch(ctx, conv, store.ID{}, WatchOptions{}, func() (Stream, error) { return pipeStream{server}, nil })
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a viewer that reads nothing was never dropped")
	}
	if s := h.Stats(); s.Dropped != 1 || s.Viewers != 0 {
		t.Fatalf("dropped %d, viewers %d; want 1 and 0", s.Dropped, s.Viewers)
	}
}

// TestWatchReportsTokenToFrame: a live frame's latency runs from the time
// the generation got its text (carried by the notice) to the viewer's
// flush, and what is written is counted.
func TestWatchReportsTokenToFrame(t *testing.T) {
	t.Parallel()
	var lat latencies
	h, st := newTestHub(t, Config{Observer: &lat})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	out := &recordStream{}
	go func() { _ = h.Watch(ctx, conv, snap.Last, WatchOptions{}, func() (Stream, error) { return out, nil }) }()
	deadline := time.Now().Add(10 * time.Second)
	for h.Stats().Viewers != 1 || h.Stats().FramesWritten == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the viewer never started")
		}
		time.Sleep(10 * time.Millisecond)
	}

	const age = 300 * time.Millisecond
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "old text", Got: time.Now().Add(-age)}); err != nil {
		t.Fatal(err)
	}
	for len(lat.all()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no token-to-frame latency was reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := lat.all(); len(d) != 1 || d[0] < age || d[0] > age+5*time.Second {
		t.Fatalf("latencies %v, want one of at least %v", d, age)
	}
	s := h.Stats()
	out.mu.Lock()
	writes := out.n
	out.mu.Unlock()
	if s.FramesWritten < 2 || s.BytesWritten < 100 || int64(writes) < s.FramesWritten {
		t.Fatalf("frames written %d, bytes %d, stream writes %d", s.FramesWritten, s.BytesWritten, writes)
	}
}
