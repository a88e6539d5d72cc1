package gbdt

import (
	"math"
	"slices"
)

// Bin layout of one feature with edges e[0] < e[1] < ... < e[k-1]:
//
//	bin 0          missing (NaN)
//	bin 1 + j      values v with exactly j edges <= v
//
// So a value lies in a bin <= b (b >= 1) exactly when v < e[b-1], and the
// model stores e[b-1] as the split threshold: training on bins and
// predicting on raw values take the same path by construction.

// weightedValue is one training value of a feature and the weight of its row.
type weightedValue struct {
	v, w float64
}

// quantileEdges returns at most maxBins-1 increasing bin edges for the
// values vals (no NaN, weight > 0). It sorts vals in place.
//
// With at most maxBins distinct values every value gets its own bin, so
// low-cardinality features (flags, codes) are represented exactly. Otherwise
// the edges sit at the weighted quantiles j/maxBins; a value carrying more
// than one quantile's weight gets a bin of its own instead of several empty
// ones. Weighting the quantiles makes a row of weight 2 bin like two copies
// of the row.
func quantileEdges(vals []weightedValue, maxBins int) []float64 {
	if len(vals) == 0 {
		return nil
	}
	slices.SortFunc(vals, func(a, b weightedValue) int {
		switch { // no NaN here, so plain comparisons order totally
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	// Merge equal values: distinct[i] with cumulative weight cum[i].
	var distinct, cum []float64
	total := 0.0
	for i, x := range vals {
		total += x.w
		if i > 0 && x.v == vals[i-1].v {
			cum[len(cum)-1] = total
			continue
		}
		distinct = append(distinct, x.v)
		cum = append(cum, total)
	}
	var edges []float64
	if len(distinct) <= maxBins {
		for i := 1; i < len(distinct); i++ {
			edges = append(edges, cut(distinct[i-1], distinct[i]))
		}
		return edges
	}
	i, last := 0, -1
	for j := 1; j < maxBins; j++ {
		// target < total, and cum ends at total, so i stays in range.
		target := total * float64(j) / float64(maxBins)
		for cum[i] < target {
			i++
		}
		if i == len(distinct)-1 {
			break
		}
		if i > last {
			edges = append(edges, cut(distinct[i], distinct[i+1]))
			last = i
		}
	}
	return edges
}

// cut returns an edge e with a < e <= b: the midpoint, so unseen values
// between two training values go to the nearer one, or b when the midpoint
// rounds onto a.
func cut(a, b float64) float64 {
	m := a/2 + b/2 // not (a+b)/2, which overflows for large values
	if m <= a || m > b {
		return b
	}
	return m
}

// binOf returns the bin of v for a feature with the given edges.
func binOf(v float64, edges []float64) uint8 {
	if math.IsNaN(v) {
		return 0
	}
	// Count the edges <= v: the first index whose edge is > v.
	lo, hi := 0, len(edges)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if edges[mid] <= v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return uint8(1 + lo)
}
