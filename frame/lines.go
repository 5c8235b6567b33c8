package frame

import "strings"

// Why one data line: the beta.11 client joins a key's data lines with "\n",
// so HTML could be written one data line per line of HTML, but each would
// carry its "data: fragments " prefix: 17 bytes for every newline. HTML with
// many short lines (code blocks, lists, nested quotes) would nearly double
// on the wire, and a catch-up holding a whole conversation with it.
//
// A newline need not be a line break of the event. In text and in quoted
// attribute values the character reference "&#10;" is the same character
// once parsed (in <pre> and <textarea> too, whose leading newline the parser
// drops either way), and inside a tag, outside a quoted value, a newline is
// whitespace like a space. So the HTML is rewritten, newline by newline, into
// what the HTML parser turns into the same DOM. Newlines whose meaning is
// literal (in comments, in raw text such as <style>'s) still break the data
// line, and so does every newline after a start tag that changes how the rest
// is read in ways this scan does not follow (<script>, <noscript>,
// <plaintext>, <select>, <svg>, <math>); a fragment holds none of them, so
// the HTML of every frame is one data line.

// fragmentLines returns the "fragments" data lines of html.
func fragmentLines(html string) []string {
	html = foldCR(html)
	if strings.IndexByte(html, '\n') < 0 {
		return []string{"fragments " + html}
	}
	return dataLines("fragments", encodeNewlines(html))
}

