package live

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
)

// gzipTestStream is a gzip Stream into a pipe, optionally slow to write.
type gzipTestStream struct {
	w    *io.PipeWriter
	slow time.Duration
}

func (s gzipTestStream) Write(p []byte) error {
	if s.slow > 0 {
		time.Sleep(time.Duration(rand.Int64N(int64(s.slow))))
	}
	_, err := s.w.Write(p)
	return err
}
func (s gzipTestStream) Flush() error { return nil }
func (s gzipTestStream) Gzip() bool   { return true }

// TestGzipStreamsUnderStress runs 40 gzip viewers against a real room: a
// queue of 3 (so fast-forwards), a heartbeat every 3 ms, slow writers and
// slow readers, late joiners with random old cursors, viewers leaving early,
// 1,500 appends with code blocks, then a delete. Every stream must decode
// with compress/gzip, which checks the CRC and length at its end: a frame
// ever compressed against bytes its viewer was not sent would corrupt it.
func TestGzipStreamsUnderStress(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb, store.Config{LogMaxLen: 100000, LeaseTTL: time.Minute, MaxAnswerBytes: 16 << 20, IdempotencyTTL: time.Hour})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewHub(rdb, st, markdown.NewRenderer(), log, Config{ViewerQueue: 3, MaxViewers: 1000, Heartbeat: 3 * time.Millisecond, SubscribeTimeout: 5 * time.Second, RoomWritesPerSecond: 0})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()

	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ids []store.ID
	var wg sync.WaitGroup
	var failures, ended, okCount int
	immortal := 0 // viewers that stay to the end: each must end cleanly
	startViewer := func(cursor store.ID, slow time.Duration, readSlow bool, life time.Duration) {
		if life == 0 {
			immortal++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			var dec bytes.Buffer
			go func() {
				zr, err := gzip.NewReader(pr)
				if err != nil {
					done <- err
					return
				}
				buf := make([]byte, 512)
				for {
					if readSlow {
						time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
					}
					n, err := zr.Read(buf)
					dec.Write(buf[:n])
					if err == io.EOF {
						done <- nil
						return
					}
					if err != nil {
						done <- err
						io.Copy(io.Discard, pr)
						return
					}
				}
			}()
			vctx, vcancel := context.WithCancel(ctx)
			if life > 0 {
				time.AfterFunc(life, vcancel)
			}
			defer vcancel()
			var gotEnd bool
			err := h.Watch(vctx, conv, cursor, WatchOptions{}, func() (Stream, error) { return gzipTestStream{w: pw, slow: slow}, nil })
			gotEnd = vctx.Err() == nil
			pw.Close()
			rerr := <-done
			mu.Lock()
			defer mu.Unlock()
			if gotEnd && err == nil {
				ended++
				if rerr != nil {
					failures++
					t.Errorf("viewer (cursor %v slow %v): decode: %v (decoded %d bytes)", cursor, slow, rerr, dec.Len())
				} else if !strings.Contains(dec.String(), "datastar") {
					t.Errorf("decoded nothing useful")
				} else {
					okCount++
				}
			} else if rerr != nil && rerr != io.ErrUnexpectedEOF && !strings.Contains(rerr.Error(), "unexpected EOF") {
				failures++
				t.Errorf("cut viewer: decode: %v", rerr)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 6 {
		startViewer(store.ID{}, 0, false, 0)
	}
	for range 4 {
		startViewer(store.ID{}, 2*time.Millisecond, true, 0)
	}
	waitUntil(t, "the first viewers in the room", func() bool { return roomViewers(h, conv) == 10 })
	// A plain viewer that says how far the room's frames have come.
	marker := &recordStream{}
	wg.Go(func() {
		_ = h.Watch(ctx, conv, store.ID{}, WatchOptions{}, func() (Stream, error) { return marker, nil })
	})
	offset := 0
	for i := range 1500 {
		word := fmt.Sprintf("w%d ", i)
		switch rng.IntN(20) {
		case 0:
			word += "\n\n"
		case 1:
			word += "\n\n```go\nfunc x() {}\n"
		case 2:
			word += "\n```\n\n"
		}
		r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: word, Offset: offset, Got: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		offset = r.Length
		if pid, err := store.ParseID(r.ID); err == nil {
			ids = append(ids, pid)
		}
		if i%50 == 0 {
			var cur store.ID
			if len(ids) > 10 {
				cur = ids[rng.IntN(len(ids))]
			}
			startViewer(cur, time.Duration(rng.IntN(3))*time.Millisecond, rng.IntN(2) == 0, 0)
			startViewer(cur, 0, false, time.Duration(rng.IntN(300))*time.Millisecond)
		}
		if rng.IntN(3) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	waitUntil(t, "the room's frames to reach the last append", func() bool {
		marker.mu.Lock()
		defer marker.mu.Unlock()
		return len(ids) > 0 && marker.last == ids[len(ids)-1].String()
	})
	if err := st.Delete(ctx, conv, testOwner); err != nil {
		t.Fatal(err)
	}
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(60 * time.Second):
		t.Fatal("viewers did not end")
	}
	s := h.Stats()
	t.Logf("ended cleanly %d, decoded ok %d, failures %d; stats %+v", ended, okCount, failures, s)
	if ended < immortal || okCount != ended {
		t.Errorf("%d viewers stayed to the end, %d of them ended cleanly and %d decoded", immortal, ended, okCount)
	}
	if s.FastForwards == 0 {
		t.Error("no viewer was fast-forwarded: the test does not cover the gap paths")
	}
}
