package markdown

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer"
	gmhtml "github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// Renderer turns Markdown into sanitised HTML. Safe for concurrent use.
//
// It holds the configured goldmark converter, bluemonday policy and code
// highlighter so they are built once per process rather than once per token;
// all are safe for use by several goroutines after construction.
type Renderer struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
	hl     *highlighter
	cache  *blockCache // finished blocks, see renderFinal
}

// NewRenderer returns a Renderer for GitHub-flavoured Markdown whose output is
// safe to insert into a page: raw HTML in the source is shown as escaped text,
// never passed through, and the generated HTML is filtered again by a
// bluemonday allow-list of exactly the elements and attributes goldmark
// writes, so a model (or a prompt injection it repeats) cannot run script in
// the browser or make it load anything.
//
// Code blocks are then highlighted (see highlighter) after sanitising: the
// classed spans and the copy button are written by this package around text
// it escapes itself, so the policy never has to allow them for text that
// comes from the model.
func NewRenderer() *Renderer {
	md := goldmark.New(
		// The GFM set (linkify, tables, strikethrough, task lists), its
		// parsers guarded against input that costs more than linear time
		// or output (see newGuardedParser), so their renderers are added
		// here rather than by goldmark's extensions.
		goldmark.WithParser(newGuardedParser()),
		// No html.WithUnsafe: raw HTML is never passed through. goldmark
		// would drop it silently; rawHTMLAsText shows it as text instead.
		// Images become links (imageAsLink).
		goldmark.WithRendererOptions(
			renderer.WithNodeRenderers(
				util.Prioritized(rawHTMLAsText{}, 100),
				// Table alignment uses the align attribute: the default
				// style attribute is removed by the sanitiser.
				util.Prioritized(extension.NewTableHTMLRenderer(
					extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute)), 500),
				util.Prioritized(extension.NewStrikethroughHTMLRenderer(), 500),
				util.Prioritized(extension.NewTaskCheckBoxHTMLRenderer(), 500),
			),
		),
	)
	return &Renderer{md: md, policy: newPolicy(), hl: newHighlighter(), cache: newBlockCache(blockCacheBytes)}
}

