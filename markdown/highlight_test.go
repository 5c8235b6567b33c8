package markdown

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// TestHighlightKeepsTheCode checks that a highlighted block holds exactly the
// code (what the copy button copies, and what a reader sees), whatever the
// language, for complete and half-written code alike.
func TestHighlightKeepsTheCode(t *testing.T) {
	t.Parallel()
	codes := []string{
		"func main() {\n\tfmt.Println(\"hi\") // <b>\n}\n",
		"x := \"unterminated\n",
		"/* open comment\n",
		"if a < b && c > d { return '\\'' }\n",
		"</code></pre><script>alert(1)</script>\n",
		"日本語 🎉 &amp; &lt;\n",
		"\t\tindented\n\n\nblank lines\n",
		"no newline at the end",
	}
	langs := []string{"go", "python", "javascript", "html", "sql", "bash", "rust", "c++", "json", "yaml", "diff", "nosuchlanguage", ""}
	r := NewRenderer()
	for _, lang := range langs {
		for _, code := range codes {
			want := strings.TrimSuffix(code, "\n") + "\n"
			out := r.Render("```" + lang + "\n" + want + "```")
			checkSafeHTML(t, out)
			if got := codeText(t, out); got != want {
				t.Errorf("%s: the code block holds %q, want %q\nHTML: %s", lang, got, want, out)
			}
			if lang == "go" && !strings.Contains(out, `<span class="`) {
				t.Errorf("go code is not highlighted: %s", out)
			}
		}
	}
}

// TestHighlightStreamingCode feeds a code block token by token and checks
// every intermediate render keeps the text written so far.
func TestHighlightStreamingCode(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	code := "def mean(xs):\n    \"\"\"Average.\"\"\"\n    return sum(xs) / len(xs)  # float\n"
	src := "```python\n" + code + "```\n"
	for i := len("```python\n") + 1; i <= len(src)-len("```\n"); i++ {
		out := r.Render(src[:i])
		checkSafeHTML(t, out)
		got := codeText(t, out)
		part := src[len("```python\n"):i]
		if strings.TrimRight(got, "\n") != strings.TrimRight(part, "\n") {
			t.Fatalf("after %d bytes the block holds %q, want %q", i, got, part)
		}
	}
}

func TestHighlightLongCodeIsPlain(t *testing.T) {
	t.Parallel()
	r := NewRenderer()
	code := strings.Repeat("x := 1\n", maxHighlightBytes/7+1)
	out := r.Render("```go\n" + code + "```")
	if strings.Count(out, "<span") != 1 { // the language label
		t.Errorf("code of %d bytes was highlighted", len(code))
	}
	if got := codeText(t, out); got != code {
		t.Errorf("long code changed")
	}
}

// TestHighlightLexerLookup checks fence languages find chroma's lexers by
// name, alias and extension, and that an unknown language finds none.
func TestHighlightLexerLookup(t *testing.T) {
	t.Parallel()
	h := newHighlighter()
	for lang, want := range map[string]string{
		"go": "Go", "GO": "Go", "golang": "Go", "py": "Python", "python": "Python",
		"js": "JavaScript", "javascript": "JavaScript", "ts": "TypeScript", "rs": "Rust",
		"c++": "C++", "cpp": "C++", "sh": "Bash", "bash": "Bash", "yml": "YAML", "html": "HTML",
		"sql": "SQL", "json": "JSON", "diff": "Diff",
	} {
		l := h.lexer(lang)
		if l == nil || l.Config().Name != want {
			name := "none"
			if l != nil {
				name = l.Config().Name
			}
			t.Errorf("lexer(%q) = %s, want %s", lang, name, want)
		}
	}
	for _, lang := range []string{"nosuchlanguage", "x-y-z", "*", ""} {
		if l := h.lexer(lang); l != nil {
			t.Errorf("lexer(%q) = %s, want none", lang, l.Config().Name)
		}
	}
}

