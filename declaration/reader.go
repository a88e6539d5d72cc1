package declaration

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// parsers are reused: parsing into a pooled parser allocates nothing but the
// strings we copy out.
var parsers fastjson.ParserPool

// parse checks the bytes are UTF-8 and JSON, and that the top level is an
// object; what is "a declaration" or "an outcome".
func parse(p *fastjson.Parser, b []byte, what string) (*fastjson.Object, error) {
	if len(b) == 0 || len(trimSpace(b)) == 0 {
		return nil, &Error{Kind: "json", Msg: "not valid JSON: empty message"}
	}
	if !utf8.Valid(b) {
		return nil, &Error{Kind: "utf8", Msg: "not valid UTF-8"}
	}
	if i := badEscape(b); i >= 0 {
		return nil, &Error{Kind: "json", Msg: fmt.Sprintf("not valid JSON: invalid escape sequence at byte %d", i)}
	}
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, &Error{Kind: "json", Msg: "not valid JSON: " + truncate(err.Error(), 200)}
	}
	o, err := v.Object()
	if err != nil {
		return nil, &Error{Kind: "json", Msg: what + " must be a JSON object"}
	}
	if key := duplicateKey(v, 0); key != "" {
		return nil, &Error{Kind: "duplicate_key", Msg: "key " + strconv.Quote(truncate(key, 40)) + " appears twice in one object: refused, as readers disagree on which one counts"}
	}
	return o, nil
}

// duplicateKey returns a key that appears twice in some object of v. Readers
// of JSON disagree on which of two equal keys wins, so a declaration that has
// one could be cleared on one value and assessed on the other.
func duplicateKey(v *fastjson.Value, depth int) string {
	if depth > 64 {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		var keys [48][]byte
		var seen uint64          // a one-word Bloom filter: exact comparisons only on a collision
		var many map[string]bool // only for objects with more keys than fit in keys
		n := 0
		dup := ""
		o.Visit(func(k []byte, c *fastjson.Value) {
			if dup != "" {
				return
			}
			if n >= len(keys) {
				if many == nil {
					many = map[string]bool{}
					for _, pk := range keys {
						many[string(pk)] = true
					}
				}
				if many[string(k)] {
					dup = string(k)
					return
				}
				many[string(k)] = true
			}
			var h uint
			if len(k) > 0 {
				h = (uint(len(k))*31 + uint(k[0])*7 + uint(k[len(k)-1])) & 63
			}
			if seen&(1<<h) != 0 && n < len(keys) {
				for i := 0; i < n && i < len(keys); i++ {
					if string(keys[i]) == string(k) {
						dup = string(k)
						return
					}
				}
			}
			seen |= 1 << h
			if n < len(keys) {
				keys[n] = k
			}
			n++
			dup = duplicateKey(c, depth+1)
		})
		return dup
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, c := range a {
			if d := duplicateKey(c, depth+1); d != "" {
				return d
			}
		}
	}
	return ""
}

// badEscape returns the position of the first backslash that does not start
// a valid JSON escape (\" \\ \/ \b \f \n \r \t \uXXXX), or -1. fastjson
// unescapes leniently; the contract is JSON, so such input is refused.
func badEscape(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 >= len(b) {
			return i
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			if i+5 >= len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
				return i
			}
			i += 5
		default:
			return i
		}
	}
	return -1
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// reader reads typed fields out of JSON objects and keeps the first error, so
// that decoding code reads as a list of fields.
//
// Field names are given relative to the current item when inItem is set, and
// the full path ("items[line 2].gross_mass_kg") is built only on failure.
type reader struct {
	err    *Error
	inItem bool
	index  int // item position in the array
	line   int // item line, once known
}

func (r *reader) fail(name, msg string) {
	if r.err != nil {
		return
	}
	field, kind := name, name
	if r.inItem {
		kind = "items[]." + name
		if r.line > 0 {
			field = "items[line " + strconv.Itoa(r.line) + "]." + name
		} else {
			field = "items[" + strconv.Itoa(r.index) + "]." + name
		}
	}
	r.err = &Error{Field: field, Kind: kind, Msg: msg}
}

// get returns the value of key, or nil when it is absent or null.
func (r *reader) get(o *fastjson.Object, key string) *fastjson.Value {
	if r.err != nil || o == nil {
		return nil
	}
	v := o.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil
	}
	return v
}

func (r *reader) str(o *fastjson.Object, key, name string) (string, bool) {
	v := r.get(o, key)
	if v == nil {
		return "", false
	}
	if v.Type() != fastjson.TypeString {
		r.fail(name, "must be a string")
		return "", false
	}
	b, _ := v.StringBytes()
	return intern(b), true
}

func (r *reader) num(o *fastjson.Object, key, name string) (float64, bool) {
	v := r.get(o, key)
	if v == nil {
		return 0, false
	}
	if v.Type() != fastjson.TypeNumber {
		r.fail(name, "must be a number")
		return 0, false
	}
	f, err := v.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		r.fail(name, "is not a finite number: "+truncate(v.String(), 40))
		return 0, false
	}
	return f, true
}

func (r *reader) boolean(o *fastjson.Object, key, name string) bool {
	v := r.get(o, key)
	if v == nil {
		return false
	}
	switch v.Type() {
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	r.fail(name, "must be true or false")
	return false
}

func (r *reader) object(o *fastjson.Object, key, name string) *fastjson.Object {
	v := r.get(o, key)
	if v == nil {
		return nil
	}
	obj, err := v.Object()
	if err != nil {
		r.fail(name, "must be an object")
		return nil
	}
	return obj
}

func (r *reader) array(o *fastjson.Object, key, name string) ([]*fastjson.Value, bool) {
	v := r.get(o, key)
	if v == nil {
		return nil, false
	}
	a, err := v.Array()
	if err != nil {
		r.fail(name, "must be an array")
		return nil, false
	}
	return a, true
}

// intern avoids allocating the short strings that repeat in every message
// (country and currency codes, units, modes).
func intern(b []byte) string {
	if len(b) <= 4 {
		if s, ok := interned[string(b)]; ok {
			return s
		}
	}
	return string(b)
}

var interned = func() map[string]string {
	m := map[string]string{}
	add := func(s string) { m[s] = s }
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			add(string([]rune{a, b}))
		}
	}
	for _, s := range []string{"USD", "EUR", "GBP", "MXN", "GTQ", "CNY", "JPY", "PCE", "KGM", "LTR", "PR", "MTK", "MIL", "NAR", "MTQ", "sea", "air", "road", "rail", "post", "4000", "hit"} {
		add(s)
	}
	for i := 0; i < 1000; i++ {
		add(strconv.Itoa(i))
	}
	return m
}()
