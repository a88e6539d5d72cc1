package gbdt

import (
	"cmp"
	"math"
	"slices"
)

// AUC returns the weighted area under the ROC curve of scores against
// labels (0 or 1): the weighted share of (positive, negative) pairs that the
// scores order correctly, a tie counting half. weights may be nil (all 1).
//
// It returns NaN when the inputs differ in length, are empty, hold a NaN
// score, a label other than 0 or 1 or a negative or non-finite weight, or
// when either class has zero total weight.
func AUC(scores, labels, weights []float64) float64 {
	n := len(scores)
	if n == 0 || len(labels) != n || (weights != nil && len(weights) != n) {
		return math.NaN()
	}
	idx := make([]int, n)
	for i := range idx {
		if math.IsNaN(scores[i]) || (labels[i] != 0 && labels[i] != 1) || !validWeight(weights, i) {
			return math.NaN()
		}
		idx[i] = i
	}
	// The index breaks ties so that the summation order, and with it the
	// result, does not depend on the sort algorithm.
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(scores[a], scores[b]), cmp.Compare(a, b))
	})
	// Walk groups of tied scores upwards: each positive is ranked above
	// the negatives of lower groups and tied with half of its own group's.
	var area, pos, negBelow float64
	for i := 0; i < n; {
		var gp, gn float64
		j := i
		for ; j < n && scores[idx[j]] == scores[idx[i]]; j++ {
			w := weightAt(weights, idx[j])
			if labels[idx[j]] == 1 {
				gp += w
			} else {
				gn += w
			}
		}
		area += gp * (negBelow + gn/2)
		pos += gp
		negBelow += gn
		i = j
	}
	if pos == 0 || negBelow == 0 {
		return math.NaN()
	}
	return area / (pos * negBelow)
}

// LogLoss returns the weighted mean of -y·ln(p) - (1-y)·ln(1-p). Probabilities
// are clipped to [1e-15, 1-1e-15] so a confident miss costs about 34.5, not
// infinity. Labels may be any value in [0, 1]; weights may be nil (all 1).
//
// It returns NaN when the inputs differ in length or are empty, for a
// probability or label outside [0, 1] or NaN, a negative or non-finite
// weight, or zero total weight.
func LogLoss(probs, labels, weights []float64) float64 {
	n := len(probs)
	if n == 0 || len(labels) != n || (weights != nil && len(weights) != n) {
		return math.NaN()
	}
	const eps = 1e-15
	var loss, sw float64
	for i, p := range probs {
		y := labels[i]
		if !(p >= 0 && p <= 1) || !(y >= 0 && y <= 1) || !validWeight(weights, i) {
			return math.NaN()
		}
		p = min(max(p, eps), 1-eps)
		w := weightAt(weights, i)
		loss -= w * (y*math.Log(p) + (1-y)*math.Log(1-p))
		sw += w
	}
	if sw == 0 {
		return math.NaN()
	}
	return loss / sw
}

func weightAt(w []float64, i int) float64 {
	if w == nil {
		return 1
	}
	return w[i]
}

func validWeight(w []float64, i int) bool {
	if w == nil {
		return true
	}
	return w[i] >= 0 && !math.IsInf(w[i], 1)
}
