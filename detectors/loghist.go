package detectors

import (
	"encoding/binary"
	"math"
)

// A log histogram is a fixed-bin histogram of ln(x), serialised as bytes so it
// can live in the Store: 4 bytes of total count, then one uint16 count per
// bin. It gives a robust centre (median) and spread (median absolute
// deviation) of a peer group in constant memory and time, and it forgets: when
// the total reaches histDecayAt, every count is halved, so the baseline
// follows prices as they move (a half-life of about histDecayAt
// observations). Same inputs in the same order give the same bytes, which
// keeps replay deterministic.
const (
	histLo      = -7.0 // ln(0.0009)
	histHi      = 16.0 // ln(8.9e6)
	histWidth   = 0.05 // 5 % per bin
	histBins    = int((histHi - histLo) / histWidth)
	histBytes   = 4 + 2*histBins
	histDecayAt = 4000
)

func histBin(lx float64) int {
	i := int(math.Floor((lx - histLo) / histWidth))
	return min(max(i, 0), histBins-1)
}

// histAdd adds ln-value lx to the histogram in b (nil: empty) and returns it.
func histAdd(b []byte, lx float64) []byte {
	if len(b) != histBytes {
		b = make([]byte, histBytes)
	}
	off := 4 + 2*histBin(lx)
	c := binary.LittleEndian.Uint16(b[off:])
	total := binary.LittleEndian.Uint32(b)
	if c == math.MaxUint16 || total >= histDecayAt {
		total = 0
		for i := 4; i < histBytes; i += 2 {
			h := binary.LittleEndian.Uint16(b[i:]) / 2
			binary.LittleEndian.PutUint16(b[i:], h)
			total += uint32(h)
		}
		c = binary.LittleEndian.Uint16(b[off:])
	}
	binary.LittleEndian.PutUint16(b[off:], c+1)
	binary.LittleEndian.PutUint32(b, total+1)
	return b
}

// histCount is the (decayed) number of observations in the histogram.
func histCount(b []byte) int {
	if len(b) != histBytes {
		return 0
	}
	return int(binary.LittleEndian.Uint32(b))
}

// histStats returns the median and the median absolute deviation of ln(x),
// interpolating linearly within bins.
func histStats(b []byte) (median, mad float64) {
	var cum [histBins + 1]float64
	for i := 0; i < histBins; i++ {
		cum[i+1] = cum[i] + float64(binary.LittleEndian.Uint16(b[4+2*i:]))
	}
	n := cum[histBins]
	if n == 0 {
		return 0, 0
	}
	cdf := func(x float64) float64 {
		p := (x - histLo) / histWidth
		if p <= 0 {
			return 0
		}
		if p >= float64(histBins) {
			return n
		}
		i := int(p)
		return cum[i] + (cum[i+1]-cum[i])*(p-float64(i))
	}
	// Median: the first bin where the cumulative count reaches n/2.
	half := n / 2
	i := 0
	for cum[i+1] < half {
		i++
	}
	in := cum[i+1] - cum[i]
	median = histLo + histWidth*(float64(i)+(half-cum[i])/in)
	// MAD: the radius r around the median holding half of the mass.
	lo, hi := 0.0, histHi-histLo
	for k := 0; k < 40; k++ {
		r := (lo + hi) / 2
		if cdf(median+r)-cdf(median-r) < half {
			lo = r
		} else {
			hi = r
		}
	}
	return median, hi
}
