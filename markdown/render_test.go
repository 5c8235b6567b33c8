package markdown

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    string   // exact output, if set
		has     []string // substrings the output must contain
		hasNot  []string // substrings the output must not contain
		noLinks bool     // output must have no href or src at all
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
			want:   "<pre><code class=\"language-html\">&lt;script&gt;alert(1)&lt;/script&gt;\n</code></pre>",
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
			want: `<p><a href="https://example.com" rel="nofollow noopener" target="_blank">a</a></p>`,
		},
		{
			name: "autolink",
			src:  "<https://example.com/x?a=1&b=2>",
			has:  []string{`href="https://example.com/x?a=1&amp;b=2"`, `rel="nofollow noopener"`, `target="_blank"`},
		},
		{
			name: "linkify",
			src:  "see www.example.com",
			has:  []string{`href="http://www.example.com"`, `rel="nofollow noopener"`, `target="_blank"`},
		},
		{
			name: "mailto",
			src:  "[mail](mailto:a@example.com)",
			has:  []string{`href="mailto:a@example.com"`, `rel="nofollow"`},
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
			name: "image keeps https src",
			src:  "![cat](https://example.com/cat.png)",
			want: `<p><img src="https://example.com/cat.png" alt="cat"></p>`,
		},
		{
			name: "go fence gets language class",
			src:  "```go\nx := 1\n```",
			want: "<pre><code class=\"language-go\">x := 1\n</code></pre>",
		},
		{
			name: "c++ fence gets language class",
			src:  "```c++\nint x;\n```",
			has:  []string{`class="language-c++"`},
		},
		{
			name:   "odd language class is dropped",
			src:    "```go\"onclick=\"alert(1)\nx\n```",
			want:   "<pre><code>x\n</code></pre>",
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
			want: "<pre><code>a\n</code></pre>",
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
			checkSafeHTML(t, got)
		})
	}
}

// checkSafeHTML parses out and fails on anything that could run script or
// load from a non-http(s) URL, whatever Markdown produced it: dangerous
// elements, event handler or style attributes, and href/src values other than
// absolute http(s) or mailto. It also checks the links carry rel and target.
func checkSafeHTML(t testing.TB, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("output is not valid UTF-8: %q", out)
	}
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
		switch tok.Data {
		case "script", "style", "iframe", "object", "embed", "svg", "math", "form", "textarea", "link", "meta", "base":
			t.Errorf("dangerous element <%s> in %q", tok.Data, out)
		}
		var rel, target, href string
		for _, a := range tok.Attr {
			k := strings.ToLower(a.Key)
			switch {
			case strings.HasPrefix(k, "on"), k == "style", k == "srcset", k == "formaction":
				t.Errorf("dangerous attribute %s=%q on <%s> in %q", a.Key, a.Val, tok.Data, out)
			case k == "href" || k == "src" || k == "cite":
				v := strings.ToLower(a.Val)
				if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "mailto:") {
					t.Errorf("URL %s=%q on <%s> in %q", a.Key, a.Val, tok.Data, out)
				}
				if k == "href" {
					href = v
				}
			case k == "rel":
				rel = a.Val
			case k == "target":
				target = a.Val
			case k == "class" && !strings.HasPrefix(a.Val, "language-"):
				t.Errorf("class %q on <%s> in %q", a.Val, tok.Data, out)
			}
		}
		if tok.Data == "a" && strings.HasPrefix(href, "http") && (rel != "nofollow noopener" || target != "_blank") {
			t.Errorf("link without rel/target: %q", out)
		}
	}
}

func TestRenderCorpusIsSafe(t *testing.T) {
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
