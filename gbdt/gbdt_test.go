package gbdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// names returns n feature names f0, f1, ...
func names(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("f%d", i)
	}
	return s
}

// xorData returns n rows whose label is (x0 > 0.5) XOR (x1 > 0.5), with
// noise more uniform features that carry no signal.
func xorData(n, noise int, seed uint64) Dataset {
	r := rand.New(rand.NewPCG(seed, 1))
	d := Dataset{Names: names(2 + noise)}
	for range n {
		x := make([]float64, 2+noise)
		for j := range x {
			x[j] = r.Float64()
		}
		y := 0.0
		if (x[0] > 0.5) != (x[1] > 0.5) {
			y = 1
		}
		d.X = append(d.X, x)
		d.Y = append(d.Y, y)
	}
	return d
}

// synthData returns n rows of nf features with a nonlinear signal spread
// over the first 8 features (nf >= 9), some missing values, and label noise: a
// stand-in for real tabular data.
func synthData(n, nf int, seed uint64) Dataset {
	r := rand.New(rand.NewPCG(seed, 2))
	d := Dataset{Names: names(nf)}
	for range n {
		x := make([]float64, nf)
		for j := range x {
			x[j] = r.NormFloat64()
		}
		z := 1.5*x[0]*x[1] + 2*math.Sin(2*x[2]) + 1.5*math.Abs(x[3]) - 1.5 + x[4] - x[5]*x[5] + 0.8
		if x[6] > 0.5 {
			z += 1.5
		}
		z += 0.5 * x[7]
		if r.Float64() < 0.1 {
			x[3] = math.NaN() // missing with the signal it would carry lost
		}
		if r.Float64() < 0.05 {
			x[8] = math.NaN()
		}
		y := 0.0
		if r.Float64() < sigmoid(z) {
			y = 1
		}
		d.X = append(d.X, x)
		d.Y = append(d.Y, y)
	}
	return d
}

// split cuts d into its first k rows and the rest.
func split(d Dataset, k int) (Dataset, Dataset) {
	a := Dataset{Names: d.Names, X: d.X[:k], Y: d.Y[:k]}
	b := Dataset{Names: d.Names, X: d.X[k:], Y: d.Y[k:]}
	if d.W != nil {
		a.W, b.W = d.W[:k], d.W[k:]
	}
	return a, b
}

func train(t testing.TB, d Dataset, p Params) (*Model, Report) {
	t.Helper()
	m, rep, err := Train(d, p)
	if err != nil {
		t.Fatal(err)
	}
	return m, rep
}

func marshal(t testing.TB, m *Model) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func predictAll(m *Model, X [][]float64) []float64 {
	p := make([]float64, len(X))
	for i, x := range X {
		p[i] = m.Predict(x)
	}
	return p
}

func column(X [][]float64, j int) []float64 {
	c := make([]float64, len(X))
	for i, x := range X {
		c[i] = x[j]
	}
	return c
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	f := func(field string, change func(*Params)) {
		t.Helper()
		p := DefaultParams()
		change(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v, want an error naming %s", field, err, field)
		}
		if _, _, err := Train(xorData(100, 1, 1), p); err == nil {
			t.Errorf("%s: Train accepted invalid params", field)
		}
	}
	f("Trees", func(p *Params) { p.Trees = 0 })
	f("Depth", func(p *Params) { p.Depth = 0 })
	f("Depth", func(p *Params) { p.Depth = 17 })
	f("LearningRate", func(p *Params) { p.LearningRate = 0 })
	f("LearningRate", func(p *Params) { p.LearningRate = math.NaN() })
	f("L2", func(p *Params) { p.L2 = -1 })
	f("MinLeafWeight", func(p *Params) { p.MinLeafWeight = math.Inf(1) })
	f("MinLeafWeight", func(p *Params) { p.L2, p.MinLeafWeight = 0, 0 })
	f("Bins", func(p *Params) { p.Bins = 1 })
	f("Bins", func(p *Params) { p.Bins = 256 })
	f("EarlyStoppingRounds", func(p *Params) { p.EarlyStoppingRounds = -1 })
	f("EarlyStoppingRounds", func(p *Params) { p.ValidationShare = 0 })
	f("ValidationShare", func(p *Params) { p.ValidationShare = 1 })
	f("ValidationShare", func(p *Params) { p.ValidationShare = -0.1 })
}

