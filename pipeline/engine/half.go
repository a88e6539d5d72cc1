package engine

import "math"

// The pending records keep a declaration's features as IEEE 754 half
// precision numbers (binary16: 11 significant bits, finite up to 65504):
// half the bytes of float32. The features are rates, logarithms, counts up
// to 999 and scores; the relative rounding error, at most 2^-11, is far
// below the width of the trees' quantile bins.

// toHalf rounds f to the nearest binary16, ties to even. Finite values
// beyond the largest binary16 become it (never infinite); NaN stays NaN
// and infinities stay infinite.
func toHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff && mant != 0:
		return sign | 0x7e00
	case exp == 0xff:
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 31 {
		return sign | 0x7bff
	}
	if e <= 0 { // a binary16 subnormal, or zero
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		k := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || rem == half && k&1 == 1 {
			k++ // may become the smallest normal, which is the right encoding
		}
		return sign | uint16(k)
	}
	k := uint32(e)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || rem == 0x1000 && k&1 == 1 {
		k++ // a carry into the exponent is right too
	}
	if k >= 0x7c00 {
		k = 0x7bff
	}
	return sign | uint16(k)
}

// fromHalf is the float32 a binary16 stands for (exactly).
func fromHalf(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h & 0x3ff)
	switch {
	case e == 0:
		f := float32(m) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	case e == 31:
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	}
	return math.Float32frombits(sign | (e-15+127)<<23 | m<<13)
}
