package markdown

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// The limits below keep the work and the output of a block proportional to
// its Markdown. A model's answer can echo anything a user asks for, so any
// input must render in time roughly linear in its size and to HTML at most
// maxHTML of it: goldmark alone turned 32,000 '>' into 27 times as much
// HTML, a table with 2,000 columns and 2,000 one-byte rows into 2,500 times
// as much, and some unmatched emphasis or link syntax into quadratic time.
//
// Each limit applies to the part of the Markdown beyond it, which is then
// shown as text (a quote marker beyond maxNesting, an emphasis run beyond
// maxInlineRuns); the output bound is enforced last, by showing the whole
// block as text (plainHTML). All of it depends on the block's text only, so
// a block always renders the same way.

// maxHTML is the most HTML a block of n bytes of Markdown renders to.
//
// Ordinary Markdown stays well under it: prose renders to about its size,
// tables to 2 to 6 times it, and highlighted code to 8 to 13 times (a span
// with its class around every token), hence the factor 16. The constant
// covers the markup of a few code blocks (about 230 bytes each) around
// little code.
func maxHTML(n int) int {
	return 16*n + 4<<10
}

// maxNesting is the deepest nesting of block quotes and lists. An answer's
// lists nest three or four deep; each level costs goldmark a check on every
// later line (quadratic time for deep nesting) and writes about 25 bytes of
// tags per byte of marker.
const maxNesting = 16

// maxInlineRuns bounds, per paragraph (or heading or table cell), how many
// delimiter runs of each kind are parsed as syntax: emphasis and
// strikethrough runs, link and image brackets, and code span backticks.
// goldmark matches each closing delimiter against all the open ones, so the
// time of emphasis grows with the square of their number; 256 of one kind
// in a paragraph is far beyond what an answer writes.
//
// A link's closing bracket and a code span's opening backticks also scan
// ahead, up to the end of the line or of the paragraph: those are further
// limited to maxInlineScan bytes scanned per paragraph, but never below
// minInlineRuns.
const (
	maxInlineRuns = 256
	minInlineRuns = 16
	maxInlineScan = 1 << 20
)

// maxTableSlack is how many table cells beyond one per byte of the
// paragraph a table may have. goldmark pads every row to the header's
// number of columns, so a wide header over many one-byte rows made millions
// of empty cells.
const maxTableSlack = 256

// maxLinkBytes bounds the link destinations and titles the links of a block
// of n bytes of Markdown may write in total. A reference definition's long
// URL is written again for every use of its label.
func maxLinkBytes(n int) int {
	return 2*n + 1<<10
}

// The kinds of inline syntax counted against maxInlineRuns.
const (
	runEmphasis = iota
	runLink
	runCode
	runKinds
)

// newGuardedParser returns goldmark's CommonMark parser with the GFM
// extensions NewRenderer uses (tables, strikethrough, linkify, task lists),
// with the parsers whose cost or output grows faster than their input
// wrapped in the guards below. The extensions' renderers are added by
// NewRenderer.
func newGuardedParser() parser.Parser {
	// Keys for parser.Context values: identities, not state.
	budgetKey := parser.NewContextKey()
	guard := func(ip parser.InlineParser, kind int) inlineGuard {
		return inlineGuard{InlineParser: ip, key: budgetKey, kind: kind}
	}
	return parser.NewParser(
		parser.WithBlockParsers(guardedBlockParsers()...),
		// parser.DefaultInlineParsers and the GFM ones.
		parser.WithInlineParsers(
			util.Prioritized(guard(parser.NewCodeSpanParser(), runCode), 100),
			util.Prioritized(guard(parser.NewLinkParser(), runLink), 200),
			util.Prioritized(parser.NewAutoLinkParser(), 300),
			util.Prioritized(parser.NewRawHTMLParser(), 400),
			util.Prioritized(guard(parser.NewEmphasisParser(), runEmphasis), 500),
			util.Prioritized(guard(extension.NewStrikethroughParser(), runEmphasis), 500),
			util.Prioritized(extension.NewLinkifyParser(), 999),
			util.Prioritized(extension.NewTaskCheckBoxParser(), 0),
		),
		parser.WithParagraphTransformers(
			util.Prioritized(parser.LinkReferenceParagraphTransformer, 100),
			util.Prioritized(tableGuard{extension.NewTableParagraphTransformer()}, 200),
		),
		parser.WithASTTransformers(util.Prioritized(extension.NewTableASTTransformer(), 0)),
	)
}