// newPolicy returns the allow-list for goldmark's output: the elements and
// attributes it writes for CommonMark and the GFM extensions above, and
// nothing else. In particular no img (a model could exfiltrate the
// conversation through an image URL the browser loads by itself), no style,
// no class except a code block's language, no data-* attributes (Datastar
// would run them) and no event handlers.
func newPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements(
		"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
		"ul", "ol", "li", "pre", "code", "em", "strong", "del",
		"table", "thead", "tbody", "tr", "th", "td",
	)
	// The language of fenced code, for the highlighter.
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^language-[a-zA-Z0-9_+-]+$`)).OnElements("code")
	// A numbered list cut into blocks by blank lines renders its later
	// chunks as <ol start="N">; without start the list would renumber.
	p.AllowAttrs("start").Matching(bluemonday.Integer).OnElements("ol")
	p.AllowAttrs("align").Matching(regexp.MustCompile(`^(left|center|right)$`)).OnElements("th", "td")
	// Task list items render as disabled checkboxes.
	p.AllowAttrs("type").Matching(regexp.MustCompile(`^checkbox$`)).OnElements("input")
	p.AllowAttrs("checked", "disabled").Matching(regexp.MustCompile(`^$`)).OnElements("input")

	p.AllowAttrs("href").OnElements("a")
	p.AllowAttrs("title").Matching(bluemonday.Paragraph).OnElements("a")
	// Links open in a new tab that gets no window.opener handle on the chat
	// (noopener), no Referer with the conversation's address (noreferrer)
	// and no search ranking from us (nofollow).
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	// Only absolute http(s) and mailto URLs. Relative URLs would point into
	// our own application (and would not get target/rel), and "https:path"
	// without a host is resolved by browsers as relative, so require a host.
	p.RequireParseableURLs(true)
	p.AllowRelativeURLs(false)
	hasHost := func(u *url.URL) bool { return u.Host != "" }
	p.AllowURLSchemeWithCustomPolicy("http", hasHost)
	p.AllowURLSchemeWithCustomPolicy("https", hasHost)
	p.AllowURLSchemes("mailto")
	return p
}

// Render renders one block (or any Markdown) to sanitised HTML with
// surrounding whitespace trimmed. "\r\n" line endings are treated as "\n".
//
// The HTML is at most maxHTML(len(src)) bytes, whatever src holds: past
// that the block is shown as text. src is taken to be a block that may
// still grow: a fenced code block it ends in is highlighted only up to a
// checkpoint (see highlighter.codeBlocks).
func (r *Renderer) Render(src string) string {
	h, _ := r.render(src, false)
	return h
}

// render is Render, for a block that will not grow if final. partial
// reports that the HTML shows a growing code block partly unhighlighted, so
// that the same text rendered as final differs.
func (r *Renderer) render(src string, final bool) (html string, partial bool) {
	limit := maxHTML(len(src))
	src = validUTF8(src)
	if strings.IndexByte(src, '\r') >= 0 {
		src = strings.ReplaceAll(src, "\r\n", "\n")
	}
	b := []byte(src)
	doc := r.md.Parser().Parse(text.NewReader(b))
	info := inspect(doc, b)
	if info.linkBytes > maxLinkBytes(len(b)) {
		return plainHTML(src), false
	}
	w := &limitWriter{limit: limit}
	w.Grow(min(len(src)+len(src)/4+16, limit))
	if err := r.md.Renderer().Render(w, b, doc); err != nil || w.over {
		// goldmark reports no parse errors and writing into memory cannot
		// fail: the HTML went over the limit. Show the text.
		return plainHTML(src), false
	}
	out, partial := r.hl.codeBlocks(string(bytes.TrimSpace(r.policy.SanitizeBytes(w.Bytes()))), info.growing && !final)
	if len(out) > limit {
		return plainHTML(src), false
	}
	return out, partial
}

// validUTF8 drops an incomplete UTF-8 sequence at the end of s and replaces
// any other invalid bytes with U+FFFD. A streamed token may end in the middle
// of a rune; the growing last block is rendered without the half rune instead
// of with a replacement character that flickers away on the next token, and
// the HTML handed to the transport is always valid UTF-8.
func validUTF8(s string) string {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(s); i++ {
		b := s[len(s)-i]
		if b < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(b) {
			if !utf8.FullRuneInString(s[len(s)-i:]) {
				s = s[:len(s)-i]
			}
			break
		}
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// rawHTMLAsText renders raw HTML found in the Markdown (blocks and inline
// tags) as escaped text. A model that writes "<br>" or "<script>" outside a
// code span means the characters, and dropping them (goldmark's safe
// default) would lose part of the answer; passing them through would be
// unsafe.
type rawHTMLAsText struct{}

// RegisterFuncs implements renderer.NodeRenderer.
func (rawHTMLAsText) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindHTMLBlock, renderHTMLBlockAsText)
	reg.Register(ast.KindRawHTML, renderRawHTMLAsText)
	reg.Register(ast.KindImage, renderImageAsLink)
}

// renderImageAsLink writes an image as a link to it, its alt text (or its
// address) as the link's text. An <img> would make every viewer's browser
// fetch the URL the moment the answer streams in: a prompt-injected model
// could put the conversation into that URL. A link is only followed when a
// person chooses to. Inside a link (a badge, say) only the alt text is
// written, as links cannot nest.
func renderImageAsLink(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	n := node.(*ast.Image)
	inLink := false
	for p := n.Parent(); p != nil; p = p.Parent() {
		if k := p.Kind(); k == ast.KindLink || k == ast.KindAutoLink {
			inLink = true
			break
		}
	}
	if !entering {
		if !inLink {
			_, _ = w.WriteString("</a>")
		}
		return ast.WalkContinue, nil
	}
	if inLink {
		return ast.WalkContinue, nil
	}
	dest := util.URLEscape(n.Destination, true)
	_, _ = w.WriteString(`<a href="`)
	if !gmhtml.IsDangerousURL(dest) {
		_, _ = w.Write(util.EscapeHTML(dest))
	}
	_ = w.WriteByte('"')
	if n.Title != nil {
		_, _ = w.WriteString(` title="`)
		gmhtml.DefaultWriter.Write(w, n.Title)
		_ = w.WriteByte('"')
	}
	_ = w.WriteByte('>')
	if n.ChildCount() == 0 {
		_, _ = w.Write(util.EscapeHTML(n.Destination))
	}
	return ast.WalkContinue, nil
}

// renderHTMLBlockAsText writes an HTML block as an escaped paragraph.
func renderHTMLBlockAsText(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.HTMLBlock)
	var text []byte
	for i := range n.Lines().Len() {
		seg := n.Lines().At(i)
		text = append(text, seg.Value(source)...)
	}
	if n.HasClosure() {
		text = append(text, n.ClosureLine.Value(source)...)
	}
	text = bytes.TrimRight(text, " \t\n")
	_, _ = w.WriteString("<p>")
	_, _ = w.Write(util.EscapeHTML(text))
	_, _ = w.WriteString("</p>\n")
	return ast.WalkSkipChildren, nil
}

// renderRawHTMLAsText writes an inline HTML tag as escaped text.
func renderRawHTMLAsText(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkSkipChildren, nil
	}
	n := node.(*ast.RawHTML)
	for i := range n.Segments.Len() {
		seg := n.Segments.At(i)
		_, _ = w.Write(util.EscapeHTML(seg.Value(source)))
	}
	return ast.WalkSkipChildren, nil
}
