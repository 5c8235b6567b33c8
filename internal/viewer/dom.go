// Package viewer is a test client that watches a conversation the way the
// browser does: it loads the page, follows the live stream, applies each
// frame by element id as the Datastar client does, and reconnects with the
// Last-Event-ID of the last frame it received when the stream breaks.
//
// Tests that start Parley processes (e2e), or the whole server in one process,
// use it to check that what a person sees ends equal to what is stored. The
// load generator (cmd/parley-load) uses its SSEReader and DOM for thousands
// of viewers at once.
package viewer

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/parley-chat/parley/views"
)

// DOM is a page as a browser holds it, with Datastar's merge-by-id applied
// (a morph leaves the target equal to the fragment, so replacing the target
// gives the same DOM).
type DOM struct {
	root *html.Node
	ids  map[string]*html.Node // every element with an id, kept up to date by Apply
}

// ParseDOM parses a whole page.
func ParseDOM(r io.Reader) (*DOM, error) {
	n, err := html.Parse(r)
	if err != nil {
		return nil, err
	}
	d := &DOM{root: n, ids: map[string]*html.Node{}}
	d.index(n, true)
	return d, nil
}

// index adds (or removes) the ids of n and its descendants. The first
// element with an id wins, as getElementById's does.
func (d *DOM) index(n *html.Node, add bool) {
	if n.Type == html.ElementNode {
		if id := attr(n, "id"); id != "" {
			switch {
			case !add:
				if d.ids[id] == n {
					delete(d.ids, id)
				}
			case d.ids[id] == nil:
				d.ids[id] = n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		d.index(c, add)
	}
}

func (d *DOM) byID(id string) *html.Node { return d.ids[id] }

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

// MissingTargetError is a fragment whose id is not in the page: the real
// client throws on it, so a frame that causes it is a bug.
type MissingTargetError struct{ ID string }

func (e *MissingTargetError) Error() string { return "no element with id " + e.ID }

// Apply merges each top-level element of fragments into the element with its
// id.
func (d *DOM) Apply(fragments string) error {
	nodes, err := ParseFragments([]byte(fragments))
	if err != nil {
		return err
	}
	return d.merge(nodes, false)
}

// ApplyParsed merges fragments parsed by ParseFragments. It copies them
// first, so that one parse can serve every viewer that got the frame.
func (d *DOM) ApplyParsed(nodes []*html.Node) error { return d.merge(nodes, true) }

// ParseFragments parses a frame's fragments as the client does (in a body).
func ParseFragments(fragments []byte) ([]*html.Node, error) {
	body := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	nodes, err := html.ParseFragment(bytes.NewReader(fragments), body)
	if err != nil {
		return nil, fmt.Errorf("parse fragments: %w", err)
	}
	return nodes, nil
}

func (d *DOM) merge(nodes []*html.Node, clone bool) error {
	for _, n := range nodes {
		if n.Type != html.ElementNode {
			continue
		}
		if clone {
			n = cloneNode(n)
		}
		id := attr(n, "id")
		target := d.byID(id)
		if target == nil {
			return &MissingTargetError{ID: id}
		}
		target.Parent.InsertBefore(n, target)
		target.Parent.RemoveChild(target)
		d.index(target, false)
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

// Element is the element with id, nil when the page has none. It is the
// page's own: changing it changes the page.
func (d *DOM) Element(id string) *html.Node { return d.byID(id) }

// HTML renders the element with id (empty when absent).
func (d *DOM) HTML(id string) string {
	n := d.byID(id)
	if n == nil {
		return ""
	}
	var sb strings.Builder
	_ = html.Render(&sb, n)
	return sb.String()
}

// Messages renders the messages list: what two viewers of one conversation
// must agree on.
func (d *DOM) Messages() string { return d.HTML("messages") }

// Status is the data-status of message i's footer ("" when absent).
func (d *DOM) Status(i int) string {
	n := d.byID(views.FootID(i))
	if n == nil {
		return ""
	}
	return attr(n, "data-status")
}

// Text is the text of message i's body: what the person wrote, or the
// answer so far (without its heading and status line).
func (d *DOM) Text(i int) string {
	n := d.byID(views.MessageID(i))
	if n == nil {
		return ""
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "footer" || n.Data == "h2") {
			return
		}
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(sb.String())
}

// TextOfClass is the text of the first element with class c.
func (d *DOM) TextOfClass(c string) string {
	var found *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if found != nil {
			return
		}
		if n.Type == html.ElementNode && slices.Contains(strings.Fields(attr(n, "class")), c) {
			found = n
			return
		}
		for k := n.FirstChild; k != nil; k = k.NextSibling {
			walk(k)
		}
	}
	walk(d.root)
	if found == nil {
		return ""
	}
	var sb strings.Builder
	var text func(*html.Node)
	text = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for k := n.FirstChild; k != nil; k = k.NextSibling {
			text(k)
		}
	}
	text(found)
	return strings.TrimSpace(sb.String())
}

// Cursor is the log position the page was rendered at.
func (d *DOM) Cursor() string {
	var cur string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if v := attr(n, "data-on-load"); v != "" {
			if _, rest, ok := strings.Cut(v, "after="); ok {
				cur, _, _ = strings.Cut(rest, "'")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return cur
}

// Ended reports whether status is one a message ends in.
func Ended(status string) bool {
	switch status {
	case "done", "stopped", "failed", "interrupted":
		return true
	}
	return false
}
