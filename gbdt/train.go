package gbdt

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Report describes a training run.
type Report struct {
	Trees                int // trees in the model: the best round when stopped early
	TrainRows, ValidRows int
	// Weighted metrics of the returned model; the validation ones are NaN
	// without a validation set, ValidAUC also when it holds one class only.
	TrainLogLoss, ValidLogLoss, ValidAUC float64
	// ValidCurve is the validation log-loss after each round, index 0 being
	// the base score alone; nil without a validation set.
	ValidCurve []float64
	Duration   time.Duration
}

// Train fits a model to d.
//
// The last Params.ValidationShare of the rows are the validation set and
// are never trained on. With EarlyStoppingRounds > 0 training stops once
// the validation log-loss has not improved for that many rounds and the
// model keeps the trees of the best round (possibly none: then it predicts
// the base score). With EarlyStoppingRounds = 0 it keeps all Trees rounds.
//
// It returns an error for invalid Params, a malformed Dataset (see Dataset),
// too few rows for the validation share, zero total weight of the training
// or validation rows, or training rows of one class only (the base log-odds
// would be infinite). A validation set of one class is allowed; its AUC is
// then NaN.
func Train(d Dataset, p Params) (*Model, Report, error) {
	start := time.Now()
	nan := math.NaN()
	rep := Report{TrainLogLoss: nan, ValidLogLoss: nan, ValidAUC: nan}
	if err := p.Validate(); err != nil {
		return nil, rep, err
	}
	if err := d.check(); err != nil {
		return nil, rep, err
	}
	n := len(d.X)
	nValid := int(float64(n) * p.ValidationShare)
	if p.ValidationShare > 0 && nValid == 0 {
		return nil, rep, fmt.Errorf("gbdt: ValidationShare = %g of %d rows leaves no validation row", p.ValidationShare, n)
	}
	nTrain := n - nValid
	switch {
	case nTrain <= 0:
		return nil, rep, fmt.Errorf("gbdt: ValidationShare = %g of %d rows leaves no training row", p.ValidationShare, n)
	case nTrain > math.MaxInt32: // row numbers are int32
		return nil, rep, fmt.Errorf("gbdt: %d training rows, want at most %d", nTrain, math.MaxInt32)
	}
	rep.TrainRows, rep.ValidRows = nTrain, nValid

	var sw, swy float64
	for i := range nTrain {
		w := d.weight(i)
		sw += w
		swy += w * d.Y[i]
	}
	switch {
	case sw == 0:
		return nil, rep, fmt.Errorf("gbdt: the %d training rows have total weight 0", nTrain)
	case swy == 0 || swy == sw:
		return nil, rep, fmt.Errorf("gbdt: the training rows (first %d) carry one class only, want both 0 and 1", nTrain)
	}
	if nValid > 0 {
		var swv float64
		for i := nTrain; i < n; i++ {
			swv += d.weight(i)
		}
		if swv == 0 { // the validation log-loss would be undefined
			return nil, rep, fmt.Errorf("gbdt: the %d validation rows have total weight 0", nValid)
		}
	}
	mean := swy / sw
	base := math.Log(mean / (1 - mean))
	if d.Offset != nil {
		base = 0
	}

	m := &Model{names: slices.Clone(d.Names), base: base}
	edges, cols := binTrain(&d, nTrain, p.Bins)
	t := newGrower(m, p, edges, cols)

	y, w := d.Y[:nTrain], make([]float64, nTrain)
	for i := range w {
		w[i] = d.weight(i)
	}
	F := filled(nTrain, base) // training margins
	if d.Offset != nil {
		for i := range F {
			F[i] += d.Offset[i]
		}
	}
	xv, yv := d.X[nTrain:], d.Y[nTrain:]
	var wv []float64
	if d.W != nil {
		wv = d.W[nTrain:]
	}
	FV := filled(nValid, base) // validation margins
	if d.Offset != nil {
		for i := range FV {
			FV[i] += d.Offset[nTrain+i]
		}
	}
	stopping := nValid > 0 && p.EarlyStoppingRounds > 0
	var bestF, bestFV []float64
	best, bestLoss := 0, math.Inf(1)
	if nValid > 0 {
		bestLoss = logLossMargins(FV, yv, wv)
		rep.ValidCurve = []float64{bestLoss}
	}
	if stopping {
		bestF, bestFV = slices.Clone(F), slices.Clone(FV)
	}
	var treeDepth []int

	for round := 1; round <= p.Trees; round++ {
		for i, f := range F {
			q := sigmoid(f)
			t.grad[i] = gradPair{g: w[i] * (q - y[i]), h: w[i] * q * (1 - q)}
		}
		t.growTree()
		root := m.roots[len(m.roots)-1]
		treeDepth = append(treeDepth, t.deep)
		for _, lf := range t.leaves {
			v := m.values[lf.node]
			for _, r := range t.rows[lf.lo:lf.hi] {
				F[r] += v
			}
		}
		if nValid == 0 {
			continue
		}
		for i, x := range xv {
			FV[i] += m.treeValue(root, x)
		}
		loss := logLossMargins(FV, yv, wv)
		rep.ValidCurve = append(rep.ValidCurve, loss)
		if !stopping {
			continue
		}
		if loss < bestLoss {
			best, bestLoss = round, loss
			copy(bestF, F)
			copy(bestFV, FV)
		} else if round-best >= p.EarlyStoppingRounds {
			break
		}
	}

	if stopping {
		// Keep the best round's trees; they were grown first, so they
		// are a prefix of the node slice.
		end := len(m.nodes)
		if best < len(m.roots) {
			end = int(m.roots[best])
		}
		m.roots = m.roots[:best:best]
		m.nodes = m.nodes[:end:end]
		m.values = m.values[:end:end]
		treeDepth = treeDepth[:best]
		F, FV = bestF, bestFV
	}
	for _, dd := range treeDepth {
		m.depth = max(m.depth, dd)
	}
	rep.Trees = len(m.roots)
	rep.TrainLogLoss = logLossMargins(F, y, w)
	if nValid > 0 {
		rep.ValidLogLoss = logLossMargins(FV, yv, wv)
		rep.ValidAUC = AUC(FV, yv, wv)
	}
	rep.Duration = time.Since(start)
	return m, rep, nil
}

