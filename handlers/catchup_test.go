package handlers_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/store"
)

// storeExchange stores a user message and its finished answer directly,
// as a generation would (no model, no limits on their size).
func storeExchange(t testing.TB, a *app, conv string, create bool, user, answer string) {
	t.Helper()
	ctx := context.Background()
	gen := store.NewID()
	if _, err := a.Store.Post(ctx, store.Post{Conv: conv, Owner: testOwner, Text: user, Key: store.NewID(), Gen: gen, Create: create}); err != nil {
		t.Fatalf("post: %v", err)
	}
	if res, err := a.Store.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: answer}); err != nil || res.Result != store.Appended {
		t.Fatalf("append: %v, %v", res, err)
	}
	if err := a.Store.Finish(ctx, store.Ending{Conv: conv, Gen: gen, Status: store.StatusDone}); err != nil {
		t.Fatalf("finish: %v", err)
	}
}

// sized is an event and its bytes of data (its data lines, prefixes
// included).
type sized struct {
	sseEvent
	size int
}

// openEvents opens the conversation's stream as the page does, with ?after
// (when not empty) and Last-Event-ID (when not empty), gzip or not.
func openEvents(ctx context.Context, t testing.TB, a *app, conv, after, lastID string, gzip bool) *http.Response {
	t.Helper()
	url := a.URL + "/c/" + conv + "/events"
	if after != "" {
		url += "?after=" + after
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Datastar-Request", "true")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if !gzip {
		// Set by hand, it also stops the transport from asking for gzip.
		req.Header.Set("Accept-Encoding", "identity")
	}
	res, err := a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		t.Fatalf("events: status %d", res.StatusCode)
	}
	if got := res.Header.Get("Content-Encoding") == "gzip" || res.Uncompressed; got != gzip {
		t.Fatalf("gzip %t for a client that asked for %t", got, gzip)
	}
	return res
}

