package frame_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/views"
)

// event is one SSE event as the beta.11 client reads it.
type event struct {
	lines     int    // "fragments" data lines
	fragments string // joined with "\n", as the client joins them
}

func parseEvent(t testing.TB, b []byte) event {
	t.Helper()
	s := string(b)
	if !strings.HasSuffix(s, "\n\n") || strings.Count(s, "\n\n") != 1 {
		t.Fatalf("not one SSE event: %.200q", s)
	}
	var ev event
	var parts []string
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n") {
		if v, ok := strings.CutPrefix(l, "data: fragments "); ok {
			parts = append(parts, v)
			ev.lines++
		}
	}
	ev.fragments = strings.Join(parts, "\n")
	return ev
}

// fragmentDOM parses HTML as the client parses a fragment (in a body) and
// renders the nodes back: equal strings are equal DOMs.
func fragmentDOM(t testing.TB, s string) string {
	t.Helper()
	body := &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body}
	nodes, err := html.ParseFragment(strings.NewReader(s), body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var sb strings.Builder
	for _, n := range nodes {
		if err := html.Render(&sb, n); err != nil {
			t.Fatal(err)
		}
		sb.WriteString("\x00") // node boundaries count
	}
	return sb.String()
}

func documentDOM(t testing.TB, s string) string {
	t.Helper()
	n, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	if err := html.Render(&sb, n); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// checkSame merges s and checks that what the client gets back parses to
// the DOM s parses to. It returns the event's number of data lines.
func checkSame(t testing.TB, name, s string, parse func(testing.TB, string) string) int {
	t.Helper()
	ev := parseEvent(t, frame.Merge("1-0", s))
	want := parse(t, strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n"))
	if got := parse(t, ev.fragments); got != want {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: the DOM differs after byte %d:\n got …%.200q\nwant …%.200q\n(sent %.300q)", name, i, got[max(0, i-40):], want[max(0, i-40):], ev.fragments)
	}
	return ev.lines
}

// newlineInTag reports a start or end tag of s that has a newline in it
// outside a quoted attribute value (between attributes): the HTML views and
// Markdown write has none, so even a plain replacement of every newline by
// "&#10;" would keep its DOM (a title's newlines are in its data-title
// value, where the reference is read as a newline).
func newlineInTag(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			raw := string(z.Raw())
			if strings.ContainsAny(quotedValue.ReplaceAllString(raw, "="), "\n\r") {
				return raw
			}
		}
	}
}

var quotedValue = regexp.MustCompile(`=\s*("[^"]*"|'[^']*')`)