// foldCR turns carriage returns into newlines: a carriage return would end
// an SSE line early, and HTML reads CR and CRLF as LF anyway.
func foldCR(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// The states of the scan: the HTML tokenizer's (WHATWG HTML, 13.2.5), as far
// as they decide what a newline means. In a tag every state but a quoted
// value treats a newline like a space.
const (
	stData        = iota // text: references decoded
	stRCDATA             // in a textarea or a title: text, references decoded, up to its end tag
	stRaw                // in a style and the like: text as it is, up to its end tag
	stLiteral            // to the end: every newline stays a line break
	stTagName            // after "<a" or "</a"
	stBeforeName         // before an attribute name
	stName               // in an attribute name
	stAfterName          // after an attribute name
	stBeforeValue        // after "="
	stValueDouble        // in a "quoted" value: references decoded
	stValueSingle        // in a 'quoted' value: references decoded
	stValueBare          // in an unquoted value
	stAfterValue         // after a quoted value
	stSelfClosing        // after "/" in a tag
	stEmit               // the tag's ">" was read
)

// rawText are the elements whose content is read as text, without
// references, up to their end tag.
var rawText = map[string]bool{"style": true, "xmp": true, "iframe": true, "noembed": true, "noframes": true}

// rcdata are the elements whose content is read as text, references
// decoded, up to their end tag.
var rcdata = map[string]bool{"textarea": true, "title": true}

// literalFrom are the start tags after which the scan keeps every newline:
// script (whose escaped states can end it after its end tag), noscript (raw
// text or markup, by whether the parser runs scripts), plaintext (text to
// the end), select (inside which some of the tags above do not switch) and
// foreign content (CDATA sections; <style> and <title> that are elements).
var literalFrom = map[string]bool{"script": true, "noscript": true, "plaintext": true, "select": true, "svg": true, "math": true}

// encodeNewlines rewrites the newlines of html (carriage returns folded)
// into "&#10;" or a space wherever that parses to the same DOM, and leaves
// the others. It is long because it is one state machine over the bytes
// (a small subset of the HTML tokenizer's): its states read best together.
func encodeNewlines(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	state := stData
	var (
		tag    []byte // name of the tag being read, lower case
		endTag bool   // it is an end tag
		inside string // the RCDATA or raw text element being read
	)
	// endTagAt reports whether s[i:] is inside's end tag: "</name" and then
	// whitespace, "/" or ">" (an "appropriate end tag").
	endTagAt := func(i int) bool {
		n := len(inside)
		if i+2+n >= len(s) || s[i] != '<' || s[i+1] != '/' || !strings.EqualFold(s[i+2:i+2+n], inside) {
			return false
		}
		c := s[i+2+n]
		return isSpace(c) || c == '/' || c == '>'
	}
	startTag := func(end bool) {
		tag, endTag = tag[:0], end
		state = stTagName
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch state {
		case stLiteral:
			b.WriteString(s[i:])
			return b.String()
		case stData, stRCDATA:
			switch {
			case c == '\n':
				b.WriteString("&#10;")
				i++
			case c != '<':
				b.WriteByte(c)
				i++
			case state == stRCDATA:
				if endTagAt(i) {
					b.WriteString("</")
					i += 2
					startTag(true)
				} else {
					b.WriteByte(c)
					i++
				}
			case strings.HasPrefix(s[i:], "<!--"):
				j := commentEnd(s, i+4)
				b.WriteString(s[i:j]) // a comment's newlines are its own
				i = j
			case strings.HasPrefix(s[i:], "<!"), strings.HasPrefix(s[i:], "<?"):
				// A bogus comment or a doctype, up to the next ">".
				j := upTo(s, i+2, ">")
				b.WriteString(s[i:j])
				i = j
			case i+1 < len(s) && isAlpha(s[i+1]):
				b.WriteByte(c)
				i++
				startTag(false)
			case strings.HasPrefix(s[i:], "</"):
				switch {
				case i+2 < len(s) && isAlpha(s[i+2]):
					b.WriteString("</")
					i += 2
					startTag(true)
				case i+2 == len(s) || s[i+2] == '>':
					b.WriteString("</")
					i += 2
				default: // a bogus comment
					j := upTo(s, i+2, ">")
					b.WriteString(s[i:j])
					i = j
				}
			default: // a "<" that opens nothing
				b.WriteByte(c)
				i++
			}
		case stRaw:
			if c == '<' && endTagAt(i) {
				b.WriteString("</")
				i += 2
				startTag(true)
				continue
			}
			b.WriteByte(c)
			i++
		case stValueDouble, stValueSingle:
			switch {
			case c == '\n':
				b.WriteString("&#10;")
			case c == '"' && state == stValueDouble, c == '\'' && state == stValueSingle:
				state = stAfterValue
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
			i++
		default: // in a tag, outside a quoted value
			if c == '\n' {
				c = ' '
			}
			next, consumed := tagStep(state, c)
			if state == stTagName && consumed && next == stTagName {
				tag = append(tag, lower(c))
			}
			state = next
			if consumed {
				b.WriteByte(c)
				i++
			}
			if state == stEmit {
				state = stData
				name := string(tag)
				switch {
				case endTag:
					inside = ""
				case literalFrom[name]:
					state = stLiteral
				case rawText[name]:
					state, inside = stRaw, name
				case rcdata[name]:
					state, inside = stRCDATA, name
				}
			}
		}
	}
	return b.String()
}

// tagStep is the tokenizer's step in a tag for character c (a newline read
// as a space): the next state, and whether c was consumed (when not, it is
// read again in the next state).
func tagStep(state int, c byte) (next int, consumed bool) {
	switch state {
	case stTagName:
		switch {
		case isSpace(c):
			return stBeforeName, true
		case c == '/':
			return stSelfClosing, true
		case c == '>':
			return stEmit, true
		}
		return stTagName, true
	case stBeforeName:
		switch {
		case isSpace(c):
			return stBeforeName, true
		case c == '/', c == '>':
			return stAfterName, false
		case c == '=': // an attribute whose name starts with "="
			return stName, true
		}
		return stName, false
	case stName:
		switch {
		case isSpace(c), c == '/', c == '>':
			return stAfterName, false
		case c == '=':
			return stBeforeValue, true
		}
		return stName, true
	case stAfterName:
		switch {
		case isSpace(c):
			return stAfterName, true
		case c == '/':
			return stSelfClosing, true
		case c == '=':
			return stBeforeValue, true
		case c == '>':
			return stEmit, true
		}
		return stName, false
	case stBeforeValue:
		switch {
		case isSpace(c):
			return stBeforeValue, true
		case c == '"':
			return stValueDouble, true
		case c == '\'':
			return stValueSingle, true
		case c == '>':
			return stEmit, true
		}
		return stValueBare, false
	case stValueBare:
		switch {
		case isSpace(c):
			return stBeforeName, true
		case c == '>':
			return stEmit, true
		}
		return stValueBare, true
	case stAfterValue:
		switch {
		case isSpace(c):
			return stBeforeName, true
		case c == '/':
			return stSelfClosing, true
		case c == '>':
			return stEmit, true
		}
		return stBeforeName, false
	case stSelfClosing:
		if c == '>' {
			return stEmit, true
		}
		return stBeforeName, false
	}
	panic("frame: not a tag state")
}

// commentEnd returns the index just past the comment whose text starts at
// from (after "<!--"): "<!-->" and "<!--->" are whole, else it ends at the
// first "-->" or "--!>", or at the end of s.
func commentEnd(s string, from int) int {
	rest := s[from:]
	switch {
	case strings.HasPrefix(rest, ">"):
		return from + 1
	case strings.HasPrefix(rest, "->"):
		return from + 2
	}
	end := len(s)
	if k := strings.Index(rest, "-->"); k >= 0 {
		end = from + k + 3
	}
	if k := strings.Index(rest, "--!>"); k >= 0 && from+k+4 < end {
		end = from + k + 4
	}
	return end
}

// upTo returns the index just past the first sep in s from from, or len(s).
func upTo(s string, from int, sep string) int {
	if k := strings.Index(s[from:], sep); k >= 0 {
		return from + k + len(sep)
	}
	return len(s)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
