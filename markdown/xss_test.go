package markdown

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// xssVector is one entry of testdata/xss.json: hostile text a model (or a
// person) might send. The main package's browser test sends the same
// vectors through a real page.
type xssVector struct {
	Name string `json:"name"`
	Text string `json:"text"`
	// Shows is the text a reader must see in the rendered answer
	// (whitespace collapsed); empty means the vector's text itself.
	Shows string `json:"shows"`
}

func loadXSS(t *testing.T) []xssVector {
	t.Helper()
	data, err := os.ReadFile("testdata/xss.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []xssVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatalf("testdata/xss.json: %v", err)
	}
	if len(vs) < 30 {
		t.Fatalf("testdata/xss.json has %d vectors, want at least 30", len(vs))
	}
	return vs
}

// TestXSSCorpus renders every vector of the corpus and checks that the HTML
// holds nothing executable or loadable (checkSafeHTML: only the elements and
// attributes goldmark and the highlighter write, no handlers, no style, no
// data-*, no img, links only to http(s) and mailto with rel and target), and
// that the hostile text is still shown to the reader rather than dropped.
// Every intermediate state of the answer streamed byte by byte is checked
// too: a prefix of a vector is a different document.
func TestXSSCorpus(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	for _, v := range loadXSS(t) {
		t.Run(v.Name, func(t *testing.T) {
			out := r.Render(v.Text)
			checkSafeHTML(t, out)
			want := v.Shows
			if want == "" {
				want = v.Text
			}
			if got := visibleText(t, out); !strings.Contains(got, collapse(want)) {
				t.Errorf("the reader sees\n%q\nwant it to contain\n%q\nHTML: %s", got, collapse(want), out)
			}

			d := NewDoc(r)
			for i := range len(v.Text) {
				d.Append(v.Text[i : i+1])
				for _, b := range d.Blocks() {
					checkSafeHTML(t, b)
				}
			}
		})
	}
}

// visibleText returns the text of an HTML fragment with runs of whitespace
// collapsed to one space, as a reader sees it (near enough: block elements
// are separated by a space, inline ones are not).
func visibleText(t *testing.T, fragment string) string {
	t.Helper()
	nodes, err := html.ParseFragment(strings.NewReader(fragment), &html.Node{Type: html.ElementNode, Data: "div", DataAtom: atom.Div})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.TextNode:
			sb.WriteString(n.Data)
		case html.ElementNode:
			if blockElements[n.Data] {
				sb.WriteString(" ")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
	return collapse(sb.String())
}

// blockElements are the elements whose text a browser separates from what
// surrounds it.
var blockElements = map[string]bool{
	"p": true, "div": true, "pre": true, "li": true, "ul": true, "ol": true, "blockquote": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "br": true, "hr": true,
	"table": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true,
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }
