package detectors

import (
	"encoding/binary"
	"math"
)

// A log histogram is a fixed-bin histogram of ln(x), serialised as bytes: the
// total count (uint32), the lowest and highest occupied bins (uint16 each),
// the last computed median and MAD (float32 each) and the count they were
// computed at (uint32), then one uint16 count per bin. Median and MAD are
// recomputed when the count has moved by more than 1/64 since (see
// histCachedStats), which changes them by a sliver and saves most of the work. It gives a
// robust centre (median) and spread (median absolute deviation) of a peer
// group in constant memory, in time proportional to the occupied range, and it
// forgets: when the total reaches histDecayAt, every count is halved, so the
// baseline follows prices as they move (a half-life of about histDecayAt
// observations). Same inputs in the same order give the same bytes, which
// keeps replay deterministic.
const (
	histLo      = -7.0 // ln(0.0009)
	histHi      = 16.0 // ln(8.9e6)
	histWidth   = 0.05 // 5 % per bin
	histBins    = int((histHi - histLo) / histWidth)
	histHeader  = 20
	histBytes   = histHeader + 2*histBins
	histDecayAt = 4000
)

func histBin(lx float64) int {
	i := int(math.Floor((lx - histLo) / histWidth))
	return min(max(i, 0), histBins-1)
}

func histGet(b []byte, i int) float64 {
	return float64(binary.LittleEndian.Uint16(b[histHeader+2*i:]))
}

func histRange(b []byte) (lo, hi int) {
	return int(binary.LittleEndian.Uint16(b[4:])), int(binary.LittleEndian.Uint16(b[6:]))
}

// histAdd adds ln-value lx to the histogram in b (nil: empty) and returns it.
func histAdd(b []byte, lx float64) []byte {
	bin := histBin(lx)
	if len(b) != histBytes {
		b = make([]byte, histBytes)
		binary.LittleEndian.PutUint16(b[4:], uint16(bin))
		binary.LittleEndian.PutUint16(b[6:], uint16(bin))
	}
	off := histHeader + 2*bin
	c := binary.LittleEndian.Uint16(b[off:])
	total := binary.LittleEndian.Uint32(b)
	lo, hi := histRange(b)
	if c == math.MaxUint16 || total >= histDecayAt {
		total = 0
		nlo, nhi := hi, lo
		for i := lo; i <= hi; i++ {
			o := histHeader + 2*i
			h := binary.LittleEndian.Uint16(b[o:]) / 2
			binary.LittleEndian.PutUint16(b[o:], h)
			total += uint32(h)
			if h > 0 {
				nlo, nhi = min(nlo, i), max(nhi, i)
			}
		}
		lo, hi = nlo, nhi
		c = binary.LittleEndian.Uint16(b[off:])
	}
	if total == 0 {
		lo, hi = bin, bin
	}
	binary.LittleEndian.PutUint16(b[off:], c+1)
	binary.LittleEndian.PutUint32(b, total+1)
	binary.LittleEndian.PutUint16(b[4:], uint16(min(lo, bin)))
	binary.LittleEndian.PutUint16(b[6:], uint16(max(hi, bin)))
	return b
}

// histCount is the (decayed) number of observations in the histogram.
func histCount(b []byte) int {
	if len(b) != histBytes {
		return 0
	}
	return int(binary.LittleEndian.Uint32(b))
}

// histCachedStats returns histStats, computed afresh only when the count has
// moved by more than 1/64 since the last computation (or fell: a decay).
// It may update the cache fields of b, so the caller must hold b exclusively.
func histCachedStats(b []byte) (median, mad float64) {
	n := binary.LittleEndian.Uint32(b)
	at := binary.LittleEndian.Uint32(b[16:])
	if at > 0 && n >= at && n-at <= at/64 {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[8:]))), float64(math.Float32frombits(binary.LittleEndian.Uint32(b[12:])))
	}
	median, mad = histStats(b)
	binary.LittleEndian.PutUint32(b[8:], math.Float32bits(float32(median)))
	binary.LittleEndian.PutUint32(b[12:], math.Float32bits(float32(mad)))
	binary.LittleEndian.PutUint32(b[16:], n)
	// The caller that recomputes gets what every later caller will read:
	// which caller recomputes depends on timing when workers read at once.
	return float64(float32(median)), float64(float32(mad))
}

// histStats returns the median and the median absolute deviation of ln(x),
// with mass spread evenly within each bin.
func histStats(b []byte) (median, mad float64) {
	n := float64(histCount(b))
	if n == 0 {
		return 0, 0
	}
	lo, hi := histRange(b)
	half := n / 2
	// Median, as a position in bin units.
	var cum, pos float64
	i := lo
	for ; i <= hi; i++ {
		c := histGet(b, i)
		if cum+c >= half {
			pos = float64(i) + (half-cum)/c
			break
		}
		cum += c
	}
	i = min(i, hi)
	median = histLo + histWidth*pos
	// MAD: grow a window around the median until it holds half the mass.
	// Within a bin the mass is uniform, so the window's mass grows linearly
	// between bin edges at a rate equal to the two edge bins' counts.
	density := func(j int) float64 {
		if j < lo || j > hi {
			return 0
		}
		return histGet(b, j)
	}
	left, right := i, i // the bins the window's left and right ends are in
	toLeft, toRight := pos-float64(i), float64(i+1)-pos
	var mass, r float64
	for k := 0; k < 2*histBins+2; k++ {
		dl, dr := density(left), density(right)
		step := min(toLeft, toRight) - r
		if rate := dl + dr; rate > 0 && mass+rate*step >= half {
			r += (half - mass) / rate
			break
		} else {
			mass += rate * step
		}
		r += step
		if toLeft <= r {
			left--
			toLeft++
		}
		if toRight <= r {
			right++
			toRight++
		}
	}
	return median, r * histWidth
}
