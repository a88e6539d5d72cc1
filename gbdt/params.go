package gbdt

import (
	"errors"
	"fmt"
	"math"
)

// maxDepth bounds Params.Depth and the depth of decoded trees. Boosted trees
// rarely help beyond depth 8 to 10; the bound also keeps the recursion of
// growing, encoding and decoding a tree shallow.
const maxDepth = 16

// Params configures Train. Start from DefaultParams and change what you
// need: Validate rejects zero values where they make no sense, it does not
// fill in defaults.
type Params struct {
	Trees               int     // max boosting rounds (default 200)
	Depth               int     // max depth, 1..16 (default 6)
	LearningRate        float64 // shrinkage applied to every leaf value, in (0, 1] (default 0.1)
	L2                  float64 // L2 penalty on leaf values (default 1)
	MinLeafWeight       float64 // min sum of hessian in a leaf (default 1)
	Bins                int     // max value bins per feature, 2..255; missing values get one more (default 64)
	EarlyStoppingRounds int     // stop when validation log-loss has not improved for this many rounds (default 20; 0 = off)
	ValidationShare     float64 // the LAST share of rows (time-ordered tail) is the validation set, in [0, 1) (default 0.2; 0 = none)
}

// DefaultParams returns the documented defaults.
func DefaultParams() Params {
	return Params{
		Trees:               200,
		Depth:               6,
		LearningRate:        0.1,
		L2:                  1,
		MinLeafWeight:       1,
		Bins:                64,
		EarlyStoppingRounds: 20,
		ValidationShare:     0.2,
	}
}

// Validate reports every invalid field, one error per field, each naming it.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("gbdt: "+format, a...))
	}
	if p.Trees < 1 {
		bad("Trees = %d, want >= 1", p.Trees)
	}
	if p.Depth < 1 || p.Depth > maxDepth {
		bad("Depth = %d, want 1..%d", p.Depth, maxDepth)
	}
	if !(p.LearningRate > 0 && p.LearningRate <= 1) {
		bad("LearningRate = %g, want a value in (0, 1]", p.LearningRate)
	}
	if !(p.L2 >= 0) || math.IsInf(p.L2, 1) {
		bad("L2 = %g, want a finite value >= 0", p.L2)
	}
	if !(p.MinLeafWeight >= 0) || math.IsInf(p.MinLeafWeight, 1) {
		bad("MinLeafWeight = %g, want a finite value >= 0", p.MinLeafWeight)
	}
	// With both at 0 a leaf holding a sliver of hessian gets the unbounded
	// value -G/H.
	if p.L2 == 0 && p.MinLeafWeight == 0 {
		bad("L2 and MinLeafWeight are both 0, want at least one > 0 so that leaf values -G/(H+L2) stay bounded")
	}
	if p.Bins < 2 || p.Bins > 255 {
		bad("Bins = %d, want 2..255", p.Bins)
	}
	if p.EarlyStoppingRounds < 0 {
		bad("EarlyStoppingRounds = %d, want >= 0 (0 = off)", p.EarlyStoppingRounds)
	}
	if !(p.ValidationShare >= 0 && p.ValidationShare < 1) {
		bad("ValidationShare = %g, want a value in [0, 1)", p.ValidationShare)
	} else if p.EarlyStoppingRounds > 0 && p.ValidationShare == 0 {
		// Silently training all rounds would hide a configuration mistake.
		bad("EarlyStoppingRounds = %d needs a validation set: set ValidationShare > 0 or EarlyStoppingRounds = 0", p.EarlyStoppingRounds)
	}
	return errors.Join(errs...)
}
