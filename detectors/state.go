package detectors

import (
	"encoding/binary"
	"math"
	"strings"
	"time"
)

// Small fixed-layout records for per-entity state in the Store. All times are
// event times (a declaration's lodged_at, an outcome's inspected_at) in Unix
// seconds, so replay and stream mode age state the same way.

// record is a fixed-size slice of little-endian 32-bit fields.
type record []byte

func newRecord(fields int, old []byte) record {
	if len(old) == 4*fields {
		return record(old)
	}
	return make(record, 4*fields)
}

func (r record) u32(i int) uint32       { return binary.LittleEndian.Uint32(r[4*i:]) }
func (r record) setU32(i int, v uint32) { binary.LittleEndian.PutUint32(r[4*i:], v) }
func (r record) f32(i int) float64      { return float64(math.Float32frombits(r.u32(i))) }
func (r record) setF32(i int, v float64) {
	r.setU32(i, math.Float32bits(float32(v)))
}

func unixSec(t time.Time) uint32 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint32(min(s, math.MaxUint32))
}

// decay ages a count from time `from` to time `to` with the given half-life.
// Time never runs backwards for a decayed count: an earlier `to` leaves it.
func decay(v float64, from, to uint32, halfLife time.Duration) float64 {
	if to <= from || halfLife <= 0 {
		return v
	}
	return v * math.Exp2(-float64(to-from)/halfLife.Seconds())
}

// fnv32 hashes a string into a bit position for small set sketches.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// evidence combines a detector's own signals by noisy-OR and keeps their
// reasons, so that one finding says everything that made it fire.
type evidence struct {
	keep float64 // Π(1 − s) over the signals so far; strength is 1 − keep
	why  []string
}

func newEvidence() evidence { return evidence{keep: 1} }

// add records a signal of strength s (ignored when s <= 0).
func (e *evidence) add(s float64, reason string) {
	if s > 0 {
		e.keep *= 1 - s
		e.why = append(e.why, reason)
	}
}

func (e *evidence) strength() float64 { return 1 - e.keep }

func (e *evidence) reason(prefix string) string { return prefix + strings.Join(e.why, "; ") }
