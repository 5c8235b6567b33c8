package markdown

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"
)

func TestRender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     string
		want    string   // exact output, if set
		has     []string // substrings the output must contain
		hasNot  []string // substrings the output must not contain
		noLinks bool     // output must have no href or src at all
		noImage bool     // output must have no <img>
	}{
		{
			name:   "script as text is escaped",
			src:    "<script>alert(1)</script>",
			want:   "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>",
			hasNot: []string{"<script"},
		},
		{
			name:   "inline script is escaped",
			src:    "Be careful with <script>alert(1)</script> here.",
			has:    []string{"&lt;script&gt;alert(1)&lt;/script&gt;"},
			hasNot: []string{"<script"},
		},
		{
			name:    "javascript link",
			src:     "[x](javascript:alert(1))",
			hasNot:  []string{"javascript:"},
			noLinks: true,
		},
		{
			name:    "javascript link mixed case",
			src:     "[x](JaVaScRiPt:alert(1))",
			hasNot:  []string{"avascript"},
			noLinks: true,
		},
		{
			name:    "javascript link entity encoded",
			src:     "[x](&#106;avascript:alert(1))",
			hasNot:  []string{"avascript:"},
			noLinks: true,
		},
		{
			name:    "vbscript link",
			src:     "[x](vbscript:msgbox(1))",
			noLinks: true,
		},
		{
			name:    "data link",
			src:     "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
			noLinks: true,
		},
		{
			name:    "javascript image",
			src:     "![x](javascript:alert(1))",
			hasNot:  []string{"javascript:"},
			noLinks: true,
		},
		{
			name:    "data image",
			src:     "![x](data:image/svg+xml;base64,PHN2Zz4=)",
			noLinks: true,
		},
		{
			name:   "img onerror",
			src:    "<img src=x onerror=alert(1)>",
			want:   "<p>&lt;img src=x onerror=alert(1)&gt;</p>",
			hasNot: []string{"<img"},
		},
		{
			name:   "svg onload",
			src:    "<svg onload=alert(1)>",
			hasNot: []string{"<svg"},
		},
		{
			name:   "inline tag with handler",
			src:    "a <b onclick=alert(1)>b</b> c",
			want:   "<p>a &lt;b onclick=alert(1)&gt;b&lt;/b&gt; c</p>",
			hasNot: []string{"<b"},
		},
		{
			name:   "iframe block",
			src:    "<iframe src=\"https://evil.example\"></iframe>",
			hasNot: []string{"<iframe"},
		},
		{
			name:   "HTML inside a code fence is escaped",
			src:    "```html\n<script>alert(1)</script>\n```",
			has:    []string{`<span class="nt">script</span>`, `&lt;`},
			hasNot: []string{"<script"},
		},
		{
			name:   "HTML inside a code span is escaped",
			src:    "`<img src=x onerror=alert(1)>`",
			want:   "<p><code>&lt;img src=x onerror=alert(1)&gt;</code></p>",
			hasNot: []string{"<img"},
		},
		{
			name: "link keeps href and gets rel and target",
			src:  "[a](https://example.com)",
			want: `<p><a href="https://example.com" rel="nofollow noreferrer noopener" target="_blank">a</a></p>`,
		},
		{
			name: "autolink",
			src:  "<https://example.com/x?a=1&b=2>",
			has:  []string{`href="https://example.com/x?a=1&amp;b=2"`, `rel="nofollow noreferrer noopener"`, `target="_blank"`},
		},
		{
			name: "linkify",
			src:  "see www.example.com",
			has:  []string{`href="http://www.example.com"`, `rel="nofollow noreferrer noopener"`, `target="_blank"`},
		},
		{
			name: "mailto",
			src:  "[mail](mailto:a@example.com)",
			has:  []string{`href="mailto:a@example.com"`, `rel="nofollow noreferrer"`},
		},
		{
			name:    "relative link is dropped",
			src:     "[admin](/admin/delete)",
			want:    "<p>admin</p>",
			noLinks: true,
		},
		{
			name:    "scheme without host is dropped",
			src:     "[x](https:admin)",
			noLinks: true,
		},
		{
			name:   "title cannot break out of the attribute",
			src:    `[x](https://example.com "a\" onmouseover=\"alert(1)")`,
			hasNot: []string{`" onmouseover`},
		},
		{
			name:    "image becomes a link to it",
			src:     "![a *cat*](https://example.com/cat.png)",
			want:    `<p><a href="https://example.com/cat.png" rel="nofollow noreferrer noopener" target="_blank">a <em>cat</em></a></p>`,
			noImage: true,
		},
		{
			name:    "image without alt shows its address",
			src:     `![](https://example.com/a.png "A title")`,
			want:    `<p><a href="https://example.com/a.png" title="A title" rel="nofollow noreferrer noopener" target="_blank">https://example.com/a.png</a></p>`,
			noImage: true,
		},
		{
			name:    "image in a link is its alt text",
			src:     "[![badge](https://example.com/b.svg)](https://example.com/ci)",
			want:    `<p><a href="https://example.com/ci" rel="nofollow noreferrer noopener" target="_blank">badge</a></p>`,
			noImage: true,
		},
		{
			name:    "reference image",
			src:     "![x][img]\n\n[img]: https://evil.example/leak?q=secret",
			has:     []string{`<a href="https://evil.example/leak?q=secret"`},
			noImage: true,
		},
		{
			name:    "javascript image is text",
			src:     "![](javascript:alert(1))",
			want:    `<p>javascript:alert(1)</p>`,
			noLinks: true,
		},
		{
			name: "go fence is highlighted, with a copy button",
			src:  "```go\nx := 1\n```",
			want: `<div class="code"><div class="code-bar"><span class="code-lang">go</span>` +
				`<button type="button" class="copy" aria-label="Copy code">Copy</button></div>` +
				`<pre class="chroma"><code class="language-go"><span class="nx">x </span><span class="o">:= </span><span class="mi">1</span>` + "\n</code></pre></div>",
		},
		{
			name: "fence without language is plain, with a copy button",
			src:  "```\na < b\n```",
			want: `<div class="code"><div class="code-bar"><button type="button" class="copy" aria-label="Copy code">Copy</button></div>` +
				`<pre class="chroma"><code>a &lt; b` + "\n</code></pre></div>",
		},
		{
			name: "unknown language is plain",
			src:  "```nosuchlanguage\nx\n```",
			has:  []string{`<span class="code-lang">nosuchlanguage</span>`, `<code class="language-nosuchlanguage">x` + "\n</code>"},
		},
		{
			name: "c++ fence gets language class",
			src:  "```c++\nint x;\n```",
			has:  []string{`class="language-c++"`},
		},
		{
			name:   "odd language class is dropped",
			src:    "```go\"onclick=\"alert(1)\nx\n```",
			has:    []string{"<pre class=\"chroma\"><code>x\n</code></pre>"},
			hasNot: []string{"onclick"},
		},
		{
			name:   "class only on code",
			src:    "<p class=\"language-go\">x</p>",
			hasNot: []string{`<p class`},
		},
		{
			name: "table with alignment",
			src:  "| a | b |\n|:--|--:|\n| 1 | 2 |",
			has:  []string{"<table>", `<th align="left">a</th>`, `<td align="right">2</td>`},
		},
		{
			name: "strikethrough",
			src:  "~~gone~~",
			want: "<p><del>gone</del></p>",
		},
		{
			name: "task list",
			src:  "- [x] done\n- [ ] todo",
			has:  []string{`<input checked="" disabled="" type="checkbox"> done`, `<input disabled="" type="checkbox"> todo`},
		},
		{
			name: "later numbered chunk keeps its start",
			src:  "3. three\n4. four",
			has:  []string{`<ol start="3">`},
		},
		{
			name: "surrounding whitespace is trimmed",
			src:  "\n\n  para  \n\n\n",
			want: "<p>para</p>",
		},
		{
			name: "CRLF is treated as LF",
			src:  "```\r\na\r\n```\r\n",
			has:  []string{"<code>a\n</code>"},
		},
		{
			name: "trailing half rune is not rendered",
			src:  "caf\xc3",
			want: "<p>caf</p>",
		},
		{
			name: "invalid bytes are replaced",
			src:  "a\xffb",
			want: "<p>a\uFFFDb</p>",
		},
		{
			name: "empty",
			src:  "",
			want: "",
		},
	}
	r := NewRenderer()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Render(tt.src)
			if tt.want != "" || tt.src == "" {
				if got != tt.want {
					t.Errorf("Render(%q)\n got %q\nwant %q", tt.src, got, tt.want)
				}
			}
			for _, s := range tt.has {
				if !strings.Contains(got, s) {
					t.Errorf("Render(%q) = %q, want it to contain %q", tt.src, got, s)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(got, s) {
					t.Errorf("Render(%q) = %q, want it not to contain %q", tt.src, got, s)
				}
			}
			if tt.noLinks && (strings.Contains(got, "href=") || strings.Contains(got, "src=")) {
				t.Errorf("Render(%q) = %q, want no href or src", tt.src, got)
			}
			if tt.noImage && strings.Contains(got, "<img") {
				t.Errorf("Render(%q) = %q, want no <img>", tt.src, got)
			}
			checkSafeHTML(t, got)
		})
	}
}

