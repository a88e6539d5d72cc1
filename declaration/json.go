package declaration

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// riskmon reads its two input records with its own JSON scanner: one pass
// over the bytes that checks the grammar strictly (RFC 8259), refuses a key
// that appears twice in one object (at any depth), and keeps the values of
// the fields it knows as slices of the input (a string is copied only when it
// has escapes). Validation then runs over those values in the spec's order, so
// the first error named does not depend on the order of the keys.

// Kinds of JSON value; kindAbsent is the zero value.
const (
	kindAbsent uint8 = iota
	kindNull
	kindString
	kindNumber
	kindTrue
	kindFalse
	kindObject
	kindArray
)

// value is one field's JSON value as read: a string's unescaped bytes, a
// number's text. Objects and arrays are read into their own structures.
type value struct {
	kind uint8
	b    []byte
}

// maxDepth bounds nesting, so that hostile input cannot exhaust the stack.
const maxDepth = 128

type scanner struct {
	b   []byte
	i   int
	err *Error
	dup *Error // the first repeated key
	// keys holds the keys of the objects being read that are not fields
	// riskmon knows, as a stack: each object checks its own part for a
	// repeated key.
	keys [][]byte
}

func (s *scanner) syntax(msg string) {
	if s.err == nil {
		s.err = &Error{Kind: "json", Msg: "not valid JSON: " + msg + " at byte " + strconv.Itoa(s.i)}
	}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (s *scanner) peek() byte {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return s.b[s.i]
	}
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) unexpected() {
	if s.i >= len(s.b) {
		s.syntax("unexpected end")
		return
	}
	r, _ := utf8.DecodeRune(s.b[s.i:]) // the whole character, not its first byte
	s.syntax("unexpected " + strconv.QuoteRune(r))
}

// str reads a string whose opening quote is at s.i.
func (s *scanner) str() []byte {
	s.i++
	start := s.i
	b, i := s.b, s.i
	for i < len(b) && !stringEnd[b[i]] {
		i++
	}
	s.i = i
	switch {
	case i >= len(b):
		s.syntax("unterminated string")
		return nil
	case b[i] == '"':
		s.i++
		return b[start:i]
	case b[i] == '\\':
		return s.unescape(start)
	}
	s.syntax("control character in a string")
	return nil
}

// stringEnd marks the bytes that end a run of plain characters in a string:
// the quote, the backslash and the control characters.
var stringEnd = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// unescape reads the rest of a string that has an escape at s.i into new
// bytes. A \u escape that is not a valid code point or surrogate pair becomes
// U+FFFD, as in Go's encoding/json.
func (s *scanner) unescape(start int) []byte {
	out := append(make([]byte, 0, s.i-start+16), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return out
		case c < 0x20:
			s.syntax("control character in a string")
			return nil
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		at := s.i
		if s.i+1 >= len(s.b) {
			break
		}
		switch e := s.b[s.i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4(s.i + 2)
			if !ok {
				s.badEscape(at)
				return nil
			}
			s.i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := s.hex4(s.i + 4); ok && s.b[s.i+2] == '\\' && s.b[s.i+3] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						s.i += 6
						r = d
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			s.badEscape(at)
			return nil
		}
		s.i += 2
	}
	s.syntax("unterminated string")
	return nil
}

func (s *scanner) badEscape(at int) {
	if s.err == nil {
		s.err = &Error{Kind: "json", Msg: "not valid JSON: invalid escape sequence at byte " + strconv.Itoa(at)}
	}
}

// hex4 reads four hex digits at i.
func (s *scanner) hex4(i int) (rune, bool) {
	if i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number's text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() []byte {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		s.unexpected()
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			s.unexpected()
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			s.unexpected()
			return nil
		}
	}
	return s.b[start:s.i]
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	s.unexpected()
	return false
}

// value reads a value into v. An object or an array is checked and
// skipped, and only its kind kept.
func (s *scanner) value(v *value, depth int) {
	switch c := s.peek(); c {
	case '"':
		v.kind, v.b = kindString, s.str()
	case '{':
		v.kind = kindObject
		s.skipObject(depth)
	case '[':
		v.kind = kindArray
		s.skipArray(depth)
	case 't':
		v.kind = kindTrue
		s.literal("true")
	case 'f':
		v.kind = kindFalse
		s.literal("false")
	case 'n':
		v.kind = kindNull
		s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			v.kind, v.b = kindNumber, s.number()
			return
		}
		s.unexpected()
	}
}

// skip checks and skips one value.
func (s *scanner) skip(depth int) {
	var v value
	s.value(&v, depth)
}

func (s *scanner) skipObject(depth int) {
	var m members
	for s.next(&m, depth) {
		s.field(&m, nil, depth) // no field riskmon reads: checked and skipped
	}
}