func TestTrainRejectsBadData(t *testing.T) {
	nan := math.NaN()
	f := func(name string, d Dataset, want string) {
		t.Helper()
		_, _, err := Train(d, DefaultParams())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v, want one containing %q", name, err, want)
		}
	}
	ok := xorData(50, 1, 1)
	withRow := func(i int, row []float64) Dataset {
		d := ok
		d.X = append([][]float64(nil), ok.X...)
		d.X[i] = row
		return d
	}
	withY := func(i int, y float64) Dataset {
		d := ok
		d.Y = append([]float64(nil), ok.Y...)
		d.Y[i] = y
		return d
	}
	withW := func(i int, w float64) Dataset {
		d := ok
		d.W = make([]float64, len(ok.X))
		for j := range d.W {
			d.W[j] = 1
		}
		d.W[i] = w
		return d
	}
	f("empty", Dataset{Names: []string{"a"}}, "empty dataset")
	f("no features", Dataset{X: [][]float64{{}}, Y: []float64{1}}, "no features")
	f("short row", withRow(7, []float64{1, 2}), "row 7 has 2 values, want 3")
	f("long row", withRow(8, []float64{1, 2, 3, 4}), "row 8 has 4 values")
	f("infinite value", withRow(3, []float64{0, math.Inf(1), 0}), "X[3][1] (f1) = +Inf")
	f("Y length", Dataset{Names: ok.Names, X: ok.X, Y: ok.Y[:10]}, "len(Y) = 10")
	f("W length", Dataset{Names: ok.Names, X: ok.X, Y: ok.Y, W: []float64{1}}, "len(W) = 1")
	f("label 2", withY(4, 2), "Y[4] = 2, want 0 or 1")
	f("label NaN", withY(5, nan), "Y[5] = NaN")
	f("negative weight", withW(6, -1), "W[6] = -1")
	f("NaN weight", withW(6, nan), "W[6] = NaN")
	f("infinite weight", withW(6, math.Inf(1)), "W[6] = +Inf")
	f("zero weights", Dataset{Names: ok.Names, X: ok.X, Y: ok.Y, W: make([]float64, len(ok.X))}, "total weight 0")

	tailWeights := withW(0, 1)
	for i := 40; i < 50; i++ {
		tailWeights.W[i] = 0
	}
	f("zero validation weights", tailWeights, "validation rows have total weight 0")

	ones := xorData(50, 1, 1)
	ones.Y = make([]float64, 50)
	f("all zeros", ones, "one class")
	// The validation tail does not count: one class in the training part.
	tail := xorData(50, 1, 1)
	tail.Y = make([]float64, 50)
	tail.Y[45] = 1
	f("one class before the tail", tail, "one class")
	f("too few rows for validation", xorData(4, 1, 1), "no validation row")
}

// TestConstantFeatures trains on features that cannot split: every tree is
// a single leaf and the model predicts the training mean.
func TestConstantFeatures(t *testing.T) {
	d := Dataset{Names: names(2)}
	for i := range 200 {
		d.X = append(d.X, []float64{3, math.NaN()})
		d.Y = append(d.Y, float64(i%4/3)) // mean 0.25
	}
	p := DefaultParams()
	p.ValidationShare, p.EarlyStoppingRounds, p.Trees = 0, 0, 10
	m, _ := train(t, d, p)
	if m.depth != 0 {
		t.Errorf("depth %d, want single-leaf trees", m.depth)
	}
	for _, x := range [][]float64{{3, math.NaN()}, {-5, 7}} {
		if got := m.Predict(x); math.Abs(got-0.25) > 1e-9 {
			t.Errorf("Predict(%v) = %v, want 0.25", x, got)
		}
	}
}

func TestXOR(t *testing.T) {
	d := xorData(6000, 6, 7)
	tr, te := split(d, 4000)
	for j := range d.Names {
		if a := AUC(column(tr.X, j), tr.Y, nil); math.Abs(a-0.5) > 0.05 {
			t.Fatalf("feature %d alone has AUC %.3f; the test needs ~0.5", j, a)
		}
	}
	m, rep := train(t, tr, DefaultParams())
	auc := AUC(predictAll(m, te.X), te.Y, nil)
	t.Logf("trees %d, validation AUC %.4f, held-out AUC %.4f", rep.Trees, rep.ValidAUC, auc)
	if auc < 0.95 {
		t.Errorf("held-out AUC %.4f, want > 0.95", auc)
	}
}

func TestDeterministic(t *testing.T) {
	d := synthData(6000, 20, 3) // large enough for parallel histograms
	p := DefaultParams()
	p.Trees = 40
	a := marshal(t, must(train(t, d, p)))
	b := marshal(t, must(train(t, d, p)))
	if !bytes.Equal(a, b) {
		t.Fatal("two trainings on the same input encode differently")
	}
	// Work split over goroutines must not change a bit either.
	for _, procs := range []int{1, 3} {
		old := runtime.GOMAXPROCS(procs)
		c := marshal(t, must(train(t, d, p)))
		runtime.GOMAXPROCS(old)
		if !bytes.Equal(a, c) {
			t.Errorf("GOMAXPROCS=%d gives another model", procs)
		}
	}
}

func must(m *Model, _ Report) *Model { return m }

func TestContributions(t *testing.T) {
	d := xorData(4000, 6, 11)
	m, _ := train(t, d, DefaultParams())
	out := make([]float64, len(d.Names))
	mean := make([]float64, len(d.Names))
	r := rand.New(rand.NewPCG(5, 5))
	for i := range 1000 {
		x := d.X[i]
		if i%10 == 0 { // off-sample rows and missing values too
			x = []float64{r.Float64(), math.NaN(), r.Float64(), r.Float64(), math.NaN(), r.Float64(), r.Float64(), r.Float64()}
		}
		bias := m.Contributions(x, out)
		sum := bias
		for j, c := range out {
			sum += c
			mean[j] += math.Abs(c) / 1000
		}
		if logit := m.Logit(x); math.Abs(sum-logit) > 1e-9 {
			t.Fatalf("row %d: bias + contributions = %v, Logit = %v", i, sum, logit)
		}
	}
	t.Logf("mean |contribution| per feature: %.3f", mean)
	for j := 2; j < len(mean); j++ {
		if mean[j] >= min(mean[0], mean[1]) {
			t.Errorf("noise feature %d has mean |contribution| %.3f, not below x0 %.3f and x1 %.3f", j, mean[j], mean[0], mean[1])
		}
	}
}

// TestMissing trains on datasets where missingness carries the label and
// checks that the learned default directions route NaN correctly. Stumps
// (Depth 1) must get it right in their one split; deeper trees could work
// around a wrong direction with more splits.
func TestMissing(t *testing.T) {
	nan := math.NaN()
	// label returns the label for x0 and whether x0 is to be missing.
	f := func(name string, label func(x0 float64, r *rand.Rand) (y float64, missing bool), probes map[float64]float64, sameLeafAs float64) {
		t.Helper()
		r := rand.New(rand.NewPCG(9, 9))
		d := Dataset{Names: names(3)}
		for range 3000 {
			x := []float64{r.Float64(), r.Float64(), r.Float64()}
			y, missing := label(x[0], r)
			if missing {
				x[0] = nan
			}
			d.X = append(d.X, x)
			d.Y = append(d.Y, y)
		}
		for _, depth := range []int{1, 6} {
			p := DefaultParams()
			p.Depth = depth
			m, _ := train(t, d, p)
			for x0, want := range probes {
				got := m.Predict([]float64{x0, 0.5, 0.5})
				if math.Abs(got-want) > 0.1 {
					t.Errorf("%s, depth %d: Predict(x0=%v) = %.3f, want %.1f", name, depth, x0, got, want)
				}
			}
			// In a stump every tree splits x0 the same way, so NaN
			// must land in exactly the leaves of its look-alike.
			if !math.IsNaN(sameLeafAs) && depth == 1 {
				a, b := m.Logit([]float64{nan, 0.5, 0.5}), m.Logit([]float64{sameLeafAs, 0.5, 0.5})
				if a != b {
					t.Errorf("%s, stumps: Logit(NaN) = %v, want Logit(%v) = %v", name, a, sameLeafAs, b)
				}
			}
		}
	}
	b := func(c bool) float64 {
		if c {
			return 1
		}
		return 0
	}
	// Missing acts like a high value: it must learn to go right.
	f("missing positive", func(x0 float64, r *rand.Rand) (float64, bool) {
		if r.Float64() < 0.3 {
			return 1, true
		}
		return b(x0 > 0.5), false
	}, map[float64]float64{nan: 1, 0.2: 0, 0.8: 1}, 0.8)
	// Missing acts like a low value: it must go left.
	f("missing negative", func(x0 float64, r *rand.Rand) (float64, bool) {
		if r.Float64() < 0.3 {
			return 0, true
		}
		return b(x0 > 0.5), false
	}, map[float64]float64{nan: 0, 0.2: 0, 0.8: 1}, 0.2)
	// Only missingness matters; the present values are noise.
	f("missingness is the label", func(x0 float64, r *rand.Rand) (float64, bool) {
		m := r.Float64() < 0.4
		return b(m), m
	}, map[float64]float64{nan: 1, 0.1: 0, 0.5: 0, 0.9: 0}, nan)
}

