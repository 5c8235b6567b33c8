package main

import (
	"bytes"
	"fmt"
	"strings"

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
