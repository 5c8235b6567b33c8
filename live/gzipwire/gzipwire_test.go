package gzipwire

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/frame"
)

// pipeWriter is a Writer into a pipe, so a test can decode while writing.
type pipeWriter struct{ w *io.PipeWriter }

func (p pipeWriter) Send(b []byte, _ bool) error { _, err := p.w.Write(b); return err }
func (p pipeWriter) Flush() error                { return nil }

// growingFrames returns frames shaped like an answer's: each re-sends the
// growing block whole with a bit more text, now and then a new block starts,
// and small presence frames come in between.
func growingFrames(n int, rng *rand.Rand) [][]byte {
	words := strings.Fields("the quick brown fox jumps over a lazy dog while streams of tokens arrive at many browsers")
	var frames [][]byte
	block, k := "", 0
	for i := range n {
		if rng.IntN(25) == 0 {
			block, k = "", k+1
		}
		if rng.IntN(10) == 0 {
			frames = append(frames, frame.Signals("", "{watching: "+strconv.Itoa(rng.IntN(100))+"}"))
			continue
		}
		block += words[rng.IntN(len(words))] + " "
		data := fmt.Sprintf("event: datastar-merge-fragments\nid: %d-0\ndata: fragments <div id=\"m-1-s-%d\" class=\"slot\"><p>%s</p><div id=\"m-1-s-%d\" class=\"slot\"></div></div>\n\n", i+1, k, block, k+1)
		frames = append(frames, []byte(data))
	}
	return frames
}

// TestWireGzip writes one room's frames to viewers that join late, skip
// frames, get heartbeats and catch-ups of their own, and checks that each
// stream decodes, frame by frame as it arrives, to exactly the bytes it was
// given, and ends with a valid trailer. It also checks that the dictionary
// is used: a viewer keeping up costs a fraction of the raw bytes.
func TestWireGzip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var room History
	data := growingFrames(400, rng)
	frames := make([]*Frame, len(data))
	for i, d := range data {
		frames[i] = room.Add(d)
	}

	type plan struct {
		name      string
		join      int     // first frame index written
		skipEvery int     // skip every nth frame (as a viewer that already had it); 0 never
		beatEvery int     // a heartbeat every nth frame; 0 never
		catchUp   bool    // starts with a catch-up of its own
		maxRatio  float64 // compressed / raw bound for the whole stream
	}
	plans := []plan{
		{name: "from the start", maxRatio: 0.2},
		{name: "joins late with a catch-up", join: 150, catchUp: true, maxRatio: 0.2},
		{name: "skips frames", join: 10, skipEvery: 7, maxRatio: 0.3},
		{name: "heartbeats", beatEvery: 13, maxRatio: 0.3},
	}
	for _, p := range plans {
		t.Run(p.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			wr := NewWire(pipeWriter{pw}, true)
			var want bytes.Buffer
			wire := &countingWriter{}
			done := make(chan error, 1)
			expect := make(chan []byte, 1024)
			go func() {
				zr, err := gzip.NewReader(io.TeeReader(pr, wire))
				if err != nil {
					done <- err
					return
				}
				for piece := range expect {
					got := make([]byte, len(piece))
					if _, err := io.ReadFull(zr, got); err != nil {
						done <- fmt.Errorf("read a piece: %w", err)
						return
					}
					if !bytes.Equal(got, piece) {
						done <- fmt.Errorf("decoded %q, want %q", got, piece)
						return
					}
				}
				if _, err := io.ReadAll(zr); err != nil {
					done <- fmt.Errorf("trailer: %w", err)
					return
				}
				done <- nil
			}()
			// write tells the reader what to expect, then writes (the pipe
			// blocks until the reader takes the bytes).
			write := func(data []byte, do func() error) {
				t.Helper()
				want.Write(data)
				expect <- data
				if err := do(); err != nil {
					t.Fatal(err)
				}
				// Each piece must decode on its own, before anything follows:
				// a browser shows a frame when it arrives.
				deadline := time.After(5 * time.Second)
				for len(expect) > 0 {
					select {
					case <-deadline:
						t.Fatal("a written frame did not decode before the next was written")
					case err := <-done:
						t.Fatal(err)
					default:
						time.Sleep(50 * time.Microsecond)
					}
				}
			}
			if p.catchUp {
				c := []byte(strings.Repeat("event: datastar-merge-fragments\ndata: fragments <p>catch-up</p>\n\n", 20))
				write(c, func() error { return wr.Raw(c, true) })
			}
			for i, f := range frames[p.join:] {
				if p.skipEvery > 0 && i%p.skipEvery == p.skipEvery-1 {
					wr.Skip()
					continue
				}
				if p.beatEvery > 0 && i%p.beatEvery == 0 {
					hb := []byte(": keepalive\n\n")
					write(hb, func() error { return wr.Raw(hb, false) })
				}
				write(f.data, func() error { return wr.Frame(f) })
			}
			close(expect)
			if err := wr.End(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			ratio := float64(wire.n) / float64(want.Len())
			t.Logf("%d bytes on the wire for %d (%.3fx)", wire.n, want.Len(), ratio)
			if ratio > p.maxRatio {
				t.Errorf("compressed to %.3fx of the raw stream, want at most %.2fx", ratio, p.maxRatio)
			}
		})
	}
}

// TestWireGzipSharesWork checks that the compressed forms of a room's frame
// are made once, whoever writes them: a hundred viewers in step get the same
// bytes, not a hundred compressions.
func TestWireGzipSharesWork(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var room History
	var frames []*Frame
	for _, d := range growingFrames(50, rng) {
		frames = append(frames, room.Add(d))
	}
	var first []byte
	for v := range 100 {
		var buf bytes.Buffer
		wr := NewWire(bufWriter{&buf}, true)
		for _, f := range frames {
			if err := wr.Frame(f); err != nil {
				t.Fatal(err)
			}
		}
		if v == 0 {
			first = bytes.Clone(buf.Bytes())
		} else if !bytes.Equal(buf.Bytes(), first) {
			t.Fatalf("viewer %d got other bytes than viewer 0", v)
		}
	}
	last := frames[len(frames)-1]
	a, b := last.compressed(gzipDict), last.compressed(gzipDict)
	if &a[0] != &b[0] {
		t.Error("a frame was compressed twice for the same dictionary")
	}
}

type bufWriter struct{ b *bytes.Buffer }

func (s bufWriter) Send(p []byte, _ bool) error { s.b.Write(p); return nil }
func (s bufWriter) Flush() error                { return nil }

type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// BenchmarkCompressFrame is what gzip costs a room per frame: one answer's
// frame compressed against the frames before it, by dictionary size.
func BenchmarkCompressFrame(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	var room History
	var f *Frame
	for _, d := range growingFrames(300, rng) {
		f = room.Add(d)
	}
	for _, n := range []int{0, 1 << 10, 4 << 10, gzipDict} {
		b.Run(fmt.Sprintf("dict=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(f.data)))
			var out int
			for b.Loop() {
				out = len(deflate(f.data, f.dictTail(min(n, f.dictLen))))
			}
			b.ReportMetric(float64(out), "out-bytes")
		})
	}
}
