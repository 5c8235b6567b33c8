package markdown

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alecthomas/chroma/v2"
)

// countingLexer is a chroma lexer that counts the bytes it is given: the
// highlighting work, measured without a clock.
type countingLexer struct {
	chroma.Lexer
	n *atomic.Int64
}

// Tokenise implements chroma.Lexer.
func (l countingLexer) Tokenise(o *chroma.TokeniseOptions, text string) (chroma.Iterator, error) {
	l.n.Add(int64(len(text)))
	return l.Lexer.Tokenise(o, text)
}

// countLexer makes r's lexer for lang count the bytes it lexes into n.
func countLexer(tb testing.TB, r *Renderer, lang string, n *atomic.Int64) {
	tb.Helper()
	l := r.hl.lexers[lang]
	if l == nil {
		tb.Fatalf("no lexer for %q", lang)
	}
	r.hl.lexers[lang] = countingLexer{Lexer: l, n: n}
}

// rubyCode returns at least size bytes of plausible Ruby, whole lines: a
// class with methods, strings, interpolation, symbols, comments, blocks and
// heredocs (which carry lexer state from line to line).
func rubyCode(size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `# Service %[1]d: fetches and caches records.
class Service%[1]d < Base
  DEFAULTS = { timeout: %[1]d, retries: 3, name: "svc-%[1]d" }.freeze

  def initialize(client, opts = {})
    @client = client
    @opts = DEFAULTS.merge(opts)
    @cache = Hash.new { |h, k| h[k] = [] }
  end

  def fetch(id, &blk)
    key = "record:#{id}:%[1]d"
    return @cache[key] if @cache.key?(key)
    rows = @client.get("/v1/items/#{id}", params: { limit: 10 }).map do |row|
      row.transform_keys(&:to_sym).slice(:id, :name, :price)
    end
    @cache[key] = rows.select { |r| r[:price].to_f > 0.5 * %[1]d }
    blk ? @cache[key].each(&blk) : @cache[key]
  rescue Timeout::Error => e
    warn <<~MSG
      fetch #{id} timed out after #{@opts[:timeout]}s: #{e.message}
    MSG
    []
  end
end

`, i)
	}
	return b.String()
}

// streamFence is an answer that is mostly a Ruby fence of size bytes.
func streamFence(size int) string {
	return "Here is the service:\n\n```ruby\n" + rubyCode(size) + "```\n"
}

// BenchmarkStreamCodeFence streams an answer holding a large Ruby fence in
// 4-byte appends, as a model's tokens arrive, and reports the bytes chroma
// lexed per answer.
func BenchmarkStreamCodeFence(b *testing.B) {
	for _, size := range []int{4 << 10, 15000} {
		text := streamFence(size)
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			var lexed atomic.Int64
			b.ReportAllocs()
			for b.Loop() {
				// A new renderer each time: its caches start cold, as
				// for a new answer.
				b.StopTimer()
				r := NewRenderer()
				countLexer(b, r, "ruby", &lexed)
				b.StartTimer()
				d := NewDoc(r)
				for i := 0; i < len(text); i += 4 {
					d.Append(text[i:min(i+4, len(text))])
				}
			}
			b.ReportMetric(float64(lexed.Load())/float64(b.N), "highlighted-bytes/op")
		})
	}
}

// benchHostile are inputs that amplified output or CPU time in goldmark
// (TestRenderBounded has more).
var benchHostile = []struct{ name, src string }{
	{"gt32000", strings.Repeat(">", 32000)},
	{"list10000", strings.Repeat("- ", 10000) + "x"},
	{"emph", "a**b" + strings.Repeat("c* ", 10000)},
	{"links", strings.Repeat("[a](b", 6000)},
	{"table2000", "|" + strings.Repeat("a|", 2000) + "\n|" + strings.Repeat(":-:|", 2000) + "\n" + strings.Repeat("|\n", 2000)},
	{"refs", "[b]: https://example.com/" + strings.Repeat("x", 2000) + "\n" + strings.Repeat("[b]", 10000)},
}

// BenchmarkHostile renders inputs built to amplify output or time (the
// first is 32,000 '>'), and reports the HTML bytes written per input byte.
func BenchmarkHostile(b *testing.B) {
	for _, h := range benchHostile {
		b.Run(h.name, func(b *testing.B) {
			r := NewRenderer()
			b.ReportAllocs()
			var out int
			for b.Loop() {
				out = len(r.Render(h.src))
			}
			b.ReportMetric(float64(out)/float64(len(h.src)), "html/src")
		})
	}
}
