package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

func newStore(t *testing.T, cfg store.Config) (*store.Store, *redis.Client) {
	t.Helper()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if cfg.LogMaxLen == 0 {
		cfg.LogMaxLen = 10000
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Minute
	}
	if cfg.MaxAnswerBytes == 0 {
		cfg.MaxAnswerBytes = 1 << 20
	}
	cfg.IdempotencyTTL = time.Hour
	return store.New(rdb, cfg), rdb
}

// TestNoticesChainTheLog: every write's notice carries its log entry ID and
// the entry before it, so a room can prove it missed nothing.
func TestNoticesChainTheLog(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	ps := rdb.Subscribe(ctx, store.Channel(conv))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription is confirmed
		t.Fatal(err)
	}
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []string{"a", "b", "c"} {
		if r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: w, Offset: i}); err != nil || r.Result != store.Appended {
			t.Fatalf("append: %v %v", r.Result, err)
		}
	}
	if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusDone}); err != nil {
		t.Fatal(err)
	}
	entries, err := rdb.XRange(ctx, "{c:"+conv+"}:log", "-", "+").Result()
	if err != nil || len(entries) != 5 {
		t.Fatalf("log: %d entries, %v", len(entries), err)
	}
	prev := "0-0"
	for i, e := range entries {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := store.DecodeEvent(msg.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != e.ID || ev.Prev != prev {
			t.Fatalf("notice %d: id %s prev %s, want id %s prev %s", i, ev.ID, ev.Prev, e.ID, prev)
		}
		prev = e.ID
	}
}

func TestStaleGenerationIsRefused(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: "someone-else", Text: "x"}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("append by another generation: %v", err)
	}
	if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusDone}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "late"}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("append after finish: %v", err)
	}
	if _, err := st.Renew(ctx, conv, res.Gen); !errors.Is(err, store.ErrStale) {
		t.Fatalf("renew after finish: %v", err)
	}
	snap, _ := st.Snapshot(ctx, conv, store.ID{})
	if snap.Messages[1].Text != "" {
		t.Fatalf("a refused append wrote %q", snap.Messages[1].Text)
	}
}

// TestStopBeforeTheGenerationListens: the stop is stored, so a generation
// that had not yet subscribed still sees it on its next append or renewal.
func TestStopBeforeTheGenerationListens(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	if r, err := st.Stop(ctx, store.NewID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stop of unknown conversation: %v %v", r, err)
	}
	res, _ := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if r, err := st.Stop(ctx, conv); err != nil || r != store.StopSent {
		t.Fatalf("stop: %v %v", r, err)
	}
	if stop, err := st.Renew(ctx, conv, res.Gen); err != nil || !stop {
		t.Fatalf("renew after stop: %v %v", stop, err)
	}
	if r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "x"}); err != nil || r.Result != store.StopRequested {
		t.Fatalf("append after stop: %v %v", r.Result, err)
	}
	if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusStopped}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Stop(ctx, conv); err != nil || r != store.StopIdle {
		t.Fatalf("stop when idle: %v %v", r, err)
	}
}

func TestSnapshotCursors(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{})
	ctx := context.Background()
	conv := store.NewID()
	res, _ := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "one", Key: "k1", Gen: store.NewID(), Create: true})
	st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "answer one"})
	st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusDone})
	mid, _ := st.Snapshot(ctx, conv, store.ID{})
	res2, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "two", Key: "k2", Gen: store.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	st.Append(ctx, store.AppendCall{Conv: conv, Gen: res2.Gen, Text: "answer two"})
	last, _ := st.Snapshot(ctx, conv, store.ID{})
	future, _ := store.ParseID("99999999999999-0")
	tests := []struct {
		name      string
		cursor    store.ID
		valid     bool
		from, num int
	}{
		{"no cursor", store.ID{}, false, 0, 4},
		{"the last entry", last.Last, true, 4, 0},
		{"a middle entry", mid.Last, true, 2, 2},
		{"forged", store.ID{Ms: 1}, false, 0, 4},
		{"beyond the log", future, false, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := st.Snapshot(ctx, conv, tt.cursor)
			if err != nil {
				t.Fatal(err)
			}
			if snap.CursorValid != tt.valid || snap.From != tt.from || len(snap.Messages) != tt.num {
				t.Fatalf("valid %v from %d messages %d, want %v %d %d", snap.CursorValid, snap.From, len(snap.Messages), tt.valid, tt.from, tt.num)
			}
		})
	}
	if _, err := st.Snapshot(ctx, store.NewID(), store.ID{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown conversation: %v", err)
	}
}