// guardedBlockParsers are parser.DefaultBlockParsers, the containers
// guarded. A list item is no deeper than its list.
func guardedBlockParsers() []util.PrioritizedValue {
	return []util.PrioritizedValue{
		util.Prioritized(parser.NewSetextHeadingParser(), 100),
		util.Prioritized(parser.NewThematicBreakParser(), 200),
		util.Prioritized(nestingGuard{parser.NewListParser()}, 300),
		util.Prioritized(parser.NewListItemParser(), 400),
		util.Prioritized(parser.NewCodeBlockParser(), 500),
		util.Prioritized(parser.NewATXHeadingParser(), 600),
		util.Prioritized(parser.NewFencedCodeBlockParser(), 700),
		util.Prioritized(nestingGuard{parser.NewBlockquoteParser()}, 800),
		util.Prioritized(parser.NewHTMLBlockParser(), 900),
		util.Prioritized(parser.NewParagraphParser(), 1000),
	}
}

// nestingGuard wraps the parser of a container block (block quote, list)
// so that it opens no container deeper than maxNesting: the marker is then
// text of the paragraph it starts.
type nestingGuard struct{ parser.BlockParser }

// Open implements parser.BlockParser.
func (g nestingGuard) Open(parent ast.Node, reader text.Reader, pc parser.Context) (ast.Node, parser.State) {
	if nesting(parent) >= maxNesting {
		return nil, parser.NoChildren
	}
	return g.BlockParser.Open(parent, reader, pc)
}

// nesting counts the block quotes and lists n is in (n included).
func nesting(n ast.Node) int {
	d := 0
	for ; n != nil; n = n.Parent() {
		if k := n.Kind(); k == ast.KindBlockquote || k == ast.KindList {
			d++
		}
	}
	return d
}

// inlineGuard wraps an inline parser so that it runs at most its kind's
// budget of times per inline block (see maxInlineRuns); later delimiter runs
// are text.
type inlineGuard struct {
	parser.InlineParser
	key  parser.ContextKey
	kind int
}

// inlineBudget counts the guarded runs parsed in one inline block.
type inlineBudget struct {
	block ast.Node
	left  [runKinds]int
}

// newInlineBudget returns the budget of an inline block.
func newInlineBudget(block ast.Node) *inlineBudget {
	size := 0
	lines := block.Lines()
	for i := range lines.Len() {
		seg := lines.At(i)
		size += seg.Len()
	}
	scans := min(maxInlineRuns, max(minInlineRuns, maxInlineScan/max(size, 1)))
	b := &inlineBudget{block: block}
	b.left[runEmphasis] = maxInlineRuns
	b.left[runLink] = scans
	b.left[runCode] = scans
	return b
}

// Parse implements parser.InlineParser.
func (g inlineGuard) Parse(parent ast.Node, block text.Reader, pc parser.Context) ast.Node {
	line, seg := block.PeekLine()
	if len(line) == 0 || line[0] == '!' && (len(line) < 2 || line[1] != '[') {
		return g.InlineParser.Parse(parent, block, pc) // not an image: no work
	}
	b, _ := pc.Get(g.key).(*inlineBudget)
	if b == nil || b.block != parent {
		b = newInlineBudget(parent)
		pc.Set(g.key, b)
	}
	if b.left[g.kind] > 0 {
		b.left[g.kind]--
		return g.InlineParser.Parse(parent, block, pc)
	}
	n := 1
	for n < len(line) && line[n] == line[0] {
		n++
	}
	block.Advance(n)
	return ast.NewTextSegment(text.NewSegment(seg.Start, seg.Start+n))
}

// CloseBlock implements parser.CloseBlocker for the parsers that need it
// (the link parser drops its unmatched brackets there).
func (g inlineGuard) CloseBlock(parent ast.Node, block text.Reader, pc parser.Context) {
	if cb, ok := g.InlineParser.(parser.CloseBlocker); ok {
		cb.CloseBlock(parent, block, pc)
	}
}

// tableGuard wraps the GFM table paragraph transformer: a paragraph whose
// table would have more cells than one per byte (plus maxTableSlack) stays a
// paragraph.
type tableGuard struct{ parser.ParagraphTransformer }

