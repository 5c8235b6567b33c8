package handlers_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestStreamBytesOfLongAnswer checks that streaming costs O(n), not O(n²):
// the SSE bytes one viewer receives for a 2,000-token Markdown answer
// (headings, paragraphs, lists, code blocks) stay below 3x the size of the
// answer's final HTML. Re-sending the whole answer per frame would cost
// hundreds of times that. Re-sending only the growing block is not enough
// either when every flush of the generation becomes a frame: each frame
// carries about 150 bytes of SSE and slot markup, and a code block or long
// paragraph is sent again for every few tokens. The bound holds when the
// frames a viewer gets are coalesced as the growing block gets larger.
//
// The stream is opened before the message is posted, so it carries
// everything: the new messages, every token and the end. It is also applied
// to the page, which must then equal a fresh load: the counted bytes are a
// whole, working stream.
//
// PARLEY_SSE_BYTES_TPS=a,b,c measures other model speeds (pieces per second)
// and PARLEY_SSE_BYTES_FLUSH another generation flush interval (default 20ms);
// the ratios are logged and asserted for each.
func TestStreamBytesOfLongAnswer(t *testing.T) {
	t.Parallel()
	rates := []float64{200}
	if env := os.Getenv("PARLEY_SSE_BYTES_TPS"); env != "" {
		rates = nil
		for _, f := range strings.Split(env, ",") {
			r, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("PARLEY_SSE_BYTES_TPS: %v", err)
			}
			rates = append(rates, r)
		}
	}
	// Browsers take gzip: with it, every flush may be a frame (no frame
	// budget, the lowest latency). A client that does not is kept within
	// the bound by the frame budget instead.
	modes := []streamMode{{gzip: true, budget: 0}, {gzip: false, budget: 2}}
	for _, tps := range rates {
		for _, mode := range modes {
			t.Run(fmt.Sprintf("%g tokens per second, gzip %t, frame budget %g", tps, mode.gzip, mode.budget), func(t *testing.T) {
				t.Parallel()
				m := measureLongAnswer(t, tps, 2000, mode)
				ratio := float64(m.sent) / float64(m.final)
				t.Logf("2,000 tokens at %g/s: %d bytes on the wire in %d events for %d bytes of final answer HTML (%d bytes of Markdown blocks alone): %.2fx (%.2fx of the blocks; %.2fx before gzip); longest gap between events %v",
					tps, m.sent, m.events, m.final, m.blocks, ratio, float64(m.sent)/float64(m.blocks), float64(m.decoded)/float64(m.final), m.maxGap.Round(time.Millisecond))
				if ratio >= 3 {
					t.Errorf("the stream cost %.2fx the final HTML, want below 3x", ratio)
				}
			})
		}
	}
}

// streamMode is how a viewer takes its stream and how the server paces it.
type streamMode struct {
	gzip   bool    // the client sends Accept-Encoding: gzip
	budget float64 // the generations' FrameBudget
}

// streamMeasure is what one viewer received for one answer.
type streamMeasure struct {
	sent    int           // body bytes on the wire, from before the first token to the end
	decoded int           // the same, after gzip decoding
	events  int           // SSE events (comments not counted)
	maxGap  time.Duration // longest wait between two events while the answer streamed
	final   int           // the answer's HTML in a fresh page (the #m-3 article)
	blocks  int           // its rendered Markdown blocks alone, without slot elements
}

// measureLongAnswer streams a [[long tokens]] answer to one viewer and
// measures what it received.
func measureLongAnswer(t *testing.T, tps float64, tokens int, mode streamMode) streamMeasure {
	t.Helper()
	a := newApp(t, func(c *appConfig) {
		c.demo = llm.DemoConfig{TokensPerSecond: tps, Tokens: 50}
		c.gen.FrameBudget = mode.budget
		if f := os.Getenv("PARLEY_SSE_BYTES_FLUSH"); f != "" {
			d, err := time.ParseDuration(f)
			if err != nil {
				t.Fatalf("PARLEY_SSE_BYTES_FLUSH: %v", err)
			}
			c.gen.FlushInterval = d
		}
	})
	conv := a.create(t, "[[echo]]Hello.")
	a.waitStatus(t, conv, 1, store.StatusDone)
	page, cursor := a.page(t, conv)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/c/"+conv+"/events?after="+cursor, nil)
	req.Header.Set("Datastar-Request", "true")
	// Set by hand, the header also stops the client from decoding for us:
	// the count is of the bytes on the wire.
	if mode.gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	} else {
		req.Header.Set("Accept-Encoding", "identity")
	}
	res, err := a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("events: status %d", res.StatusCode)
	}
	wire := &countingReader{r: res.Body}
	if got := res.Header.Get("Content-Encoding") == "gzip"; got != mode.gzip {
		t.Fatalf("Content-Encoding %q for a client that accepts gzip: %t", res.Header.Get("Content-Encoding"), mode.gzip)
	}
	var decoded io.Reader = wire
	if mode.gzip {
		zr, err := gzip.NewReader(wire)
		if err != nil {
			t.Fatal(err)
		}
		decoded = zr
	}
	body := &countingReader{r: decoded}

	// The stream has started (headers came), so the room is joined and
	// nothing of the answer can be missed.
	if res := a.post(t, conv, "[[long "+strconv.Itoa(tokens)+"]]", store.NewID()); res.StatusCode >= 300 {
		t.Fatalf("post: status %d", res.StatusCode)
	}
	var (
		applyErr error
		m        streamMeasure
		last     time.Time
	)
	err = readSSE(body, func(ev sseEvent) bool {
		if ev.Comment {
			return true
		}
		now := time.Now()
		if m.events > 0 {
			m.maxGap = max(m.maxGap, now.Sub(last))
		}
		m.events++
		last = now
		if err := page.Apply(ev.Fragments()); err != nil {
			applyErr = err
			return false
		}
		return page.Status(3) != store.StatusDone
	})
	if err != nil || applyErr != nil {
		t.Fatalf("read the stream: %v, %v", err, applyErr)
	}
	if got := page.Status(3); got != store.StatusDone {
		t.Fatalf("the stream ended with the answer %q", got)
	}

	fresh, _ := a.page(t, conv)
	if got, want := page.HTML(views.MessageID(3)), fresh.HTML(views.MessageID(3)); got != want {
		t.Fatalf("the page after the stream differs from a fresh load:\n got %.300q\nwant %.300q", got, want)
	}
	stored := a.waitStatus(t, conv, 3, store.StatusDone)
	if n := len(strings.Fields(stored.Text)); n < tokens {
		t.Fatalf("the answer has %d words, want at least %d", n, tokens)
	}
	doc := markdown.NewDoc(markdown.NewRenderer())
	doc.Append(stored.Text)
	for _, b := range doc.Blocks() {
		m.blocks += len(b)
	}
	m.sent, m.decoded, m.final = int(wire.n), int(body.n), len(fresh.HTML(views.MessageID(3)))
	return m
}