// TestWeights checks that a row of weight 2 trains like two copies of it.
func TestWeights(t *testing.T) {
	base := synthData(2000, 10, 4)
	var dup, weighted Dataset
	dup.Names, weighted.Names = base.Names, base.Names
	for i, x := range base.X {
		k := 1 + b2f(i%3 == 0)
		for range int(k) {
			dup.X = append(dup.X, x)
			dup.Y = append(dup.Y, base.Y[i])
		}
		weighted.X = append(weighted.X, x)
		weighted.Y = append(weighted.Y, base.Y[i])
		weighted.W = append(weighted.W, k)
	}
	p := DefaultParams()
	p.ValidationShare, p.EarlyStoppingRounds, p.Trees = 0, 0, 60
	md, _ := train(t, dup, p)
	mw, _ := train(t, weighted, p)
	unweighted, _ := train(t, base, p)
	probe := synthData(500, 10, 99)
	var maxDiff, maxUnweighted float64
	for _, x := range probe.X {
		maxDiff = max(maxDiff, math.Abs(md.Logit(x)-mw.Logit(x)))
		maxUnweighted = max(maxUnweighted, math.Abs(md.Logit(x)-unweighted.Logit(x)))
	}
	t.Logf("max logit difference: duplicated vs weighted %.3g, vs unweighted %.3g", maxDiff, maxUnweighted)
	if maxDiff > 1e-6 {
		t.Errorf("duplicated and weight-2 rows give logits up to %.3g apart", maxDiff)
	}
	if maxUnweighted < 1e-3 {
		t.Error("the weights made no difference; the test proves nothing")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestEarlyStoppingNoise trains on labels independent of the features: it
// must stop early, keep the best round's trees and report them.
func TestEarlyStoppingNoise(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	d := Dataset{Names: names(10)}
	for range 3000 {
		x := make([]float64, 10)
		for j := range x {
			x[j] = r.Float64()
		}
		d.X = append(d.X, x)
		d.Y = append(d.Y, b2f(r.Float64() < 0.3))
	}
	p := DefaultParams()
	p.Trees = 300
	m, rep := train(t, d, p)
	t.Logf("stopped with %d trees, curve %.4f", rep.Trees, rep.ValidCurve)
	if rep.Trees > 60 {
		t.Errorf("kept %d trees on pure noise, want early stop", rep.Trees)
	}
	best := 0
	for i, l := range rep.ValidCurve {
		if l < rep.ValidCurve[best] {
			best = i
		}
	}
	if rep.Trees != best || m.NumTrees() != best {
		t.Errorf("Report.Trees %d, model trees %d, want the best round %d", rep.Trees, m.NumTrees(), best)
	}
	if got, want := len(rep.ValidCurve), best+p.EarlyStoppingRounds+1; got != want {
		t.Errorf("trained %d rounds, want to stop %d rounds after the best (%d)", got-1, p.EarlyStoppingRounds, want-1)
	}
	_, valid := split(d, rep.TrainRows)
	if got := LogLoss(predictAll(m, valid.X), valid.Y, nil); math.Abs(got-rep.ValidCurve[best]) > 1e-9 || rep.ValidLogLoss != rep.ValidCurve[best] {
		t.Errorf("model validation log-loss %v, reported %v, best of curve %v", got, rep.ValidLogLoss, rep.ValidCurve[best])
	}
}

// TestEarlyStoppingKeepsBestRound checks that an early-stopped model is
// exactly the model of a run told to train the best round's trees.
func TestEarlyStoppingKeepsBestRound(t *testing.T) {
	d := synthData(2000, 10, 8)
	p := DefaultParams()
	p.Trees, p.LearningRate, p.EarlyStoppingRounds = 500, 0.5, 5 // overfits fast
	m, rep := train(t, d, p)
	if rep.Trees < 2 || len(rep.ValidCurve) == p.Trees+1 {
		t.Fatalf("best round %d of %d rounds; the test needs an early stop after a few good rounds", rep.Trees, len(rep.ValidCurve)-1)
	}
	p.Trees, p.EarlyStoppingRounds = rep.Trees, 0
	full, _ := train(t, d, p)
	if !bytes.Equal(marshal(t, m), marshal(t, full)) {
		t.Errorf("early-stopped model differs from a %d-round model", rep.Trees)
	}
}

// TestReportMatchesModel checks the reported metrics against the returned
// model's predictions; training margins come from bins, predictions from raw
// values and thresholds, so this also checks that the two agree.
func TestReportMatchesModel(t *testing.T) {
	d := synthData(3000, 10, 6)
	d.W = make([]float64, len(d.X))
	for i := range d.W {
		d.W[i] = 0.5 + float64(i%4)
	}
	m, rep := train(t, d, DefaultParams())
	tr, va := split(d, rep.TrainRows)
	f := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: reported %v, model gives %v", name, got, want)
		}
	}
	f("TrainLogLoss", rep.TrainLogLoss, LogLoss(predictAll(m, tr.X), tr.Y, tr.W))
	f("ValidLogLoss", rep.ValidLogLoss, LogLoss(predictAll(m, va.X), va.Y, va.W))
	f("ValidAUC", rep.ValidAUC, AUC(predictAll(m, va.X), va.Y, va.W))
	if rep.ValidRows != 600 || rep.TrainRows != 2400 || rep.Trees != m.NumTrees() || rep.Duration <= 0 {
		t.Errorf("report %+v", rep)
	}
	if rep.ValidAUC < 0.75 {
		t.Errorf("validation AUC %.3f; the signal should be learned", rep.ValidAUC)
	}
}

// TestSplitsAreBest grows a tree on arbitrary gradients and checks every
// node against a search on a histogram summed directly from the node's
// rows: the tree's splits, subtracted histograms and row partitions must
// give the same choices, and the node values must be the Newton steps.
func TestSplitsAreBest(t *testing.T) {
	d := synthData(3000, 10, 17)
	p := DefaultParams()
	edges, cols := binTrain(&d, len(d.X), p.Bins)
	m := &Model{names: d.Names}
	g := newGrower(m, p, edges, cols)
	r := rand.New(rand.NewPCG(4, 4))
	for i := range g.grad {
		g.grad[i] = gradPair{g: r.NormFloat64() + d.X[i][0], h: 0.05 + r.Float64()/4}
	}
	g.growTree()
	hist := make([]histBin, len(g.hists[0][0]))
	splits := 0
	var check func(id uint32, rows []int32, depth int)
	check = func(id uint32, rows []int32, depth int) {
		var G, H float64
		for _, r := range rows {
			G += g.grad[r].g
			H += g.grad[r].h
		}
		if want := g.leafValue(G, H); math.Abs(m.values[id]-want) > 1e-9 {
			t.Errorf("node %d: value %v, want %v", id, m.values[id], want)
		}
		n := m.nodes[id]
		g.buildHistFeatures(hist, rows, 0, g.nf)
		s, ok := g.bestSplit(hist, G, H, int32(len(rows)))
		if depth == p.Depth || !ok {
			if n.left != id {
				t.Errorf("node %d at depth %d split on f%d; want a leaf", id, depth, n.feat)
			}
			return
		}
		if n.left == id || int(n.feat) != s.feat || (n.missRight == 1) != s.missRight || (s.bin < g.nbins[s.feat] && n.thr != edges[s.feat][s.bin-1]) {
			t.Fatalf("node %d at depth %d: %+v, direct search says %+v", id, depth, n, s)
		}
		splits++
		var left, right []int32
		for _, r := range rows {
			if step(&n, d.X[r]) == n.left {
				left = append(left, r)
			} else {
				right = append(right, r)
			}
		}
		check(n.left, left, depth+1)
		check(n.left+1, right, depth+1)
	}
	all := make([]int32, len(d.X))
	for i := range all {
		all[i] = int32(i)
	}
	check(m.roots[0], all, 0)
	if splits < 20 {
		t.Errorf("only %d splits; the test needs a bushy tree", splits)
	}
}

// TestBinning checks bin edges and that thresholds agree with bins.
func TestBinning(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	f := func(name string, vals []float64, maxBins int, wantEdges int) {
		t.Helper()
		wv := make([]weightedValue, len(vals))
		for i, v := range vals {
			wv[i] = weightedValue{v, 1}
		}
		edges := quantileEdges(wv, maxBins)
		if wantEdges >= 0 && len(edges) != wantEdges {
			t.Errorf("%s: %d edges, want %d", name, len(edges), wantEdges)
		}
		if len(edges) > maxBins-1 {
			t.Errorf("%s: %d edges for %d bins", name, len(edges), maxBins)
		}
		for i := 1; i < len(edges); i++ {
			if !(edges[i-1] < edges[i]) {
				t.Fatalf("%s: edges not increasing: %v", name, edges)
			}
		}
		counts := make([]int, len(edges)+2)
		for _, v := range vals {
			bin := binOf(v, edges)
			counts[bin]++
			for b := 1; b <= len(edges); b++ {
				if (bin <= uint8(b)) != (v < edges[b-1]) {
					t.Fatalf("%s: value %v in bin %d but threshold %v says otherwise", name, v, bin, edges[b-1])
				}
			}
		}
		if counts[0] != 0 {
			t.Errorf("%s: present values in the missing bin", name)
		}
	}
	uniform := make([]float64, 10000)
	for i := range uniform {
		uniform[i] = r.Float64()
	}
	f("uniform", uniform, 64, 63)
	f("few distinct", []float64{3, 1, 2, 3, 1, 2, 2}, 64, 2)
	if e := quantileEdges([]weightedValue{{3, 1}, {1, 1}, {2, 1}}, 64); fmt.Sprint(e) != "[1.5 2.5]" {
		t.Errorf("edges %v, want midpoints [1.5 2.5]", e)
	}
	f("constant", []float64{5, 5, 5}, 64, 0)
	f("adjacent floats", []float64{1, math.Nextafter(1, 2), 1e300, -1e300, math.MaxFloat64}, 64, 4)
	// A heavy point mass gets one bin, not many empty ones.
	mass := make([]float64, 1000)
	for i := range 100 {
		mass[i] = float64(i)
	}
	f("point mass", mass, 16, -1)
	if got := binOf(math.NaN(), []float64{1, 2}); got != 0 {
		t.Errorf("NaN in bin %d, want 0", got)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	d := synthData(2000, 10, 12)
	p := DefaultParams()
	p.Trees = 30
	m, _ := train(t, d, p)
	b := marshal(t, m)
	var m2 Model
	if err := m2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, marshal(t, &m2)) {
		t.Error("encoding the decoded model gives other bytes")
	}
	if strings.Join(m2.Names(), ",") != strings.Join(d.Names, ",") || m2.NumTrees() != m.NumTrees() {
		t.Errorf("decoded names %v, %d trees", m2.Names(), m2.NumTrees())
	}
	probe := synthData(500, 10, 13)
	c1, c2 := make([]float64, 10), make([]float64, 10)
	for _, x := range probe.X {
		if m.Logit(x) != m2.Logit(x) || m.Contributions(x, c1) != m2.Contributions(x, c2) || fmt.Sprint(c1) != fmt.Sprint(c2) {
			t.Fatalf("decoded model predicts differently on %v", x)
		}
	}
	t.Logf("%d trees, %d nodes, %d bytes", m.NumTrees(), len(m.nodes), len(b))
}

func smallModelBytes(t testing.TB) []byte {
	d := synthData(500, 10, 21)
	p := DefaultParams()
	p.Trees, p.Depth = 3, 3
	return marshal(t, must(train(t, d, p)))
}

func TestUnmarshalRejectsCorrupt(t *testing.T) {
	b := smallModelBytes(t)
	f := func(name string, data []byte) {
		t.Helper()
		var m Model
		if err := m.UnmarshalBinary(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for n := range len(b) {
		f(fmt.Sprintf("truncated to %d bytes", n), b[:n])
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		f(fmt.Sprintf("byte %d flipped", i), c)
	}
	f("appended byte", append(bytes.Clone(b), 0))
	// Structural errors behind a valid checksum.
	f("trailing bytes", withCRC(append(bytes.Clone(b[:len(b)-4]), 0)))
	f("version 2", withCRC(append([]byte("GBDT\x02"), b[5:len(b)-4]...)))
	f("no trees but claims one", withCRC([]byte("GBDT\x01\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x01")))
	f("bad tag", withCRC([]byte("GBDT\x01\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x01\x07\x00\x00\x00\x00\x00\x00\x00\x00")))
	f("padded varint", withCRC([]byte("GBDT\x01\x81\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x00")))
	f("NaN leaf", withCRC([]byte("GBDT\x01\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xf8\x7f")))
	var ok Model
	if err := ok.UnmarshalBinary(withCRC([]byte("GBDT\x01\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f"))); err != nil || ok.Logit([]float64{0}) != 1 {
		t.Errorf("hand-made one-leaf model: %v", err)
	}
}

// withCRC appends the checksum of body.
func withCRC(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.ChecksumIEEE(body))
}

// FuzzUnmarshal feeds arbitrary bytes to UnmarshalBinary, once as they are
// and once with a valid checksum appended so that the fuzzer reaches the
// parser. Whatever decodes must encode back to the same bytes and predict
// without panicking.
func FuzzUnmarshal(f *testing.F) {
	b := smallModelBytes(f)
	f.Add(b)
	f.Add(b[:len(b)-4])
	f.Add(b[:len(b)/2])
	f.Add([]byte("GBDT\x01\x01\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, withCRC(data)} {
			var m Model
			if m.UnmarshalBinary(in) != nil {
				continue
			}
			if out := marshal(t, &m); !bytes.Equal(out, in) {
				t.Fatalf("decoded %x, encoded back as %x", in, out)
			}
			x := make([]float64, len(m.Names()))
			c := make([]float64, len(x))
			// Contributions are differences of node values: their
			// rounding error scales with the values, not with Logit.
			scale := math.Abs(m.base)
			for _, v := range m.values {
				scale += 2 * math.Abs(v)
			}
			for _, v := range []float64{0, math.NaN(), 1e300, -1e300} {
				for i := range x {
					x[i] = v
				}
				sum := m.Contributions(x, c)
				for _, ci := range c {
					sum += ci
				}
				if l := m.Logit(x); math.Abs(sum-l) > 1e-9*scale {
					t.Fatalf("contributions sum to %v, Logit %v", sum, l)
				}
			}
		}
	})
}

func TestAUC(t *testing.T) {
	nan := math.NaN()
	f := func(name string, scores, labels, weights []float64, want float64) {
		t.Helper()
		got := AUC(scores, labels, weights)
		if !(math.Abs(got-want) < 1e-12) && !(math.IsNaN(want) && math.IsNaN(got)) {
			t.Errorf("%s: AUC = %v, want %v", name, got, want)
		}
	}
	f("perfect", []float64{0.1, 0.2, 0.3, 0.4}, []float64{0, 0, 1, 1}, nil, 1)
	f("reversed", []float64{0.4, 0.3, 0.2, 0.1}, []float64{0, 0, 1, 1}, nil, 0)
	f("one pair wrong", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, nil, 0.75)
	// pos {0.5, 0.9}, neg {0.5, 0.2}: pairs 0.5 (tie), 1, 1, 1 of 4.
	f("tie across classes", []float64{0.5, 0.5, 0.2, 0.9}, []float64{1, 0, 0, 1}, nil, 0.875)
	f("all tied", []float64{1, 1, 1, 1}, []float64{0, 1, 0, 1}, nil, 0.5)
	// Negative 0.4 has weight 2: pairs (0.35,0.1)=1, (0.35,0.4)=0,
	// (0.8,0.1)=1, (0.8,0.4)=2 of 2·3 = 6.
	f("weighted", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, []float64{1, 2, 1, 1}, 4.0/6)
	f("weight as duplicate", []float64{0.1, 0.4, 0.4, 0.35, 0.8}, []float64{0, 0, 0, 1, 1}, nil, 4.0/6)
	f("zero weight ignored", []float64{0.1, 0.9, 0.35, 0.8}, []float64{0, 0, 1, 1}, []float64{1, 0, 1, 1}, 1)
	f("one class", []float64{0.1, 0.2}, []float64{1, 1}, nil, nan)
	f("empty", nil, nil, nil, nan)
	f("length mismatch", []float64{0.1, 0.2}, []float64{1}, nil, nan)
	f("NaN score", []float64{nan, 0.2}, []float64{0, 1}, nil, nan)
	f("label 2", []float64{0.1, 0.2}, []float64{0, 2}, nil, nan)
	f("negative weight", []float64{0.1, 0.2}, []float64{0, 1}, []float64{1, -1}, nan)
}

func TestLogLoss(t *testing.T) {
	nan := math.NaN()
	f := func(name string, probs, labels, weights []float64, want float64) {
		t.Helper()
		got := LogLoss(probs, labels, weights)
		if !(math.Abs(got-want) < 1e-12) && !(math.IsNaN(want) && math.IsNaN(got)) {
			t.Errorf("%s: LogLoss = %v, want %v", name, got, want)
		}
	}
	f("two rows", []float64{0.9, 0.2}, []float64{1, 0}, nil, 0.164252033486018)               // (-ln 0.9 - ln 0.8)/2
	f("weighted", []float64{0.9, 0.2}, []float64{1, 0}, []float64{1, 3}, 0.19369779240011387) // (-ln 0.9 - 3 ln 0.8)/4
	f("coin", []float64{0.5}, []float64{0}, nil, math.Ln2)
	f("confident miss is clipped", []float64{0}, []float64{1}, nil, 34.538776394910684) // -ln 1e-15
	f("soft label", []float64{0.7}, []float64{0.5}, nil, 0.7803238741323343)            // -(ln 0.7 + ln 0.3)/2
	f("empty", nil, nil, nil, nan)
	f("length mismatch", []float64{0.5}, []float64{1, 0}, nil, nan)
	f("probability > 1", []float64{1.5}, []float64{1}, nil, nan)
	f("zero weight", []float64{0.5}, []float64{1}, []float64{0}, nan)
}