// readEvents calls fn for each event of body (comments skipped) until it
// returns false.
func readEvents(body io.Reader, fn func(sized) bool) error {
	return readSSE(body, func(ev sseEvent) bool {
		if ev.Comment {
			return true
		}
		n := 0
		for _, d := range ev.Data {
			n += len(d)
		}
		return fn(sized{ev, n})
	})
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakHeap runs f and returns by how much the heap's objects (live, and
// dead ones not swept yet) grew at most while it ran. The collector runs
// after every 1% of growth meanwhile, so that the peak is what f held, not
// garbage waiting for a collection.
func peakHeap(f func()) uint64 {
	old := debug.SetGCPercent(1)
	defer debug.SetGCPercent(old)
	runtime.GC()
	base := heapObjects()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if h := heapObjects(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	f()
	close(stop)
	<-done
	if h := heapObjects(); h > peak.Load() {
		peak.Store(h)
	}
	return max(peak.Load(), base) - base
}

// TestCatchUpOfHostileConversation: a conversation of 40 messages of 32,000
// '>' each (each renders to some 128 KB of HTML, 5 MB in all) caught up by a
// viewer without gzip from an empty cursor comes as many events, none over
// 128 KiB, whose page ends equal to a fresh one; and the catch-up does not
// hold the conversation's HTML in memory: the server's heap grows by less
// than the HTML it sends (the one-frame catch-up held it whole, several
// times over, while it was built and written).
func TestCatchUpOfHostileConversation(t *testing.T) {
	// Not parallel: peakHeap measures the whole process's heap.
	if testing.Short() {
		t.Skip("stores and streams 5 MB")
	}
	a := newApp(t, nil)
	conv := store.NewID()
	quotes := strings.Repeat(">", 32000)
	storeExchange(t, a, conv, true, quotes, quotes)
	start, _ := a.page(t, conv) // the page as it was at the first exchange
	for range 19 {
		storeExchange(t, a, conv, false, quotes, quotes)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The first viewer applies the catch-up to the page it had, and keeps
	// its stream open: the room is loaded, as for any viewer after it.
	res := openEvents(ctx, t, a, conv, "", "", false)
	defer res.Body.Close()
	var (
		events, total, largest int
		applyErr               error
	)
	err := readEvents(res.Body, func(ev sized) bool {
		events++
		total += ev.size
		largest = max(largest, ev.size)
		if applyErr = start.Apply(ev.Fragments()); applyErr != nil {
			return false
		}
		return ev.ID == "" // the catch-up's last event has its id
	})
	if err != nil || applyErr != nil {
		t.Fatalf("read the catch-up: %v, %v", err, applyErr)
	}
	t.Logf("catch-up without gzip: %d events, %d bytes of data, the largest %d", events, total, largest)
	if largest > 128<<10 {
		t.Errorf("an event of %d bytes of data, want none over 128 KiB", largest)
	}
	if events < 40 {
		t.Errorf("%d events for 40 messages of 128 KB: the catch-up is not in pieces", events)
	}
	fresh, _ := a.page(t, conv)
	if got, want := start.Messages(), fresh.Messages(); got != want {
		t.Fatalf("after the catch-up the page differs from a fresh one: %s", viewer.Diff(want, got))
	}

	// The room loads the conversation for its first viewer, and renders a
	// catch-up of its own then (live/room.go, load); it reports presence,
	// a frame too. Both are the room's, once, not the viewer's.
	for deadline := time.Now().Add(10 * time.Second); a.Hub.Stats().Frames < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the room never loaded")
		}
	}
	// A second viewer's catch-up, read and dropped as fast as it comes.
	var read int
	grew := peakHeap(func() {
		res := openEvents(ctx, t, a, conv, "", "", false)
		defer res.Body.Close()
		_ = readEvents(res.Body, func(ev sized) bool {
			read += ev.size
			return ev.ID == ""
		})
	})
	if read != total {
		t.Fatalf("the second viewer read %d bytes, the first %d", read, total)
	}
	// The same catch-up in one frame, as a room renders it.
	snap, err := a.Store.Snapshot(ctx, conv, store.ID{})
	if err != nil {
		t.Fatal(err)
	}
	var one *live.Frame
	whole := peakHeap(func() { one = live.CatchUp(a.Deps.MD, conv, store.ID{}, snap) })
	t.Logf("heap growth during a viewer's catch-up: %.1f MB (%.2fx the %.1f MB it sent); rendering it as one frame: %.1f MB",
		float64(grew)/1e6, float64(grew)/float64(total), float64(total)/1e6, float64(whole)/1e6)
	if len(one.Data) < total {
		t.Fatalf("the one frame holds %d bytes, the events %d", len(one.Data), total)
	}
	if grew >= uint64(total) {
		t.Errorf("the heap grew by %d bytes during a catch-up of %d: want less than what it sends", grew, total)
	}
}

// TestCatchUpCutAfterEachPiece: a viewer whose stream breaks after any
// piece of its catch-up, and that reconnects as the beta.11 client does
// (with the last id it received, which no piece but the last one carries),
// ends with the page a fresh load shows, gzip or not.
func TestCatchUpCutAfterEachPiece(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := store.NewID()
	storeExchange(t, a, conv, true, "first", "**hello**")
	res0, err := a.Client.Get(a.URL + "/c/" + conv)
	if err != nil {
		t.Fatal(err)
	}
	early, _ := io.ReadAll(res0.Body)
	res0.Body.Close()
	startDOM := func() (*viewer.DOM, string) {
		d, err := viewer.ParseDOM(strings.NewReader(string(early)))
		if err != nil {
			t.Fatal(err)
		}
		return d, d.Cursor()
	}
	// Pieces of every kind: small messages together, one-block messages of
	// their own, an answer split by blocks.
	para := strings.Repeat("Some *words* and `code` ", 100) + "\n\n"
	storeExchange(t, a, conv, false, "small", "reply")
	storeExchange(t, a, conv, false, strings.Repeat("<", 20000), strings.Repeat(">", 20000))
	storeExchange(t, a, conv, false, "paragraphs", strings.Repeat(para, 40))
	storeExchange(t, a, conv, false, "last", "bye")
	fresh, _ := a.page(t, conv)
	want := fresh.Messages()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pieces := -1
	for cut := 1; pieces < 0 || cut <= pieces; cut++ {
		gzip := cut%2 == 0
		d, after := startDOM()
		lastID := ""
		apply := func(ev sized) error {
			if err := d.Apply(ev.Fragments()); err != nil {
				return err
			}
			if ev.ID != "" {
				lastID = ev.ID
			}
			return nil
		}
		// The first stream breaks after cut events.
		res := openEvents(ctx, t, a, conv, after, "", gzip)
		n := 0
		var applyErr error
		_ = readEvents(res.Body, func(ev sized) bool {
			n++
			if applyErr = apply(ev); applyErr != nil {
				return false
			}
			if ev.ID != "" && pieces < 0 {
				pieces = n // the catch-up is this many events
			}
			return n < cut
		})
		res.Body.Close()
		if applyErr != nil {
			t.Fatalf("cut after %d: %v", cut, applyErr)
		}
		// The client comes back with the id it has, if any, and reads up
		// to the end of the catch-up (the event with an id) or, when it had
		// all of it, to the stream's first event (presence).
		res = openEvents(ctx, t, a, conv, after, lastID, !gzip)
		_ = readEvents(res.Body, func(ev sized) bool {
			if applyErr = apply(ev); applyErr != nil {
				return false
			}
			return ev.ID == "" && lastID == ""
		})
		res.Body.Close()
		if applyErr != nil {
			t.Fatalf("cut after %d, reconnected: %v", cut, applyErr)
		}
		if got := d.Messages(); got != want {
			t.Fatalf("cut after %d of %d events and reconnected with id %q: %s", cut, pieces, lastID, viewer.Diff(want, got))
		}
	}
	if pieces < 5 {
		t.Fatalf("the catch-up was %d events: not in pieces", pieces)
	}
	t.Logf("cut after each of the %d events of the catch-up", pieces)
}