// Transform implements parser.ParagraphTransformer.
func (g tableGuard) Transform(node *ast.Paragraph, reader text.Reader, pc parser.Context) {
	lines := node.Lines()
	if lines.Len() < 2 {
		return
	}
	src := reader.Source()
	size := lines.At(lines.Len()-1).Stop - lines.At(0).Start
	// Any line that may be the delimiter row, as the transformer takes the
	// first that is: its columns times the rows from its header down.
	for i := 1; i < lines.Len(); i++ {
		seg := lines.At(i)
		line := seg.Value(src)
		if !maybeDelimiterRow(line) {
			continue
		}
		cols := bytes.Count(line, []byte{'|'}) + 1
		if rows := lines.Len() - i + 1; cols*rows > size+maxTableSlack {
			return
		}
	}
	g.ParagraphTransformer.Transform(node, reader, pc)
}

// maybeDelimiterRow reports whether line could be a table's delimiter row
// ("|:--|--:|"): nothing but '|', '-', ':' and blanks, and not only '-'.
func maybeDelimiterRow(line []byte) bool {
	dashesOnly := true
	for _, c := range line {
		switch c {
		case '-':
		case '|', ':', ' ', '\t', '\n', '\r', '\v', '\f':
			dashesOnly = false
		default:
			return false
		}
	}
	return !dashesOnly
}

// blockInfo is what render needs to know about a parsed block beyond its
// HTML.
type blockInfo struct {
	// linkBytes is the length of all link and image destinations and
	// titles, as written.
	linkBytes int
	// growing says the block's last code block is a fenced one that may
	// still grow: nothing but an unfinished line follows its code. Its
	// closing fence, if any, has not been followed by a newline yet, so
	// more text may make that line code.
	growing bool
}

// inspect walks a parsed block.
func inspect(doc ast.Node, src []byte) blockInfo {
	var info blockInfo
	var last ast.Node // the last code block
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Link:
			info.linkBytes += len(n.Destination) + len(n.Title)
		case *ast.Image:
			info.linkBytes += len(n.Destination) + len(n.Title)
		case *ast.FencedCodeBlock, *ast.CodeBlock:
			last = n
		}
		return ast.WalkContinue, nil
	})
	if f, ok := last.(*ast.FencedCodeBlock); ok && f.Lines().Len() > 0 {
		end := f.Lines().At(f.Lines().Len() - 1).Stop
		info.growing = bytes.IndexByte(src[end:], '\n') < 0
	}
	return info
}

var _ util.BufWriter = (*limitWriter)(nil)

// limitWriter is the util.BufWriter goldmark renders into: a bytes.Buffer
// that keeps at most limit bytes and records that more were written. Without
// it goldmark would wrap the buffer in a 4 KiB bufio.Writer on every call.
type limitWriter struct {
	bytes.Buffer
	limit int
	over  bool
}

func (w *limitWriter) fits(n int) bool {
	if w.over || w.Len()+n > w.limit {
		w.over = true
		return false
	}
	return true
}

// Write implements io.Writer; bytes over the limit are dropped.
func (w *limitWriter) Write(p []byte) (int, error) {
	if w.fits(len(p)) {
		w.Buffer.Write(p)
	}
	return len(p), nil
}

// WriteString implements io.StringWriter; bytes over the limit are dropped.
func (w *limitWriter) WriteString(s string) (int, error) {
	if w.fits(len(s)) {
		w.Buffer.WriteString(s)
	}
	return len(s), nil
}

// WriteByte implements io.ByteWriter; bytes over the limit are dropped.
func (w *limitWriter) WriteByte(c byte) error {
	if w.fits(1) {
		w.Buffer.WriteByte(c)
	}
	return nil
}

// WriteRune writes r's UTF-8 encoding; bytes over the limit are dropped.
func (w *limitWriter) WriteRune(r rune) (int, error) {
	if w.fits(utf8.RuneLen(r)) {
		return w.Buffer.WriteRune(r)
	}
	return utf8.RuneLen(r), nil
}

// Buffered implements util.BufWriter: nothing is held back.
func (*limitWriter) Buffered() int { return 0 }

// Flush implements util.BufWriter: there is nothing to flush.
func (*limitWriter) Flush() error { return nil }

// plainHTML is a block shown as text: its Markdown escaped in a paragraph,
// lines kept apart by <br>. At most 5 bytes per byte of src plus 7, within
// maxHTML.
func plainHTML(src string) string {
	src = strings.Trim(src, " \t\n")
	if src == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len(src) + len(src)/4 + 16)
	b.WriteString("<p>")
	for i, line := range strings.Split(src, "\n") {
		if i > 0 {
			b.WriteString("<br>\n")
		}
		escapeTo(&b, line)
	}
	b.WriteString("</p>")
	return b.String()
}
