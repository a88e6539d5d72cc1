package detectors

import (
	"math"
	"strconv"

	"github.com/riskmon/riskmon/declaration"
)

// Reasons are written on the hot path into byte buffers (on the stack where
// they fit; numbers by declaration.AppendFixed and strconv), so that a finding costs one allocation, its string.
// The texts are those fmt wrote: appendF(b, v, 1) is %.1f, appendF(b, v, 0)
// is %.0f.

// appendF appends v with prec decimals, as fmt's %.{prec}f writes it.
func appendF(b []byte, v float64, prec int) []byte { return declaration.AppendFixed(b, v, prec) }

// appendE1 appends v as fmt's %.1e writes it.
func appendE1(b []byte, v float64) []byte { return strconv.AppendFloat(b, v, 'e', 1, 64) }

// appendInt appends v as fmt's %d writes it.
func appendInt(b []byte, v int) []byte { return strconv.AppendInt(b, int64(v), 10) }

// AppendNumber appends v as FormatNumber writes it.
func AppendNumber(b []byte, v float64) []byte {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		var tmp [24]byte
		s := appendF(tmp[:0], a, 0)
		if v < 0 {
			b = append(b, '-')
		}
		for i := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b = append(b, ',')
			}
			b = append(b, s[i])
		}
		return b
	case a >= 100:
		return appendF(b, v, 0)
	case a >= 10:
		return appendF(b, v, 1)
	case a >= 1:
		return appendF(b, v, 2)
	default:
		return strconv.AppendFloat(b, v, 'g', 3, 64)
	}
}

// FormatNumber writes a number the way a report would: thousands separators for
// large values, three significant digits for small ones.
func FormatNumber(v float64) string {
	var b [32]byte
	return string(AppendNumber(b[:0], v))
}

// evidence combines a detector's own signals by noisy-OR, so that one
// finding says everything that made it fire: its reason is a prefix, then
// the signals' reasons joined by "; ". The caller keeps the reason's bytes
// (in a buffer on its stack): the methods take and return them, so that
// the buffer does not escape.
type evidence struct {
	keep float64 // Π(1 − s) over the signals so far; strength is 1 − keep
	n    int     // signals so far
}

func newEvidence() evidence { return evidence{keep: 1} }

// add records a signal of strength s and reports whether it counts (s > 0);
// when it does, it appends the separator to b and the caller appends the
// signal's reason.
func (e *evidence) add(b []byte, s float64) ([]byte, bool) {
	if s <= 0 {
		return b, false
	}
	e.keep *= 1 - s
	if e.n > 0 {
		b = append(b, "; "...)
	}
	e.n++
	return b, true
}

// addText records a signal of strength s whose reason is a and b.
func (e *evidence) addText(r []byte, s float64, a, b string) []byte {
	r, ok := e.add(r, s)
	if ok {
		r = append(append(r, a...), b...)
	}
	return r
}

func (e *evidence) strength() float64 { return 1 - e.keep }
