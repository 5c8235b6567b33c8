package main

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/parley-chat/parley/llm"
)

// dom is a page as a browser holds it after Datastar has merged frames into
// it. A beta.11 merge (morph, the default mode) leaves the element with the
// fragment's id equal to the fragment, so replacing the element is the same
// DOM. Elements are indexed by id, as frames address them.
type dom struct {
	root *html.Node
	ids  map[string]*html.Node
}

func parseDOM(page []byte) (*dom, error) {
	n, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return nil, fmt.Errorf("parse page: %w", err)
	}
	d := &dom{root: n, ids: map[string]*html.Node{}}
	d.index(n, true)
	return d, nil
}

// index adds (or removes) the ids of n and everything under it.
func (d *dom) index(n *html.Node, add bool) {
	if n.Type == html.ElementNode {
		if id := attr(n, "id"); id != "" {
			if add {
				d.ids[id] = n
			} else if d.ids[id] == n {
				delete(d.ids, id)
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		d.index(c, add)
	}
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

// parseFragments parses a frame's fragments as the client does (in a body).
func parseFragments(fragments []byte) ([]*html.Node, error) {
	body := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	nodes, err := html.ParseFragment(bytes.NewReader(fragments), body)
	if err != nil {
		return nil, fmt.Errorf("parse fragment: %w", err)
	}
	return nodes, nil
}

// apply merges each top-level element of fragments into the element with
// its id. A fragment without a target is an error: the client throws on it.
func (d *dom) apply(fragments []byte) error {
	nodes, err := parseFragments(fragments)
	if err != nil {
		return err
	}
	return d.applyNodes(nodes, true)
}

// applyNodes merges parsed fragments; with share false they are copied
// first, so that one parse can serve every viewer that got the frame.
func (d *dom) applyNodes(nodes []*html.Node, share bool) error {
	for _, n := range nodes {
		if n.Type != html.ElementNode {
			continue
		}
		if !share {
			n = cloneNode(n)
		}
		id := attr(n, "id")
		target := d.ids[id]
		if target == nil {
			return fmt.Errorf("fragment targets #%s, which the page does not have", id)
		}
		d.index(target, false)
		target.Parent.InsertBefore(n, target)
		target.Parent.RemoveChild(target)
		d.index(n, true)
	}
	return nil
}

// cloneNode copies n and everything under it, detached.
func cloneNode(n *html.Node) *html.Node {
	c := &html.Node{Type: n.Type, DataAtom: n.DataAtom, Data: n.Data, Namespace: n.Namespace, Attr: n.Attr}
	for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
		c.AppendChild(cloneNode(ch))
	}
	return c
}

// outer renders the element with id, or "" when the page has none.
func (d *dom) outer(id string) string {
	n := d.ids[id]
	if n == nil {
		return ""
	}
	var sb strings.Builder
	_ = html.Render(&sb, n) // a strings.Builder does not fail
	return sb.String()
}

// text returns the text content of the element with id, one line per text
// node (blocks' texts would otherwise run into each other).
func (d *dom) text(id string) string {
	n := d.ids[id]
	if n == nil {
		return ""
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
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

// verdict is what the exactness check found for one viewer.
type verdict struct {
	Exact bool   // the answer element equals the stored answer's
	Gaps  int    // clock tokens missing from the viewer's answer
	Dups  int    // clock tokens present more than once, or out of order
	Err   string // a frame that could not be applied, or another failure
}

// checkAnswer compares the answer (element answerID) a viewer ends with,
// after applying frames to the page it loaded, against the same element of
// the page as stored (want, from a fresh GET at the end), and counts gaps and
// duplicates among the clock tokens of its text.
func checkAnswer(page []byte, frames [][]byte, answerID string, want string, wantTokens int) verdict {
	return checkParsed(page, len(frames), func(i int) ([]*html.Node, error) { return parseFragments(frames[i]) }, answerID, want, wantTokens)
}

// checkParsed is checkAnswer with frames parsed by frame(i), which may hand
// out shared parses: they are copied before they are merged.
func checkParsed(page []byte, n int, frame func(i int) ([]*html.Node, error), answerID string, want string, wantTokens int) verdict {
	d, err := parseDOM(page)
	if err != nil {
		return verdict{Err: err.Error()}
	}
	for i := range n {
		nodes, err := frame(i)
		if err == nil {
			err = d.applyNodes(nodes, false)
		}
		if err != nil {
			return verdict{Err: err.Error()}
		}
	}
	v := verdict{Exact: d.outer(answerID) == want}
	v.Gaps, v.Dups = tokenDefects(d.text(answerID), wantTokens)
	return v
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