func render(t testing.TB, c templ.Component) string {
	t.Helper()
	var sb strings.Builder
	if err := c.Render(context.Background(), &sb); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// corpus is Markdown the repository's tests use: the XSS cases, the
// Markdown corpus, long demo answers and hostile shapes.
func corpus(t testing.TB) map[string]string {
	t.Helper()
	texts := map[string]string{}
	raw, err := os.ReadFile("../markdown/testdata/xss.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ Name, Text string }
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		texts["xss: "+c.Name] = c.Text
	}
	files, _ := filepath.Glob("../markdown/testdata/corpus/*.md")
	if len(files) == 0 {
		t.Fatal("no Markdown corpus")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts["corpus: "+filepath.Base(f)] = string(b)
	}
	demo := llm.NewDemo(llm.DemoConfig{Tokens: 400})
	for _, n := range []string{"300", "2000"} {
		texts["demo long "+n] = demo.Reply([]llm.Message{{Role: llm.RoleUser, Content: "[[long " + n + "]]"}})
	}
	texts["demo"] = demo.Reply([]llm.Message{{Role: llm.RoleUser, Content: "Tell me about\nnewlines"}})
	texts["quotes"] = strings.Repeat(">", 32000)
	texts["lists"] = strings.Repeat("- a\n  - b\n    1. c\n", 200)
	texts["code with blank lines"] = "```go\n\n\nfunc f() {\n\n\treturn\n}\n\n```\n\n```\n<textarea>\n</textarea>\n```\n"
	texts["html as text"] = "<pre>\nx</pre>\n<textarea>\na</textarea>\n<a\nhref='x'>y</a>\n<!--\nc\n-->"
	return texts
}

// TestMergeKeepsTheDOM: every fragment and page the views render, with
// every Markdown the tests know, reaches the client as the same DOM, on one
// data line.
func TestMergeKeepsTheDOM(t *testing.T) {
	t.Parallel()
	md := markdown.NewRenderer()
	var msgs []views.Message
	i := 0
	for name, text := range corpus(t) {
		final := markdown.NewDoc(md)
		final.AppendFinal(text)
		growing := markdown.NewDoc(md)
		growing.Append(text[:len(text)*2/3])
		user := views.Message{Conv: "c1", Index: i, Role: "user", Status: "done", Text: text, Rev: "1-0"}
		answer := views.Message{Conv: "c1", Index: i + 1, Role: "assistant", Status: "done", Blocks: final.Blocks(), Rev: "2-0"}
		partial := views.Message{Conv: "c1", Index: i + 1, Role: "assistant", Status: "streaming", Blocks: growing.Blocks()}
		failed := answer
		failed.Status, failed.Error = "failed", "The model said:\n"+text[:min(len(text), 200)]
		msgs = append(msgs, user, answer)
		i += 2
		frags := map[string]string{
			"user":    render(t, views.MessageView(user)),
			"answer":  render(t, views.MessageView(answer)),
			"partial": render(t, views.Slot(partial.Index, []views.Message{partial})),
			"failed":  render(t, views.MessageView(failed)),
			"blocks":  render(t, views.Blocks(answer.Index, 0, answer.Blocks)),
			"foot":    render(t, views.Foot(failed)),
			"title":   render(t, views.Title(text[:min(len(text), 80)])) + render(t, views.SideTitle(text[:min(len(text), 80)])),
			"composer": render(t, views.Composer("c1", "k", text[:min(len(text), 300)], true)) +
				render(t, views.HomeComposer(views.HomeForm{ID: "c1", Text: text, Error: "too long\nreally"})),
		}
		for _, b := range answer.Blocks {
			frags["block"] += b
		}
		for kind, s := range frags {
			if raw := newlineInTag(s); raw != "" {
				t.Errorf("%s, %s: a newline inside a tag: %q", name, kind, raw)
			}
			if n := checkSame(t, name+", "+kind, s, fragmentDOM); n != 1 {
				t.Errorf("%s, %s: %d data lines for %d lines of HTML, want 1", name, kind, n, strings.Count(s, "\n")+1)
			}
		}
	}
	side := views.Sidebar{Current: "c1", CurrentTitle: "a\ntitle", Conversations: []views.Summary{{ID: "c1", Title: "one"}, {ID: "c2", Title: "two\nlines"}}}
	slot := render(t, views.Slot(0, msgs))
	whole := render(t, views.Deleted()) + render(t, views.SideList(side)) + slot
	if raw := newlineInTag(whole); raw != "" {
		t.Errorf("a newline inside a tag: %q", raw)
	}
	if n := checkSame(t, "the whole conversation", whole, fragmentDOM); n != 1 {
		t.Errorf("the whole conversation: %d data lines, want 1", n)
	}

	// Pages are not frames, but they show that templ writes no newline in
	// a tag anywhere. Their <script> elements (in the head) would make the
	// scan keep every newline after them, so they are taken out here.
	scripts := regexp.MustCompile(`<script[^>]*></script>`)
	assets := views.Assets{CSS: "/a.css", CodeCSS: "/c.css", Datastar: "/d.js", App: "/app.js", Icon: "/i.svg"}
	pages := map[string]string{
		"conversation": render(t, views.ConversationPage(assets, views.Conversation{ID: "c1", Title: "t\nt", Cursor: "1-0", Messages: msgs, Owner: true, Watching: 2, ComposerKey: "k", Sidebar: side})),
		"watching":     render(t, views.ConversationPage(assets, views.Conversation{ID: "c1", Cursor: "1-0", Messages: msgs[:4], Sidebar: views.Sidebar{Current: "c1", Watching: true}})),
		"home":         render(t, views.Home(assets, side, views.HomeForm{ID: "x", Text: "multi\nline\n\ntext", Error: "no\n"})),
		"error":        render(t, views.ErrorPage(assets, side, "Oops", "it\nbroke", views.RetryForm("/c", "conv", "x", "\nkept\ntext\n"))),
	}
	for name, p := range pages {
		if raw := newlineInTag(p); raw != "" {
			t.Errorf("page %s: a newline inside a tag: %q", name, raw)
		}
		p = scripts.ReplaceAllString(p, "")
		if n := checkSame(t, "page "+name, p, documentDOM); n != 1 {
			t.Errorf("page %s: %d data lines, want 1", name, n)
		}
	}
}

// tricky is HTML whose newlines mean different things where they are.
var tricky = []string{
	"<div\nid=\"a\"\nclass='b'\n>x\ny</div>",
	"<a href=x\ntitle=\"1\n2\" data-x='3\n4'>t</a>",
	"<pre>\nfirst line kept? no\n\nsecond</pre>",
	"<pre>\n\n\nthree</pre><listing>\nl</listing>",
	"<textarea>\nleading\n</textarea><textarea name=t\n>a\n<b\nc>\n</textarea\n>after\n",
	"<title>a\n<b\n></title>",
	"<style>\na{}\n</style>\n<p>after style\n</p>",
	"<xmp>\n<b\nx>\n</xmp>",
	"<!--\ncomment\n-->text\n<!-->\n<!--->\n<!-- a --!>\nb",
	"<!doctype\nhtml>\n<?pi\nx>\n</\nbogus>\n</>\n",
	"&amp\n&#10\n&#x\n&notit\n<a title='&amp\n'>&lt\n</a>",
	"a < b\nc <\nd </ e\n",
	"<p\n/>\n<br/\n><img src=\"x\"\n/\n>",
	"<a b=\"c\"d\n=e\nf>x</a><a //=\"x\ny\">z</a>",
	"<script>\nvar a = '</script>'\n</script>\n<p>\nafter</p>",
	"<svg>\n<title>a\n<b>\n</title><![CDATA[\nx\n]]></svg>\n",
	"<select>\n<title>\n<b\nc>\n</title></select>",
	"<table>\n<tr>\n<td>a\n</td></tr>\n</table>",
	"<div a=\"\n\"b='\n'c=\nd>\n</div>",
	"\n\n\n",
	"<p>x</p\n><p>y</p \n>",
}

// TestMergeTricky: HTML with newlines in every place a newline can be.
func TestMergeTricky(t *testing.T) {
	t.Parallel()
	for _, s := range tricky {
		checkSame(t, s, s, fragmentDOM)
		checkSame(t, "document "+s, s, documentDOM)
	}
	// A newline inside a tag becomes a space, one in text "&#10;": one line.
	ev := parseEvent(t, frame.Merge("", "<div\nclass=\"a\">1\n2\n3</div>"))
	if ev.lines != 1 {
		t.Errorf("%d data lines, want 1: %q", ev.lines, ev.fragments)
	}
	// A comment's newlines are its own.
	if ev := parseEvent(t, frame.Merge("", "<div><!--\n--></div>")); ev.lines != 2 {
		t.Errorf("%d data lines, want 2: %q", ev.lines, ev.fragments)
	}
}

// TestMergeRandomHTML puts HTML-ish pieces together at random and checks
// that the client's DOM is the one the HTML parses to.
func TestMergeRandomHTML(t *testing.T) {
	t.Parallel()
	pieces := strings.Fields(`< > </ / = " ' & amp; amp #10; ; a div p pre textarea title style script xmp svg math select
		table td !-- -- --> --!> ! ? ]]> <![CDATA[ b= class id x <p <div <a </div> </textarea> </title> </style> <!-- --> <br/>`)
	pieces = append(pieces, "\n", "\n", "\n", "\n", " ", "\t", "\r", "\r\n", "\f")
	rng := rand.New(rand.NewPCG(3, 5))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		var sb strings.Builder
		for range 1 + rng.IntN(30) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		checkSame(t, "random", sb.String(), fragmentDOM)
		if t.Failed() {
			return
		}
	}
}

// FuzzMerge: go test -fuzz FuzzMerge ./frame/
func FuzzMerge(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSame(t, "fuzz", s, fragmentDOM)
	})
}
