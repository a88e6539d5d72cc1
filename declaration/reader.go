package declaration

import (
	"math"
	"strconv"
)

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
	strs   *strCache
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

// present reports whether v holds a value (not absent, not null) and no
// error came before.
func (r *reader) present(v *value) bool {
	return r.err == nil && v.kind != kindAbsent && v.kind != kindNull
}

func (r *reader) str(v *value, name string) (string, bool) {
	if !r.present(v) {
		return "", false
	}
	if v.kind != kindString {
		r.fail(name, "must be a string")
		return "", false
	}
	return intern(v.b), true
}

// shared is str for a field whose values repeat across declarations.
func (r *reader) shared(v *value, name string) (string, bool) {
	if !r.present(v) || v.kind != kindString || r.strs == nil {
		return r.str(v, name)
	}
	return r.strs.get(v.b), true
}

func (r *reader) num(v *value, name string) (float64, bool) {
	if !r.present(v) {
		return 0, false
	}
	if v.kind != kindNumber {
		r.fail(name, "must be a number")
		return 0, false
	}
	// The scanner has checked the grammar; a number out of range comes
	// back infinite.
	f := parseNumber(v.b)
	if math.IsInf(f, 0) || math.IsNaN(f) {
		r.fail(name, "is not a finite number: "+truncate(string(v.b), 40))
		return 0, false
	}
	return f, true
}

func (r *reader) boolean(v *value, name string) bool {
	if !r.present(v) {
		return false
	}
	switch v.kind {
	case kindTrue:
		return true
	case kindFalse:
		return false
	}
	r.fail(name, "must be true or false")
	return false
}

// object reports whether v is an object; absent or null is false, anything
// else an error.
func (r *reader) object(v *value, name string) bool {
	if !r.present(v) {
		return false
	}
	if v.kind != kindObject {
		r.fail(name, "must be an object")
		return false
	}
	return true
}

func (r *reader) array(v *value, name string) bool {
	if !r.present(v) {
		return false
	}
	if v.kind != kindArray {
		r.fail(name, "must be an array")
		return false
	}
	return true
}

// intern avoids allocating the short strings that repeat in every message
// (country and currency codes, units, modes).
func intern(b []byte) string {
	if len(b) == 2 && b[0]-'A' < 26 && b[1]-'A' < 26 {
		return alpha2[b[0]-'A'][b[1]-'A']
	}
	if len(b) <= 4 {
		if s, ok := interned[string(b)]; ok {
			return s
		}
	}
	return string(b)
}

var alpha2 = func() (t [26][26]string) {
	for a := range t {
		for b := range t[a] {
			t[a][b] = string([]byte{byte('A' + a), byte('A' + b)})
		}
	}
	return t
}()

var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"USD", "EUR", "GBP", "MXN", "GTQ", "CNY", "JPY", "PCE", "KGM", "LTR", "PR", "MTK", "MIL", "NAR", "MTQ", "sea", "air", "road", "rail", "post", "4000", "hit"} {
		m[s] = s
	}
	for i := 0; i < 1000; i++ {
		m[strconv.Itoa(i)] = strconv.Itoa(i)
	}
	return m
}()

// strings keeps the values of the fields that repeat across declarations
// (commodity codes, descriptions, offices, declarants, units, preferences)
// so that a decoder allocates each once. It is per decoder and bounded:
// when full it starts again.
type strCache struct{ m map[string]string }

const maxShared = 8192

func (c *strCache) get(b []byte) string {
	if s, ok := c.m[string(b)]; ok {
		return s
	}
	s := intern(b)
	if len(b) > 64 {
		return s
	}
	if c.m == nil || len(c.m) >= maxShared {
		c.m = make(map[string]string, 256)
	}
	c.m[s] = s
	return s
}
