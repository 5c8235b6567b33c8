package markdown

import (
	"fmt"
	"html"
	"math/bits"
	"strings"
	"sync/atomic"

	"github.com/alecthomas/chroma/v2"
	"github.com/alecthomas/chroma/v2/lexers"
	"github.com/alecthomas/chroma/v2/styles"
)

// The chroma styles of code blocks: light by default, dark when the system
// asks for it. Only their CSS depends on them (see WriteCSS); the HTML carries
// classes only, so the page needs no inline styles.
const (
	LightStyle = "github"
	DarkStyle  = "github-dark"
)

// maxHighlightBytes bounds the code a block may hold and still be
// highlighted: chroma's lexers use backtracking regular expressions (with a
// timeout per match) and cost 4 to 14 µs per byte. Longer code is shown
// plain.
const maxHighlightBytes = 32 << 10

// maxHighlightRatio bounds the highlighted HTML of code, in bytes per byte
// of code (plus maxHighlightSlack for a few spans around very little code):
// ordinary code takes 6 to 13 (a span around most tokens), code made of
// one-character tokens ("a+b+c…") over 24. Such code is shown plain, which
// keeps a block within maxHTML.
const (
	maxHighlightRatio = 16
	maxHighlightSlack = 256
)

// A code block that is still growing is highlighted whole while it holds at
// most growWholeBytes. Beyond that only a prefix is highlighted, up to a
// checkpoint that moves in steps of a quarter of the largest power of two
// not above its size (but at least minCheckpointStep), and the rest is
// shown plain until the next checkpoint or until the block is complete.
// Highlighted prefixes are cached, so chroma lexes each prefix once: about
// 5.5 times the final size in all (1 + 1.25 + 1.5 + 1.75 per doubling),
// instead of the whole code on every frame (n²/8 bytes for n bytes of code
// arriving 4 bytes at a time).
const (
	growWholeBytes    = 128
	minCheckpointStep = 64
)

// highlightCacheBytes bounds the memory of a Renderer's cache of highlighted
// code (keys and values).
const highlightCacheBytes = 16 << 20

// highlighter rewrites the code blocks of sanitised HTML into highlighted
// code with a copy button. Safe for concurrent use: its maps are not changed
// after newHighlighter, and its cache has a lock.
type highlighter struct {
	// styled holds the chroma class names that have a rule in the light or
	// dark style: tokens of other classes are written without a span,
	// which keeps a streamed code block small.
	styled map[string]bool
	// lexers maps a fence language (lower case) to its lexer: chroma's
	// lexer names, aliases and file extensions. Fence languages come from
	// the model; chroma's own lookup of an unknown name scans every
	// lexer's file patterns (tens of milliseconds), which a growing block
	// would pay on every frame.
	lexers map[string]chroma.Lexer
	// cache maps a lexer's name and some code to the code's highlighted
	// HTML ("" when it is shown plain): complete code blocks and the
	// checkpoint prefixes of growing ones, so a block that is rendered
	// again (every frame of a growing answer, every page load) costs no
	// lexing.
	cache *blockCache
	// lexed counts the bytes of code given to chroma, for tests.
	lexed atomic.Int64
}

func newHighlighter() *highlighter {
	h := &highlighter{styled: map[string]bool{}, lexers: map[string]chroma.Lexer{}, cache: newBlockCache(highlightCacheBytes)}
	for _, name := range []string{LightStyle, DarkStyle} {
		st := styles.Get(name)
		bg := st.Get(chroma.Background)
		for t := range chroma.StandardTypes {
			// Negative types are the formatter's own (lines, line
			// numbers); lexers never emit them.
			if c := tokenClass(t); t >= 0 && c != "" && !st.Get(t).Sub(bg).IsZero() {
				h.styled[c] = true
			}
		}
	}
	// Names and aliases first, then extensions ("*.py" for "py"), where
	// the lexer of higher priority wins.
	byExt := map[string]chroma.Lexer{}
	for _, l := range lexers.GlobalLexerRegistry.Lexers {
		cfg := l.Config()
		for _, name := range append([]string{cfg.Name}, cfg.Aliases...) {
			name = strings.ToLower(name)
			if _, dup := h.lexers[name]; !dup {
				h.lexers[name] = l
			}
		}
		for _, pattern := range cfg.Filenames {
			ext, ok := strings.CutPrefix(pattern, "*.")
			if !ok || strings.ContainsAny(ext, "*?[]{}") {
				continue
			}
			ext = strings.ToLower(ext)
			if prev, dup := byExt[ext]; !dup || cfg.Priority > prev.Config().Priority {
				byExt[ext] = l
			}
		}
	}
	for ext, l := range byExt {
		if _, dup := h.lexers[ext]; !dup {
			h.lexers[ext] = l
		}
	}
	return h
}