func (s *scanner) skipArray(depth int) {
	for n := 0; s.element(n, depth); n++ {
		s.skip(depth + 1)
	}
}

// members is the state of one object being read.
type members struct {
	n     int
	seen  uint64 // the fields riskmon reads already read, by index (field)
	mark  int    // where this object's unknown keys start in scanner.keys
	many  map[string]struct{}
	key   []byte
	ended bool
}

// next reads up to the next member's key and its colon; false at the
// object's end or on an error. The first call reads the opening brace.
func (s *scanner) next(m *members, depth int) bool {
	if s.err != nil || m.ended {
		return false
	}
	if m.n == 0 {
		if depth > maxDepth {
			s.syntax("nested too deep")
			return false
		}
		s.i++ // '{', seen by the caller
		m.mark = len(s.keys)
		if s.peek() == '}' {
			s.i++
			m.ended = true
			return false
		}
	} else {
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			m.ended = true
			s.keys = s.keys[:m.mark]
			return false
		default:
			s.unexpected()
			return false
		}
	}
	m.n++
	if s.peek() != '"' {
		s.unexpected()
		return false
	}
	m.key = s.str()
	if s.err != nil {
		return false
	}
	if s.peek() != ':' {
		s.unexpected()
		return false
	}
	s.i++
	return true
}

// field finds the member's key among the fields riskmon reads in this
// object (names) and returns its index, refusing it if it came before; the
// value is the caller's to read. For any other key it checks the key is
// not repeated, skips the value and returns -1.
func (s *scanner) field(m *members, names []string, depth int) int {
	for i, n := range names {
		if len(n) == len(m.key) && n[0] == m.key[0] && n == string(m.key) {
			if m.seen&(1<<i) != 0 {
				s.duplicate(m.key)
			}
			m.seen |= 1 << i
			return i
		}
	}
	s.unknown(m)
	s.skip(depth + 1)
	return -1
}

// unknown refuses an unknown key that came before in the same object.
func (s *scanner) unknown(m *members) {
	if m.many != nil {
		if _, ok := m.many[string(m.key)]; ok {
			s.duplicate(m.key)
		}
		m.many[string(m.key)] = struct{}{}
		return
	}
	own := s.keys[m.mark:]
	for _, k := range own {
		if string(k) == string(m.key) {
			s.duplicate(m.key)
			return
		}
	}
	if len(own) < 32 {
		s.keys = append(s.keys, m.key)
		return
	}
	// Past 32 keys, a map keeps the check linear.
	m.many = make(map[string]struct{}, 64)
	for _, k := range own {
		m.many[string(k)] = struct{}{}
	}
	m.many[string(m.key)] = struct{}{}
	s.keys = s.keys[:m.mark]
}

// duplicate notes the first repeated key; it is reported only if the
// whole input is JSON (see end), so that broken JSON is called that.
func (s *scanner) duplicate(key []byte) {
	if s.dup == nil {
		s.dup = &Error{Kind: "duplicate_key", Msg: "key " + strconv.Quote(truncate(string(key), 40)) + " appears twice in one object: refused, as readers disagree on which one counts"}
	}
}

// element reads up to the array's element number n; false at the array's
// end or on an error. The call for n == 0 reads the opening bracket.
func (s *scanner) element(n, depth int) bool {
	if s.err != nil {
		return false
	}
	if n == 0 {
		if depth > maxDepth {
			s.syntax("nested too deep")
			return false
		}
		s.i++
		if s.peek() == ']' {
			s.i++
			return false
		}
		return true
	}
	switch s.peek() {
	case ',':
		s.i++
		return true
	case ']':
		s.i++
		return false
	}
	s.unexpected()
	return false
}

// end checks that only white space follows the top-level value, and then
// reports a repeated key.
func (s *scanner) end() {
	if s.ws(); s.err == nil && s.i < len(s.b) {
		s.unexpected()
	}
	if s.err == nil {
		s.err = s.dup
	}
}

// parseNumber converts a number's text, as checked by the scanner, to a
// float64. Decimals of up to 15 digits with a small exponent, which is
// nearly every amount, are converted exactly by one multiplication or
// division (both operands are exact in float64); the rest by strconv.
func parseNumber(b []byte) float64 {
	var mant uint64
	digits, exp, i := 0, 0, 0
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		i++
	}
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		mant = mant*10 + uint64(b[i]-'0')
		digits++
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			mant = mant*10 + uint64(b[i]-'0')
			digits++
			exp--
		}
	}
	if i == len(b) && digits <= 15 && exp >= -22 {
		f := float64(mant)
		if exp < 0 {
			f /= pow10[-exp]
		}
		if neg {
			f = -f
		}
		return f
	}
	f, _ := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	return f
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
