package live

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

func TestFrameGap(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		viewers, writes int
		want            time.Duration
	}{
		{1, 50000, 20 * time.Microsecond},
		{1000, 50000, 20 * time.Millisecond},
		{5000, 50000, 100 * time.Millisecond},
		{10000, 50000, 200 * time.Millisecond},
		{100000, 50000, maxFrameGap},
		{5000, 0, 0},
	} {
		if got := frameGap(c.viewers, c.writes); got != c.want {
			t.Errorf("frameGap(%d, %d) = %v, want %v", c.viewers, c.writes, got, c.want)
		}
	}
}

// TestCrowdGetsFewerFrames appends to an answer every 5 ms for a second and
// counts the frames a viewer gets: with a writes budget that gives the room
// a 100 ms gap, about ten frames carry all of the text; without one, about
// one per append (the bounds scale with the time the appends take). Either
// way the viewer reaches the last event.
func TestCrowdGetsFewerFrames(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb, store.Config{LogMaxLen: 100000, LeaseTTL: time.Minute, MaxAnswerBytes: 16 << 20, IdempotencyTTL: time.Hour})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	for _, c := range []struct {
		name      string
		writes    int
		minFrames int
		maxFrames int
	}{
		{"no spacing", 0, 60, 1000},
		{"one viewer, 10 writes a second", 10, 5, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := NewHub(rdb, st, markdown.NewRenderer(), log, Config{ViewerQueue: 1024, MaxViewers: 10, Heartbeat: time.Hour,
				SubscribeTimeout: 5 * time.Second, RoomWritesPerSecond: c.writes})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = h.Run(ctx) }()

			conv := store.NewID()
			res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordStream{}
			go func() { _ = h.Watch(ctx, conv, store.ID{}, WatchOptions{}, func() (Stream, error) { return rec, nil }) }()
			waitFor(t, func() bool { return roomViewers(h, conv) == 1 && h.Stats().Frames >= 1 })
			rec.mu.Lock()
			before := rec.n
			rec.mu.Unlock()

			offset := 0
			var want strings.Builder
			start := time.Now()
			for i := range 200 {
				word := "w" + strings.Repeat("x", i%7) + " "
				if r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: word, Offset: offset, Got: time.Now()}); err != nil {
					t.Fatal(err)
				} else {
					offset = r.Length
				}
				want.WriteString(word)
				time.Sleep(5 * time.Millisecond) // the pace of a generation: what is tested
			}
			last, err := st.Snapshot(ctx, conv, store.ID{})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return rec.last == last.Last.String()
			})
			took := time.Since(start)
			rec.mu.Lock()
			frames := rec.n - before
			rec.mu.Unlock()
			// The bounds are for the second the appends take; on a loaded
			// machine they take longer, and the gap allows more frames.
			limit := int(float64(c.maxFrames) * max(1, took.Seconds()))
			t.Logf("%d frames for 200 appends over %v", frames, took.Round(time.Millisecond))
			if frames < c.minFrames || frames > limit {
				t.Errorf("%d frames, want %d to %d", frames, c.minFrames, limit)
			}
		})
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