// checkSafeHTML parses out and fails on anything that could run script or
// make the browser load something, whatever Markdown produced it: elements
// other than those goldmark writes (and the code block markup this package
// adds), event handler, style or data-* attributes (Datastar runs data-on-*),
// classes other than a code language, the code block's and chroma's, and
// href values other than absolute http(s) or mailto. It also checks that
// links carry rel and target.
func checkSafeHTML(t testing.TB, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("output is not valid UTF-8: %q", out)
	}
	tokenClasses := newHighlighter().styled
	z := html.NewTokenizer(strings.NewReader(out))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		if !allowedElements[tok.Data] {
			t.Errorf("element <%s> in %q", tok.Data, out)
		}
		var rel, target, href, class string
		for _, a := range tok.Attr {
			k := strings.ToLower(a.Key)
			switch {
			case k == "href":
				v := strings.ToLower(a.Val)
				if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "mailto:") {
					t.Errorf("URL %s=%q on <%s> in %q", a.Key, a.Val, tok.Data, out)
				}
				href = v
			case k == "rel":
				rel = a.Val
			case k == "target":
				target = a.Val
			case k == "class":
				class = a.Val
			case k == "title" || k == "start" || k == "align" || k == "checked" || k == "disabled" || k == "type" || k == "aria-label":
			default:
				t.Errorf("attribute %s=%q on <%s> in %q", a.Key, a.Val, tok.Data, out)
			}
		}
		switch {
		case class == "":
		case tok.Data == "code" && regexp.MustCompile(`^language-[a-zA-Z0-9_+-]+$`).MatchString(class):
		case tok.Data == "span" && (tokenClasses[class] || class == "code-lang"):
		case tok.Data == "div" && (class == "code" || class == "code-bar"):
		case tok.Data == "pre" && class == "chroma":
		case tok.Data == "button" && class == "copy":
		default:
			t.Errorf("class %q on <%s> in %q", class, tok.Data, out)
		}
		if tok.Data == "button" && tok.String() != `<button type="button" class="copy" aria-label="Copy code">` {
			t.Errorf("button %s in %q", tok.String(), out)
		}
		if tok.Data == "input" && tok.String() != `<input checked="" disabled="" type="checkbox">` && tok.String() != `<input disabled="" type="checkbox">` {
			t.Errorf("input %s in %q", tok.String(), out)
		}
		if tok.Data == "a" && strings.HasPrefix(href, "http") && (rel != "nofollow noreferrer noopener" || target != "_blank") {
			t.Errorf("link without rel/target: %q", out)
		}
		if tok.Data == "a" && strings.HasPrefix(href, "mailto:") && rel != "nofollow noreferrer" {
			t.Errorf("mailto link without rel: %q", out)
		}
	}
}

