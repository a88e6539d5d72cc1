package gbdt

import (
	"errors"
	"fmt"
	"math"
)

// Dataset is the training input. Rows are in time order: with
// Params.ValidationShare > 0 the last rows are held out for validation.
type Dataset struct {
	Names []string    // feature names (len = number of features, at most 65535)
	X     [][]float64 // rows; NaN = missing; ±Inf is rejected
	Y     []float64   // labels 0 or 1
	W     []float64   // optional per-row weights >= 0 (nil = all 1); used for importance weighting
	// Offset, when not nil, is each row's starting margin (log-odds) from
	// another model: the trees then learn corrections to it, the base score
	// is 0, and the caller adds the offset to Logit (stacking, or boosting
	// from a prior score).
	Offset []float64
}

// check reports the first structural problem of d.
func (d *Dataset) check() error {
	nf := len(d.Names)
	switch {
	case len(d.X) == 0:
		return errors.New("gbdt: empty dataset (X has no rows)")
	case nf == 0:
		return errors.New("gbdt: no features (Names is empty)")
	case nf > math.MaxUint16:
		return fmt.Errorf("gbdt: %d features, want at most %d", nf, math.MaxUint16)
	case len(d.Y) != len(d.X):
		return fmt.Errorf("gbdt: len(Y) = %d, want len(X) = %d", len(d.Y), len(d.X))
	case d.W != nil && len(d.W) != len(d.X):
		return fmt.Errorf("gbdt: len(W) = %d, want len(X) = %d or nil", len(d.W), len(d.X))
	case d.Offset != nil && len(d.Offset) != len(d.X):
		return fmt.Errorf("gbdt: len(Offset) = %d, want len(X) = %d or nil", len(d.Offset), len(d.X))
	}
	for i, o := range d.Offset {
		if math.IsNaN(o) || math.IsInf(o, 0) {
			return fmt.Errorf("gbdt: Offset[%d] = %g, want a finite margin", i, o)
		}
	}
	for i, row := range d.X {
		if len(row) != nf {
			return fmt.Errorf("gbdt: row %d has %d values, want %d (len(Names))", i, len(row), nf)
		}
		for j, v := range row {
			// An infinite value would need a bin beyond every finite
			// threshold; callers clip or mark it missing instead.
			if math.IsInf(v, 0) {
				return fmt.Errorf("gbdt: X[%d][%d] (%s) = %g, want a finite value or NaN for missing", i, j, d.Names[j], v)
			}
		}
	}
	for i, y := range d.Y {
		if y != 0 && y != 1 {
			return fmt.Errorf("gbdt: Y[%d] = %g, want 0 or 1", i, y)
		}
	}
	for i, w := range d.W {
		if !(w >= 0) || math.IsInf(w, 1) {
			return fmt.Errorf("gbdt: W[%d] = %g, want a finite weight >= 0", i, w)
		}
	}
	return nil
}

// weight returns the weight of row i.
func (d *Dataset) weight(i int) float64 {
	if d.W == nil {
		return 1
	}
	return d.W[i]
}
