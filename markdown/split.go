package markdown

import "strings"

// Split returns the byte offsets where blocks start in text (always starting
// with 0 when text is non-empty; empty text gives nil).
//
// The split is prefix-stable: whether a boundary sits at the start of a line
// depends only on the text before that line and on the line's first byte, so
// once a boundary exists in a prefix, appending text never moves or removes
// it and never changes the text of an earlier block. That is what lets a Doc
// freeze every block but the last. goldmark's AST is deliberately not used:
// its block structure for a prefix can change when more text arrives.
//
// A boundary is placed at the start of a line L when the previous line is
// blank (spaces and tabs only), L starts with a non-whitespace byte in column
// 0 (so indented list continuations and indented code stay with the previous
// block) and L is not inside a ``` or ~~~ fenced code block. "\r\n" is
// treated as "\n"; offsets always refer to text as given.
func Split(text string) []int {
	s := newScanner()
	return s.scan(text, nil)
}

// scanner is the state of the line scanner behind Split, kept between calls
// so a growing text is scanned once: scan resumes where the previous call
// stopped instead of starting over.
type scanner struct {
	// line is the offset of the first line not yet consumed; it may be
	// incomplete (no '\n' yet).
	line int
	// searched is the offset up to which the current line is known to have
	// no '\n', so a long growing line is not searched again per token.
	searched int
	// last is the last boundary reported, or -1, so the start of an
	// incomplete line is not reported twice.
	last int
	// prevBlank says whether the line before line was blank.
	prevBlank bool
	// inFence, fenceChar and fenceLen describe the open fenced code block.
	inFence   bool
	fenceChar byte
	fenceLen  int
}

// newScanner returns a scanner positioned at the start of an empty text.
func newScanner() scanner {
	return scanner{last: -1}
}

// scan appends to starts the block boundaries found in text since the
// previous call and returns the result. text must extend the text passed to
// the previous call on the same scanner.
func (s *scanner) scan(text string, starts []int) []int {
	for s.line < len(text) {
		ls := s.line
		if ls > s.last && s.boundaryAt(text, ls) {
			s.last = ls
			starts = append(starts, ls)
		}
		from := max(s.searched, ls)
		nl := strings.IndexByte(text[from:], '\n')
		if nl < 0 {
			// Incomplete line: it changes the state only once it ends.
			s.searched = len(text)
			return starts
		}
		end := from + nl
		s.consume(text[ls:end])
		s.line = end + 1
		s.searched = s.line
	}
	return starts
}

// boundaryAt reports whether a block starts at the line beginning at ls,
// given the state left by the lines before it. It looks only at text[ls], so
// the answer is final as soon as the line's first byte has arrived.
func (s *scanner) boundaryAt(text string, ls int) bool {
	if ls == 0 {
		return true
	}
	return s.prevBlank && !s.inFence && !isSpace(text[ls])
}

// consume updates the state with one complete line, without its '\n'.
func (s *scanner) consume(line string) {
	line = strings.TrimSuffix(line, "\r")
	blank := isBlank(line)
	if s.inFence {
		if closesFence(line, s.fenceChar, s.fenceLen) {
			s.inFence = false
		}
	} else if c, n, ok := opensFence(line); ok {
		s.inFence, s.fenceChar, s.fenceLen = true, c, n
	}
	s.prevBlank = blank
}

// isSpace reports whether b may not start a block: a line starting with it is
// indented, blank, or (for '\r') may still turn out blank.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\r' || b == '\n'
}

// isBlank reports whether line holds nothing but spaces and tabs.
func isBlank(line string) bool {
	for i := 0; i < len(line); i++ {
		if !isSpace(line[i]) {
			return false
		}
	}
	return true
}

// fenceStart skips the up to three spaces of indentation CommonMark allows
// before a fence and returns the fence character and run length there, or
// ok false if no run of at least three '`' or '~' starts there.
func fenceStart(line string) (c byte, n int, rest string, ok bool) {
	i := 0
	for i < len(line) && i < 3 && line[i] == ' ' {
		i++
	}
	if i == len(line) || (line[i] != '`' && line[i] != '~') {
		return 0, 0, "", false
	}
	c = line[i]
	j := i
	for j < len(line) && line[j] == c {
		j++
	}
	if j-i < 3 {
		return 0, 0, "", false
	}
	return c, j - i, line[j:], true
}

// opensFence reports whether line opens a fenced code block, and with which
// character and length. A backtick fence's info string may not contain a
// backtick (CommonMark), so "```foo```" is inline code, not a fence.
func opensFence(line string) (c byte, n int, ok bool) {
	c, n, rest, ok := fenceStart(line)
	if !ok || (c == '`' && strings.IndexByte(rest, '`') >= 0) {
		return 0, 0, false
	}
	return c, n, true
}

// closesFence reports whether line closes a fence opened with n times c: the
// same character at least n times, then only spaces or tabs.
func closesFence(line string, c byte, n int) bool {
	fc, fn, rest, ok := fenceStart(line)
	return ok && fc == c && fn >= n && strings.Trim(rest, " \t") == ""
}