func TestPredictNoAlloc(t *testing.T) {
	d := synthData(2000, 10, 2)
	p := DefaultParams()
	p.Trees = 20
	m, _ := train(t, d, p)
	x := d.X[0]
	out := make([]float64, 10)
	if n := testing.AllocsPerRun(100, func() { m.Predict(x); m.Logit(x) }); n != 0 {
		t.Errorf("Predict allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { m.Contributions(x, out) }); n != 0 {
		t.Errorf("Contributions allocates %v times", n)
	}
}

// TestConcurrentPredict lets the race detector check that prediction only
// reads the model.
func TestConcurrentPredict(t *testing.T) {
	d := synthData(1000, 10, 2)
	p := DefaultParams()
	p.Trees = 10
	m, _ := train(t, d, p)
	want := predictAll(m, d.X)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			out := make([]float64, 10)
			for i, x := range d.X {
				m.Contributions(x, out)
				if m.Predict(x) != want[i] {
					t.Errorf("row %d: prediction changed", i)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLogitPanicsOnWrongRow(t *testing.T) {
	m := must(train(t, xorData(200, 1, 1), DefaultParams()))
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "row has 2 values, model has 3 features") {
			t.Errorf("recovered %v", r)
		}
	}()
	m.Logit([]float64{1, 2})
}

// TestFastPathMatchesStep checks Logit's fast path against the plain
// descent on rows with missing, infinite and threshold-equal values.
func TestFastPathMatchesStep(t *testing.T) {
	d := synthData(3000, 12, 14)
	p := DefaultParams()
	p.Trees = 30
	m, _ := train(t, d, p)
	r := rand.New(rand.NewPCG(2, 2))
	var thresholds []float64
	for _, n := range m.nodes {
		if !math.IsNaN(n.thr) {
			thresholds = append(thresholds, n.thr)
		}
	}
	special := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0}
	for i := range 2000 {
		x := append([]float64(nil), d.X[i]...)
		for j := range x {
			switch r.IntN(4) {
			case 0:
				x[j] = special[r.IntN(len(special))]
			case 1:
				x[j] = thresholds[r.IntN(len(thresholds))]
			}
		}
		if got, want := m.Logit(x), m.logitStep(x); got != want {
			t.Fatalf("row %v: fast path %v, step %v", x, got, want)
		}
		fast, slow := make([]float64, len(x)), make([]float64, len(x))
		fb, sb := m.Contributions(x, fast), m.contributionsStep(x, slow)
		if math.Abs(fb-sb) > 1e-12 {
			t.Fatalf("row %v: contributions' bias %v on the fast path, %v stepping", x, fb, sb)
		}
		for j := range fast {
			if math.Abs(fast[j]-slow[j]) > 1e-12 {
				t.Fatalf("row %v: contribution of feature %d %v on the fast path, %v stepping", x, j, fast[j], slow[j])
			}
		}
	}
}

// TestManyFeatures trains on more features than Logit's fast path takes,
// with the signal in features beyond it.
func TestManyFeatures(t *testing.T) {
	const nf = 300
	r := rand.New(rand.NewPCG(3, 3))
	d := Dataset{Names: names(nf)}
	for range 3000 {
		x := make([]float64, nf)
		for j := range x {
			x[j] = r.Float64()
		}
		if r.IntN(10) == 0 {
			x[299] = math.NaN()
		}
		d.X = append(d.X, x)
		d.Y = append(d.Y, b2f(x[250]+x[299] > 1 || math.IsNaN(x[299])))
	}
	tr, te := split(d, 2000)
	p := DefaultParams()
	p.Trees, p.LearningRate = 30, 0.3
	m, _ := train(t, tr, p)
	if auc := AUC(predictAll(m, te.X), te.Y, nil); auc < 0.95 {
		t.Errorf("held-out AUC %.3f", auc)
	}
	b := marshal(t, m)
	var m2 Model
	if err := m2.UnmarshalBinary(b); err != nil || m2.Logit(te.X[0]) != m.Logit(te.X[0]) {
		t.Errorf("round trip: %v", err)
	}
}

// With an offset the trees learn corrections to it: an offset that is the
// true log-odds leaves them nothing to learn, and an offset that misses one
// feature's effect makes them learn that feature and little else.
func TestOffset(t *testing.T) {
	f := func(name string, trueLogit, offset func(x []float64) float64, wantTrees func(int) bool, wantTop int) {
		t.Helper()
		r := rand.New(rand.NewPCG(17, 17))
		n := 6000
		d := Dataset{Names: names(3), Offset: make([]float64, n)}
		for i := 0; i < n; i++ {
			x := []float64{r.Float64()*4 - 2, r.Float64(), r.Float64()}
			d.X = append(d.X, x)
			d.Y = append(d.Y, b2f(r.Float64() < 1/(1+math.Exp(-trueLogit(x)))))
			d.Offset[i] = offset(x)
		}
		m, rep := train(t, d, DefaultParams())
		if m.Base() != 0 {
			t.Errorf("%s: base score %g with an offset, want 0", name, m.Base())
		}
		if !wantTrees(rep.Trees) {
			t.Errorf("%s: %d trees", name, rep.Trees)
		}
		if wantTop < 0 {
			return
		}
		abs := make([]float64, 3)
		out := make([]float64, 3)
		for _, x := range d.X {
			m.Contributions(x, out)
			for j := range out {
				abs[j] += math.Abs(out[j])
			}
		}
		for j := range abs {
			if j != wantTop && abs[j] >= abs[wantTop]/3 {
				t.Errorf("%s: mean |contribution| %v, want feature %d far ahead", name, abs, wantTop)
			}
		}
	}
	truth := func(x []float64) float64 { return 2*x[0] + 3*b2f(x[1] > 0.5) - 1.5 }
	f("offset is the truth", truth, truth, func(n int) bool { return n <= 5 }, -1)
	f("offset misses x1", truth, func(x []float64) float64 { return 2*x[0] - 1.5 }, func(n int) bool { return n >= 10 }, 1)
	// Without the offset the same data needs x0 too.
	r := rand.New(rand.NewPCG(17, 17))
	d := Dataset{Names: names(3)}
	for i := 0; i < 6000; i++ {
		x := []float64{r.Float64()*4 - 2, r.Float64(), r.Float64()}
		d.X = append(d.X, x)
		d.Y = append(d.Y, b2f(r.Float64() < 1/(1+math.Exp(-truth(x)))))
	}
	m, _ := train(t, d, DefaultParams())
	out := make([]float64, 3)
	var a0 float64
	for _, x := range d.X {
		m.Contributions(x, out)
		a0 += math.Abs(out[0])
	}
	if a0 < 1000 {
		t.Errorf("without an offset x0 contributes only %g in total", a0)
	}
}
