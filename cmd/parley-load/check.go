package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/net/html"

	iviewer "github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
)

// verdict is what the exactness check found for one viewer.
type verdict struct {
	Exact bool   // the answer element equals the stored answer's
	Gaps  int    // clock tokens missing from the viewer's answer
	Dups  int    // clock tokens present more than once, or out of order
	Err   string // a frame that could not be applied, or another failure
}

// checkParsed compares the answer (element answerID) a viewer ends with,
// after applying its n frames to the page it loaded, against the same
// element of the page as stored (want, from a fresh GET at the end), and
// counts gaps and duplicates among the clock tokens of its text. frame(i)
// parses frame i and may hand out shared parses: they are copied before
// they are merged.
func checkParsed(page []byte, n int, frame func(i int) ([]*html.Node, error), answerID string, want string, wantTokens int) verdict {
	d, err := iviewer.ParseDOM(bytes.NewReader(page))
	if err != nil {
		return verdict{Err: fmt.Sprintf("parse page: %v", err)}
	}
	for i := range n {
		nodes, err := frame(i)
		if err == nil {
			err = d.ApplyParsed(nodes)
		}
		if err != nil {
			return verdict{Err: err.Error()}
		}
	}
	v := verdict{Exact: d.HTML(answerID) == want}
	v.Gaps, v.Dups = tokenDefects(textLines(d.Element(answerID)), wantTokens)
	return v
}

// textLines returns the text content of n, one line per text node (blocks'
// texts would otherwise run into each other); "" for nil.
func textLines(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n == nil {
			return
		}
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
			sb.WriteByte('\n')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return sb.String()
}

// tokenDefects counts clock tokens 0..n-1 that are missing from text, and
// tokens that appear again or out of order. Only every prose-th token is a
// clock word in prose mode; n is then the number of clock words expected
// (their sequence numbers are checked for order, not for being contiguous).
func tokenDefects(text string, n int) (gaps, dups int) {
	seen := map[int64]bool{}
	last := int64(-1)
	llm.ScanClock([]byte(text), func(seq, _ int64) {
		if seen[seq] || seq <= last {
			dups++
		}
		seen[seq] = true
		last = max(last, seq)
	})
	if n > len(seen) {
		gaps = n - len(seen)
	}
	return gaps, dups
}

// finalAnswer is a conversation's answer as stored, from a fresh page.
type finalAnswer struct {
	html string
}

func finalAnswers(ctx context.Context, base string, convs []*conv) (map[*conv]finalAnswer, error) {
	out := map[*conv]finalAnswer{}
	for _, c := range convs {
		page, err := getPage(ctx, c.client, base+"/c/"+c.id)
		if err != nil {
			return nil, err
		}
		d, err := iviewer.ParseDOM(bytes.NewReader(page))
		if err != nil {
			return nil, fmt.Errorf("parse the final page of %s: %w", c.id, err)
		}
		html := d.HTML(c.answerID)
		if html == "" {
			return nil, fmt.Errorf("the final page of %s has no #%s", c.id, c.answerID)
		}
		out[c] = finalAnswer{html: html}
	}
	return out, nil
}

// checkAll checks every viewer; viewers with the same page and frames (most
// of a room) are checked once.
func checkAll(viewers []*viewer, finals map[*conv]finalAnswer, dump string) []verdict {
	out := make([]verdict, len(viewers))
	memo := map[string]verdict{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	parsed := newParseCache()
	for i, v := range viewers {
		if v.page == nil {
			out[i] = verdict{Err: errString(v.err, "never loaded the page")}
			continue
		}
		var key strings.Builder
		fmt.Fprintf(&key, "%s/%d", v.conv.id, v.page.n)
		for _, f := range v.frames {
			fmt.Fprintf(&key, ",%d", f.n)
		}
		k := key.String()
		mu.Lock()
		if got, ok := memo[k]; ok {
			out[i] = got
			mu.Unlock()
			continue
		}
		mu.Unlock()
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			got := checkParsed(v.page.b, len(v.frames), func(j int) ([]*html.Node, error) { return parsed.get(v.frames[j]) },
				v.conv.answerID, finals[v.conv].html, v.conv.tokens)
			if dump != "" && !(got.Exact && got.Gaps == 0 && got.Dups == 0 && got.Err == "") {
				frames := make([][]byte, len(v.frames))
				for j, f := range v.frames {
					frames[j] = f.b
				}
				dumpViewer(dump, i, v, frames, finals[v.conv].html, got)
			}
			mu.Lock()
			memo[k] = got
			out[i] = got
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func errString(err error, def string) string {
	if err != nil {
		return err.Error()
	}
	return def
}

// dumpViewer writes what an inexact viewer received, for a person to read:
// its page, its frames in order, and the answer it should have ended with.
func dumpViewer(dir string, i int, v *viewer, frames [][]byte, want string, got verdict) {
	var b strings.Builder
	fmt.Fprintf(&b, "viewer %d (%s, cut after %s, slow %v): %+v\n\n=== want\n%s\n\n=== page\n%s\n", i, v.kind, v.cutAfter, v.slow, got, want, v.page.b)
	for j, f := range frames {
		fmt.Fprintf(&b, "\n=== frame %d\n%s\n", j, f)
	}
	_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("viewer-%s-%d.txt", v.conv.id, i)), []byte(b.String()), 0o644)
}

// parseCache parses each distinct frame once for the whole check: a room's
// viewers all received the same frames.
type parseCache struct {
	mu sync.Mutex
	m  map[int32]*parsedFrame
}

type parsedFrame struct {
	once  sync.Once
	nodes []*html.Node
	err   error
}

func newParseCache() *parseCache { return &parseCache{m: map[int32]*parsedFrame{}} }

func (c *parseCache) get(b *blob) ([]*html.Node, error) {
	c.mu.Lock()
	p := c.m[b.n]
	if p == nil {
		p = &parsedFrame{}
		c.m[b.n] = p
	}
	c.mu.Unlock()
	p.once.Do(func() { p.nodes, p.err = iviewer.ParseFragments(b.b) })
	return p.nodes, p.err
}