// allowedElements are the elements a rendered answer may contain: what
// goldmark writes for CommonMark and GFM, and the code block markup.
var allowedElements = map[string]bool{
	"p": true, "br": true, "hr": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"blockquote": true, "ul": true, "ol": true, "li": true, "pre": true, "code": true, "em": true, "strong": true,
	"del": true, "table": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true, "a": true,
	"input": true, "div": true, "span": true, "button": true,
}

func TestRenderCorpusIsSafe(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	for name, text := range corpus(t) {
		for _, s := range splitText(text) {
			out := r.Render(s)
			if strings.Contains(s, "<script>") && strings.Contains(out, "<script") {
				t.Errorf("%s: script passed through: %q", name, out)
			}
			checkSafeHTML(t, out)
		}
	}
}

// TestRendererConcurrent renders the corpus from several goroutines at once
// (run with -race) and checks the results match a sequential render.
func TestRendererConcurrent(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	docs := corpus(t)
	want := make(map[string]string)
	for name, text := range docs {
		want[name] = r.Render(text)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for name, text := range docs {
				if got := r.Render(text); got != want[name] {
					t.Errorf("%s: concurrent render differs", name)
				}
			}
		})
	}
	wg.Wait()
}

// splitText returns the blocks of text as strings.
func splitText(text string) []string {
	starts := Split(text)
	blocks := make([]string, len(starts))
	for i, s := range starts {
		end := len(text)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		blocks[i] = text[s:end]
	}
	return blocks
}