// TestChromaCSSUpToDate fails when static/chroma.css is not what WriteCSS
// writes: run `go generate ./markdown`.
func TestChromaCSSUpToDate(t *testing.T) {
	t.Parallel()
	var want bytes.Buffer
	if err := WriteCSS(&want); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../static/chroma.css")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("static/chroma.css is stale: run `go generate ./markdown`")
	}
}

// TestChromaCSS checks the stylesheet against what the highlighter writes:
// every class a span can get has a rule (else it would be a wasted span) and
// no rule is for a class spans never get; the dark block overrides every
// property of every light rule (else light colours would stay in dark mode);
// every token colour is readable on its background.
func TestChromaCSS(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteCSS(&buf); err != nil {
		t.Fatal(err)
	}
	css := buf.String()
	light, dark, ok := strings.Cut(css, "@media (prefers-color-scheme: dark) {")
	if !ok {
		t.Fatalf("no dark block:\n%s", css)
	}
	dark, _, _ = strings.Cut(dark, "\n}\n")
	if strings.Contains(css, "style=") || strings.Contains(css, "@import") || strings.Contains(css, "url(") {
		t.Errorf("the stylesheet loads or inlines something")
	}

	ruleRE := regexp.MustCompile(`(?m)^\s*(\.chroma \.([a-z0-9]+)|\.code) \{ ([^}]*) \}$`)
	parse := func(part string) map[string]map[string]string {
		rules := map[string]map[string]string{}
		for _, m := range ruleRE.FindAllStringSubmatch(part, -1) {
			decls := map[string]string{}
			for _, d := range strings.Split(m[3], "; ") {
				p, v, _ := strings.Cut(d, ": ")
				decls[p] = v
			}
			if rules[m[1]] == nil {
				rules[m[1]] = decls
			}
		}
		return rules
	}
	lightRules, darkRules := parse(light), parse(dark)

	h := newHighlighter()
	var inCSS []string
	for sel := range lightRules {
		inCSS = append(inCSS, sel)
	}
	for sel := range darkRules {
		if lightRules[sel] == nil {
			inCSS = append(inCSS, sel)
		}
	}
	var spans []string
	for c := range h.styled {
		spans = append(spans, ".chroma ."+c)
	}
	spans = append(spans, ".code")
	slices.Sort(inCSS)
	slices.Sort(spans)
	if !slices.Equal(inCSS, spans) {
		t.Errorf("classes with rules %v\ndiffer from the classes spans get %v", inCSS, spans)
	}

	for sel, decls := range lightRules {
		for p := range decls {
			if _, ok := darkRules[sel][p]; !ok {
				t.Errorf("dark mode keeps the light %s of %s", p, sel)
			}
		}
	}

	for name, rules := range map[string]map[string]map[string]string{"light": lightRules, "dark": darkRules} {
		bg, err := parseHex(rules[".code"]["background-color"])
		if err != nil {
			t.Fatalf("%s background: %v", name, err)
		}
		for sel, decls := range rules {
			c, ok := decls["color"]
			if !ok || c == "inherit" {
				continue
			}
			fg, err := parseHex(c)
			if err != nil {
				t.Fatalf("%s %s: %v", name, sel, err)
			}
			back := bg
			if b, ok := decls["background-color"]; ok && sel != ".code" {
				if back, err = parseHex(b); err != nil {
					t.Fatal(err)
				}
			}
			if got := contrast(fg, back); got < minContrast {
				t.Errorf("%s %s: %s on %s has contrast %.2f, want at least %.1f", name, sel, c, back.hex(), got, minContrast)
			}
		}
	}
}

// codeText returns the text of the first <code> element of a fragment.
func codeText(t *testing.T, fragment string) string {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(fragment))
	depth := 0
	var sb strings.Builder
	for {
		switch z.Next() {
		case html.ErrorToken:
			return sb.String()
		case html.StartTagToken:
			if name, _ := z.TagName(); string(name) == "code" {
				depth++
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "code" {
				return sb.String()
			}
		case html.TextToken:
			if depth > 0 {
				sb.Write(z.Text())
			}
		}
	}
}
