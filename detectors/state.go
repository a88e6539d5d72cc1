package detectors

import (
	"encoding/binary"
	"math"
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

// fixed returns v when it holds a record of n bytes, else buf[:n] zeroed: the
// record to update in place (a missing or malformed record starts afresh,
// as with newRecord).
func fixed(v, buf []byte, n int) record {
	if len(v) == n {
		return record(v)
	}
	r := buf[:n]
	clear(r)
	return record(r)
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
// The product is converted explicitly so that it is rounded on its own: a
// caller's decay(…)+1 must not fuse into one multiply-add (arm64, amd64
// v3), which would round differently from other builds.
func decay(v float64, from, to uint32, halfLife time.Duration) float64 {
	return float64(v * ageing(from, to, halfLife))
}

// ageing is what decay multiplies a count by: counts aged alike (one
// record's, with one half-life) take it once.
func ageing(from, to uint32, halfLife time.Duration) float64 {
	if to <= from || halfLife <= 0 {
		return 1
	}
	return math.Exp2(-float64(to-from) / halfLife.Seconds())
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
