package engine

import (
	"math"
	"sync/atomic"
)

// A calibrator makes one detector's strengths comparable with another's.
// Detectors have their own natural scales: one reports strength 0.2 on 40 %
// of declarations, another 0.2 once in a thousand. The calibrator learns, from
// the stream, the distribution of a detector's strongest finding per
// declaration (no finding counts as 0), and measures the surprise of a raw
// strength s:
//
//	tail(s)     = P(strength >= s), estimated as (count >= s + 1) / (n + 1)
//	surprise(s) = min(1, log(1/tail(s)) / log(1/full_tail))
//
// so a finding as rare as full_tail (1 in 1,000 by default) has surprise 1
// and one that 1 declaration in 10 gets has 1/3. The calibrated strength is
// the geometric mean sqrt(s · surprise(s)): a detector's strong finding that
// is common is discounted, a weak one that is rare is raised, and only a
// finding both strong and rare reaches 1. (Surprise alone gave full strength
// to rare but weak evidence, such as one hit in one inspection; on the
// tuning streams the geometric mean ranked better than either alone.) Until
// min_declarations have been seen the raw strength is used. Counts only grow:
// the scale follows the whole stream, and replay is deterministic.
type calibrator struct {
	// tree is a Fenwick tree over the bins (bin 0: no finding), so that
	// both recording and the count of strengths at or above a bin take
	// log(bins) steps. Bin 0, the most common by far, is counted in zeros
	// instead: every count the tree answers (below bin b ≥ 1) includes it
	// (counts and setCounts give the tree with it).
	tree     [calBins + 2]atomic.Uint64
	zeros    atomic.Uint64
	n        atomic.Uint64
	minN     uint64
	logFull  float64
	disabled bool
}

const calBins = 100

func newCalibrator(fullTail float64, minN int, disabled bool) *calibrator {
	return &calibrator{minN: uint64(minN), logFull: math.Log(1 / fullTail), disabled: disabled}
}

func calBin(s float64) int {
	if s <= 0 {
		return 0
	}
	return min(int(math.Ceil(s*calBins)), calBins)
}

// calibrate maps a raw strength to a calibrated one.
func (c *calibrator) calibrate(s float64) float64 {
	n := c.n.Load()
	if c.disabled || n < c.minN {
		return s
	}
	above := n - c.below(calBin(s))
	tail := (float64(above) + 1) / (float64(n) + 1)
	surprise := min(1, math.Log(1/tail)/c.logFull)
	return math.Sqrt(s * surprise)
}

// observe records a declaration's strongest raw strength from the detector.
func (c *calibrator) observe(s float64) {
	if b := calBin(s); b == 0 {
		c.zeros.Add(1)
	} else {
		for i := b + 1; i < len(c.tree); i += i & -i {
			c.tree[i].Add(1)
		}
	}
	c.n.Add(1)
}

// below counts the observations in bins below bin b.
func (c *calibrator) below(b int) uint64 {
	if b == 0 {
		return 0
	}
	sum := c.zeros.Load()
	for i := b; i > 0; i -= i & -i {
		sum += c.tree[i].Load()
	}
	return sum
}

// counts returns the number of observations and the Fenwick tree over
// every bin, bin 0 included (as checkpoints keep it).
func (c *calibrator) counts() (n uint64, tree []uint64) {
	tree = make([]uint64, len(c.tree))
	zeros := c.zeros.Load()
	for j := range c.tree {
		tree[j] = c.tree[j].Load()
		if j > 0 && j&(j-1) == 0 { // a power of two: its range holds bin 0 (index 1)
			tree[j] += zeros
		}
	}
	return c.n.Load(), tree
}

// setCounts starts the calibrator from counts as counts gives them (tree
// of len(c.tree)).
func (c *calibrator) setCounts(n uint64, tree []uint64) {
	zeros := tree[1]
	for j, v := range tree {
		if j > 0 && j&(j-1) == 0 {
			v -= zeros
		}
		c.tree[j].Store(v)
	}
	c.zeros.Store(zeros)
	c.n.Store(n)
}