// binTrain computes the bin edges of every feature from the training rows
// (the first nTrain) and bins those rows. Rows of weight 0 do not shape the
// edges. Features are independent, so they are binned in parallel.
func binTrain(d *Dataset, nTrain, maxBins int) (edges [][]float64, cols [][]uint8) {
	nf := len(d.Names)
	edges = make([][]float64, nf)
	cols = make([][]uint8, nf)
	parallel(nf, func(lo, hi int) {
		vals := make([]weightedValue, 0, nTrain)
		for f := lo; f < hi; f++ {
			vals = vals[:0]
			for i := range nTrain {
				v, w := d.X[i][f], d.weight(i)
				if !math.IsNaN(v) && w > 0 {
					vals = append(vals, weightedValue{v, w})
				}
			}
			edges[f] = quantileEdges(vals, maxBins)
			col := make([]uint8, nTrain)
			for i := range col {
				col[i] = binOf(d.X[i][f], edges[f])
			}
			cols[f] = col
		}
	})
	return edges, cols
}

func filled(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// logLossMargins is the weighted log-loss of margins F (logits) against
// labels y, computed from the margins for accuracy: the loss of a row is
// softplus(-F) for label 1 and softplus(F) for label 0.
func logLossMargins(F, y, w []float64) float64 {
	var loss, sw float64
	for i, f := range F {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		if y[i] == 1 {
			f = -f
		}
		loss += wi * softplus(f)
		sw += wi
	}
	if sw == 0 {
		return math.NaN()
	}
	return loss / sw
}

// softplus returns log(1+exp(z)) without overflow.
func softplus(z float64) float64 {
	return max(z, 0) + math.Log1p(math.Exp(-math.Abs(z)))
}