// tokenClass is the CSS class chroma's HTML formatter gives a token type:
// that of the nearest type (itself or a parent) with a standard class. Plain
// text, whitespace and lexer errors get none (an error token is usually just
// code that is still being written).
func tokenClass(t chroma.TokenType) string {
	for {
		if c, ok := chroma.StandardTypes[t]; ok {
			switch t {
			case chroma.Whitespace, chroma.Error, chroma.Text:
				return ""
			}
			return c
		}
		if t == 0 {
			return ""
		}
		t = t.Parent()
	}
}

// The markup goldmark and the sanitiser write for a code block. Inside it
// there is only escaped text.
const (
	codeOpen     = "<pre><code"
	codeLangAttr = ` class="language-`
	codeClose    = "</code></pre>"
)

// codeBlocks returns s with each <pre><code> block replaced by its
// highlighted form:
//
//	<div class="code"><div class="code-bar"><span class="code-lang">go</span><button ...>Copy</button></div>
//	<pre class="chroma"><code class="language-go">…spans…</code></pre></div>
//
// s must be the sanitiser's output, in which such a block can only come from
// a Markdown code block (raw HTML is escaped before it gets there). The code
// is unescaped, highlighted and escaped again here, so the result holds
// exactly the text of the block plus markup written by this function.
//
// growing says the last code block may still grow (see blockInfo): it is
// highlighted only up to a checkpoint, and partial reports that some of it
// was left plain.
func (h *highlighter) codeBlocks(s string, growing bool) (out string, partial bool) {
	if !strings.Contains(s, codeOpen) {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	// left is the length of s from the last block on.
	left := len(s) - strings.LastIndex(s, codeOpen)
	for {
		i := strings.Index(s, codeOpen)
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		last := len(s)-i == left
		lang, body, rest, ok := cutCodeBlock(s[i:])
		if !ok {
			// Not the shape goldmark writes; keep it as the sanitiser left it.
			b.WriteString(codeOpen)
			s = s[i+len(codeOpen):]
			continue
		}
		if h.writeBlock(&b, lang, html.UnescapeString(body), growing && last) {
			partial = true
		}
		s = rest
	}
	b.WriteString(s)
	return b.String(), partial
}

// cutCodeBlock parses `<pre><code[ class="language-L"]>BODY</code></pre>` at
// the start of s, where BODY is escaped text without tags.
func cutCodeBlock(s string) (lang, body, rest string, ok bool) {
	s = s[len(codeOpen):]
	if v, found := strings.CutPrefix(s, codeLangAttr); found {
		end := strings.Index(v, `">`)
		if end < 0 {
			return "", "", "", false
		}
		lang, s = v[:end], v[end+2:]
	} else if v, found := strings.CutPrefix(s, ">"); found {
		s = v
	} else {
		return "", "", "", false
	}
	end := strings.Index(s, codeClose)
	if end < 0 || strings.ContainsAny(s[:end], "<>") {
		return "", "", "", false
	}
	return lang, s[:end], s[end+len(codeClose):], true
}

// writeBlock writes one code block with its bar (language and copy button),
// a growing one highlighted up to its checkpoint only, and reports whether
// some of the code was left plain for that reason.
func (h *highlighter) writeBlock(b *strings.Builder, lang, code string, growing bool) (partial bool) {
	elang := html.EscapeString(lang)
	b.WriteString(`<div class="code"><div class="code-bar">`)
	if lang != "" {
		b.WriteString(`<span class="code-lang">` + elang + `</span>`)
	}
	b.WriteString(`<button type="button" class="copy" aria-label="Copy code">Copy</button></div><pre class="chroma"><code`)
	if lang != "" {
		b.WriteString(` class="language-` + elang + `"`)
	}
	b.WriteString(">")
	var lexer chroma.Lexer
	if lang != "" {
		lexer = h.lexer(lang)
	}
	switch {
	case lexer == nil || code == "" || len(code) > maxHighlightBytes:
		escapeTo(b, code)
	case growing && len(code) <= growWholeBytes:
		// Little code: highlighted whole on every frame (at most
		// growWholeBytes²/2 bytes lexed in all), not cached, so the
		// cache does not fill with every prefix of every block.
		writeBody(b, h.highlight(lexer, code), code)
	case growing:
		cp := checkpoint(code)
		writeBody(b, h.cached(lexer, code[:cp]), code[:cp])
		escapeTo(b, code[cp:])
		partial = cp < len(code)
	default:
		writeBody(b, h.cached(lexer, code), code)
	}
	b.WriteString("</code></pre></div>")
	return partial
}

// writeBody writes the highlighted HTML of code, or code escaped if there
// is none.
func writeBody(b *strings.Builder, body, code string) {
	if body == "" {
		escapeTo(b, code)
		return
	}
	b.WriteString(body)
}

// checkpoint returns where the highlighted prefix of a growing code block
// ends: after the last line that ends at or before the latest checkpoint.
// It depends only on code[:the checkpoint], so it stays put while the code
// grows to the next one.
func checkpoint(code string) int {
	if len(code) <= growWholeBytes {
		return len(code)
	}
	step := max(minCheckpointStep, 1<<(bits.Len(uint(len(code)))-1)/4)
	return strings.LastIndexByte(code[:len(code)/step*step], '\n') + 1
}

// cached returns the highlighted HTML of code, as highlight, from the
// cache when it was highlighted before.
func (h *highlighter) cached(lexer chroma.Lexer, code string) string {
	if code == "" {
		return ""
	}
	key := lexer.Config().Name + "\x00" + code
	if body, ok := h.cache.get(key); ok {
		return body
	}
	body := h.highlight(lexer, code)
	h.cache.put(key, body)
	return body
}

// highlight returns code as escaped text in classed spans, or "" if it
// cannot be highlighted (or its spans would take more than
// maxHighlightRatio bytes per byte of code). Adjacent tokens of one class
// share a span, and tokens of unstyled classes get none.
func (h *highlighter) highlight(lexer chroma.Lexer, code string) string {
	h.lexed.Add(int64(len(code)))
	tokens, err := tokenise(lexer, code)
	if err != nil {
		return ""
	}
	// The tokens must be the code, in order: what the copy button copies.
	// Some lexers add a final newline, which is dropped.
	pos := 0
	for i, t := range tokens {
		switch {
		case strings.HasPrefix(code[pos:], t.Value):
			pos += len(t.Value)
		case i == len(tokens)-1 && t.Value == code[pos:]+"\n":
			pos = len(code)
		default:
			return ""
		}
	}
	if pos != len(code) {
		return ""
	}

	var b strings.Builder
	b.Grow(len(code) * 4)
	// A run is the code from runStart to pos, all of one class.
	runStart, class := 0, ""
	pos = 0
	flush := func() {
		if pos == runStart {
			return
		}
		if class != "" {
			b.WriteString(`<span class="` + class + `">`)
		}
		escapeTo(&b, code[runStart:pos])
		if class != "" {
			b.WriteString(`</span>`)
		}
		runStart = pos
	}
	for _, t := range tokens {
		v := t.Value
		if pos+len(v) > len(code) {
			v = code[pos:]
		}
		c := tokenClass(t.Type)
		if !h.styled[c] {
			c = ""
		}
		// Blanks between two tokens of a class join their span.
		blank := strings.TrimSpace(v) == "" && !strings.Contains(v, "\n")
		if c != class && !(class != "" && blank) {
			flush()
			class = c
		}
		pos += len(v)
	}
	flush()
	if b.Len() > maxHighlightRatio*len(code)+maxHighlightSlack {
		return ""
	}
	return b.String()
}

// escapeTo writes s to b with the five characters that matter in HTML
// escaped, as html.EscapeString does, without building a new string.
func escapeTo(b *strings.Builder, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// tokenise runs lexer over code. Its work is bounded by maxHighlightBytes,
// not by a clock: a rendering must be a pure function of the text, or a page
// rendered on a busy machine would differ from the frames rendered on an idle
// one (chroma bounds each backtracking match itself). chroma lexers panic on
// some internal errors; that must not take down the room that renders the
// answer.
func tokenise(lexer chroma.Lexer, code string) (tokens []chroma.Token, err error) {
	defer func() {
		if p := recover(); p != nil {
			tokens, err = nil, fmt.Errorf("chroma %s lexer panicked: %v", lexer.Config().Name, p)
		}
	}()
	it, err := lexer.Tokenise(nil, code)
	if err != nil {
		return nil, fmt.Errorf("chroma %s lexer: %w", lexer.Config().Name, err)
	}
	for t := it(); t != chroma.EOF; t = it() {
		tokens = append(tokens, t)
	}
	return tokens, nil
}

// lexer returns the lexer for a fence language, or nil if chroma has none.
func (h *highlighter) lexer(lang string) chroma.Lexer {
	return h.lexers[strings.ToLower(lang)]
}