func TestKeysShareTheHashTagAndExpire(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t, store.Config{ConversationTTL: time.Hour})
	ctx := context.Background()
	conv := store.NewID()
	res, _ := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "x"})
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if k != "parley:gens" && !strings.HasPrefix(k, "{c:"+conv+"}:") {
			t.Errorf("key %q is outside the conversation's hash tag", k)
		}
	}
	for _, k := range []string{"meta", "msgs", "log"} {
		if ttl, _ := rdb.PTTL(ctx, "{c:"+conv+"}:"+k).Result(); ttl <= 0 {
			t.Errorf("%s has no expiry (%v)", k, ttl)
		}
	}
}

func TestAnswerSizeLimit(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{MaxAnswerBytes: 10})
	ctx := context.Background()
	conv := store.NewID()
	res, _ := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
	if r, _ := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "12345678"}); r.Result != store.Appended {
		t.Fatalf("first append: %v", r.Result)
	}
	if r, _ := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "abc", Offset: 8}); r.Result != store.Full {
		t.Fatalf("append past the limit: %v", r.Result)
	}
	snap, _ := st.Snapshot(ctx, conv, store.ID{})
	if snap.Messages[1].Text != "12345678" {
		t.Fatalf("text %q", snap.Messages[1].Text)
	}
}

// BenchmarkAppend is one batch of a generation: the append script's round
// trip. Each case starts from an answer of a given size, so a per-batch cost
// that grows with the answer shows up as a rising time per op; with the
// default flush interval an answer of 256 KB (the default size limit) takes
// thousands of batches.
func BenchmarkAppend(b *testing.B) {
	srv := testredis.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb, store.Config{LogMaxLen: 1000, LeaseTTL: time.Minute, MaxAnswerBytes: 1 << 30, IdempotencyTTL: time.Hour})
	ctx := context.Background()
	for _, size := range []int{0, 64 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("answer=%dKB", size>>10), func(b *testing.B) {
			conv := store.NewID()
			res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			offset := 0
			if size > 0 {
				r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: strings.Repeat("x", size)})
				if err != nil {
					b.Fatal(err)
				}
				offset = r.Length
			}
			b.ReportAllocs()
			calls, usec := evalshaStats(b, rdb)
			for b.Loop() {
				r, err := st.Append(ctx, store.AppendCall{Conv: conv, Gen: res.Gen, Text: "twenty bytes of text", Offset: offset})
				if err != nil {
					b.Fatal(err)
				}
				offset = r.Length
			}
			calls2, usec2 := evalshaStats(b, rdb)
			b.ReportMetric(float64(usec2-usec)/float64(calls2-calls), "redis-µs/op")
		})
	}
}

// evalshaStats reads how many scripts Redis ran and the microseconds it
// spent in them: the server's side of an append, without the round trip
// and the client, and so much steadier on a busy machine.
func evalshaStats(b *testing.B, rdb *redis.Client) (calls, usec int64) {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				calls = n
			case "usec":
				usec = n
			}
		}
	}
	return calls, usec
}

// testOwner owns the conversations the tests create.
const testOwner = "AAAAAAAAAAAAAAAAAAAAAA"

func TestConversationLengthLimit(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, store.Config{MaxMessages: 4})
	ctx := context.Background()
	conv := store.NewID()
	for i, create := range []bool{true, false} {
		res, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "hi", Key: store.NewID(), Gen: store.NewID(), Create: create})
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if err := st.Finish(ctx, store.Ending{Conv: conv, Gen: res.Gen, Status: store.StatusDone}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: "one more", Key: store.NewID(), Gen: store.NewID()}); !errors.Is(err, store.ErrConversationFull) {
		t.Fatalf("a fifth and sixth message: %v, want ErrConversationFull", err)
	}
	if snap, _ := st.Snapshot(ctx, conv, store.ID{}); snap.Count != 4 {
		t.Fatalf("conversation has %d messages, want 4", snap.Count)
	}
}
