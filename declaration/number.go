package declaration

import (
	"math"
	"strconv"
)

// Numbers on the hot path (assessments' scores, findings' points, reasons'
// figures) have a few decimals and modest magnitudes: their digits are
// those of a whole number, which these functions write directly, leaving
// strconv's general algorithm for the values where the answer is not
// plain. They write exactly what strconv writes.

// fastPrec is the most decimals the fast paths write.
const fastPrec = 6

// AppendFixed appends v with prec decimals, exactly as
// strconv.AppendFloat(b, v, 'f', prec, 64) does.
func AppendFixed(b []byte, v float64, prec int) []byte {
	if prec < 0 || prec > fastPrec {
		return strconv.AppendFloat(b, v, 'f', prec, 64)
	}
	x := math.Abs(v) * pow10[prec]
	// Below 2^40 the product is within 2^-13 of v·10^prec; away from a
	// half, rounding it rounds v's exact decimal expansion.
	if !(x < 1<<40) {
		return strconv.AppendFloat(b, v, 'f', prec, 64)
	}
	n := math.Round(x)
	if d := math.Abs(x - math.Floor(x) - 0.5); d < 1e-3 {
		return strconv.AppendFloat(b, v, 'f', prec, 64)
	}
	if math.Signbit(v) {
		b = append(b, '-')
	}
	return appendDecimal(b, uint64(n), prec, false)
}

// AppendRounded appends v rounded to prec decimals (math.Round of v·10^prec,
// divided back) in the fewest digits that read as the same float64, as
// strconv.AppendFloat(b, rounded, 'f', -1, 64) writes it.
func AppendRounded(b []byte, v float64, prec int) []byte {
	if prec < 0 || prec > fastPrec {
		p := math.Pow10(prec)
		return strconv.AppendFloat(b, math.Round(v*p)/p, 'f', -1, 64)
	}
	p := pow10[prec]
	n := math.Round(v * p)
	// A decimal of at most 15 significant digits is the only one of that
	// many that reads as its float64, so the shortest is its own digits.
	if !(math.Abs(n) < 1e15) {
		return strconv.AppendFloat(b, n/p, 'f', -1, 64)
	}
	if math.Signbit(n) {
		b = append(b, '-')
	}
	return appendDecimal(b, uint64(math.Abs(n)), prec, true)
}

// appendDecimal appends n/10^prec with prec decimals, or with trim the
// decimals' trailing zeros dropped (and the point with them).
func appendDecimal(b []byte, n uint64, prec int, trim bool) []byte {
	var buf [24]byte
	i := len(buf)
	for range prec {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	frac := i
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	end := len(buf)
	if trim {
		for end > frac && buf[end-1] == '0' {
			end--
		}
	}
	b = append(b, buf[i:frac]...)
	if end > frac {
		b = append(b, '.')
		b = append(b, buf[frac:end]...)
	}
	return b
}
