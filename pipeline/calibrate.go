package pipeline

import (
	"math"
	"sync/atomic"
)

// A calibrator makes one detector's strengths comparable with another's.
// Detectors have their own natural scales: one reports strength 0.2 on 40 %
// of declarations, another 0.2 once in a thousand. The calibrator learns, from
// the stream, the distribution of a detector's strongest finding per
// declaration (no finding counts as 0), and maps a raw strength s to the
// surprise of seeing s or more:
//
//	tail(s)       = P(strength >= s), estimated as (count >= s + 1) / (n + 1)
//	calibrated(s) = min(1, log(1/tail(s)) / log(1/full_tail))
//
// so a finding as rare as full_tail (1 in 1,000 by default) gets strength 1,
// one that 1 declaration in 10 gets gets 1/3, and a weight means the points a
// 1-in-1,000 finding is worth, whatever the detector. Until min_declarations
// have been seen the raw strength is used. Counts only grow: the scale follows
// the whole stream, and replay is deterministic.
type calibrator struct {
	bins     [calBins + 1]atomic.Uint64 // bin 0: no finding
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
	var above uint64
	for b := calBin(s); b <= calBins; b++ {
		above += c.bins[b].Load()
	}
	tail := (float64(above) + 1) / (float64(n) + 1)
	return min(1, math.Log(1/tail)/c.logFull)
}

// observe records a declaration's strongest raw strength from the detector.
func (c *calibrator) observe(s float64) {
	c.bins[calBin(s)].Add(1)
	c.n.Add(1)
}
