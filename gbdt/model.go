package gbdt

import (
	"fmt"
	"math"
)

// node is one tree node, 16 bytes. All trees of a model share one flat
// slice of nodes; the children of a split are adjacent (left, left+1).
//
// A leaf points to itself (left = its own index) and has a NaN threshold,
// which no value passes. That makes a leaf a fixed point of the descent
// step, so every tree is walked for exactly Model.depth steps without
// testing for leaves: the loop has no unpredictable exit and the walks of
// several trees can be interleaved.
type node struct {
	thr       float64 // split: value < thr goes left; leaf: NaN
	left      uint32  // index of the left child; right is left+1; leaf: own index
	feat      uint16  // split feature; 0 for a leaf
	missRight uint8   // 1 if missing values go right; 0 for a leaf
	slot      uint8   // fast path: feat + fastFeatures·missRight (see Logit)
}

// fastFeatures is the most features for which Logit uses its fast path.
const fastFeatures = 128

func splitNode(thr float64, left uint32, feat int, missRight bool, nf int) node {
	n := node{thr: thr, left: left, feat: uint16(feat)}
	if missRight {
		n.missRight = 1
	}
	if nf <= fastFeatures {
		n.slot = uint8(feat) + fastFeatures*n.missRight
	}
	return n
}

func leafNode(i uint32) node {
	return node{thr: math.NaN(), left: i}
}

// Model is a trained ensemble. It is immutable after Train or
// UnmarshalBinary and safe for concurrent use.
type Model struct {
	names  []string
	base   float64   // log-odds of the weighted training mean
	depth  int       // deepest leaf of any tree: steps per tree in Logit
	roots  []uint32  // root node of each tree, in boosting order
	nodes  []node    // all trees, concatenated
	values []float64 // per node: the node's (shrunken) value; a leaf's is its output
}

// Names returns a copy of the feature names, in the order Logit expects.
func (m *Model) Names() []string { return append([]string(nil), m.names...) }

// NumTrees returns the number of trees kept (the best round when training
// stopped early).
func (m *Model) NumTrees() int { return len(m.roots) }

// Base returns the base score, the log-odds of the weighted training mean.
func (m *Model) Base() float64 { return m.base }

func (m *Model) checkRow(x []float64) {
	if len(x) != len(m.names) {
		badLength("row", len(x), len(m.names))
	}
}

// badLength panics; kept out of line so that Logit stays small.
func badLength(what string, got, want int) {
	panic(fmt.Sprintf("gbdt: %s has %d values, model has %d features", what, got, want))
}

// b2i is compiled to a flag-setting instruction, not a branch.
func b2i(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// step returns the child of node n that x takes (n itself for a leaf).
// It is branch-free: for a present value exactly one of ge, lt is 1 and
// decides; for NaN both are 0 and the learned missing direction decides; a
// leaf's NaN threshold makes both 0 and missRight is 0, so it stays put.
func step(n *node, x []float64) uint32 {
	v := x[n.feat]
	ge := b2i(v >= n.thr)
	lt := b2i(v < n.thr)
	return n.left + (ge | uint32(n.missRight)&^(ge|lt))
}

// fastStep is step for the fast path: buf holds x twice, with NaN replaced
// by -Inf in the first copy and by +Inf in the second, and n.slot picks the
// copy that sends NaN the learned way, so one comparison decides.
func fastStep(n *node, buf *[2 * fastFeatures]float64) uint32 {
	return n.left + b2i(buf[n.slot] >= n.thr)
}

// fastRow fills buf for fastStep: x with NaN as -Inf, then x with NaN as
// +Inf. The masks are no-ops (f < fastFeatures) that let the compiler drop
// bounds checks.
func fastRow(x []float64, buf *[2 * fastFeatures]float64) {
	for f, v := range x {
		lo, hi := v, v
		if math.IsNaN(v) {
			lo, hi = math.Inf(-1), math.Inf(1)
		}
		buf[f&(fastFeatures-1)] = lo
		buf[fastFeatures+f&(fastFeatures-1)] = hi
	}
}

// Logit returns the raw margin of row x: the base score plus one leaf value
// per tree, summed in tree order. x must have one value per feature (NaN =
// missing); it panics otherwise. It does not allocate.
func (m *Model) Logit(x []float64) float64 {
	m.checkRow(x)
	if len(x) > fastFeatures {
		return m.logitStep(x)
	}
	var buf [2 * fastFeatures]float64
	fastRow(x, &buf)
	sum := m.base
	nodes, values, depth, roots := m.nodes, m.values, m.depth, m.roots
	// Walk eight trees at a time: a single walk is a chain of dependent
	// loads and compares, eight independent chains keep the CPU busy.
	t := 0
	for ; t+8 <= len(roots); t += 8 {
		r := roots[t : t+8 : t+8]
		i0, i1, i2, i3, i4, i5, i6, i7 := r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]
		for range depth {
			i0 = fastStep(&nodes[i0], &buf)
			i1 = fastStep(&nodes[i1], &buf)
			i2 = fastStep(&nodes[i2], &buf)
			i3 = fastStep(&nodes[i3], &buf)
			i4 = fastStep(&nodes[i4], &buf)
			i5 = fastStep(&nodes[i5], &buf)
			i6 = fastStep(&nodes[i6], &buf)
			i7 = fastStep(&nodes[i7], &buf)
		}
		sum += values[i0]
		sum += values[i1]
		sum += values[i2]
		sum += values[i3]
		sum += values[i4]
		sum += values[i5]
		sum += values[i6]
		sum += values[i7]
	}
	for _, i := range roots[t:] {
		for range depth {
			i = fastStep(&nodes[i], &buf)
		}
		sum += values[i]
	}
	return sum
}

// logitStep is Logit for models of more than fastFeatures features, and
// the reference the fast path is tested against.
func (m *Model) logitStep(x []float64) float64 {
	sum := m.base
	nodes, values, depth := m.nodes, m.values, m.depth
	for _, i := range m.roots {
		for range depth {
			i = step(&nodes[i], x)
		}
		sum += values[i]
	}
	return sum
}

// Predict returns the probability of label 1 for row x: sigmoid(Logit(x)).
func (m *Model) Predict(x []float64) float64 {
	return sigmoid(m.Logit(x))
}

// Contributions writes into out (len = number of features) each feature's
// additive contribution to Logit(x) and returns the bias, so that
// bias + sum(out) == Logit(x) up to float rounding.
//
// It is Saabas path attribution: every node has an expected value (the
// value it would output as a leaf), the bias is the base score plus the
// roots' values, and each split on the path of x credits its feature with
// the change from the node's value to the value of the child x enters. Along
// a path the changes telescope from the root value to the leaf value.
func (m *Model) Contributions(x []float64, out []float64) (bias float64) {
	m.checkRow(x)
	if len(out) != len(m.names) {
		badLength("out", len(out), len(m.names))
	}
	clear(out)
	bias = m.base
	if len(x) > fastFeatures {
		return m.contributionsStep(x, out)
	}
	var buf [2 * fastFeatures]float64
	fastRow(x, &buf)
	nodes, values, depth, roots := m.nodes, m.values, m.depth, m.roots
	// Four walks at a time, as in Logit. Once at a leaf, a step stays there
	// and credits feature 0 with values[i] - values[i] = 0.
	t := 0
	for ; t+4 <= len(roots); t += 4 {
		r := roots[t : t+4 : t+4]
		i0, i1, i2, i3 := r[0], r[1], r[2], r[3]
		bias += values[i0] + values[i1] + values[i2] + values[i3]
		for range depth {
			n0, n1, n2, n3 := &nodes[i0], &nodes[i1], &nodes[i2], &nodes[i3]
			j0, j1, j2, j3 := fastStep(n0, &buf), fastStep(n1, &buf), fastStep(n2, &buf), fastStep(n3, &buf)
			out[n0.feat] += values[j0] - values[i0]
			out[n1.feat] += values[j1] - values[i1]
			out[n2.feat] += values[j2] - values[i2]
			out[n3.feat] += values[j3] - values[i3]
			i0, i1, i2, i3 = j0, j1, j2, j3
		}
	}
	for _, i := range roots[t:] {
		bias += values[i]
		for range depth {
			n := &nodes[i]
			j := fastStep(n, &buf)
			out[n.feat] += values[j] - values[i]
			i = j
		}
	}
	return bias
}

// contributionsStep is Contributions for models of more than fastFeatures
// features, and the reference the fast path is tested against.
func (m *Model) contributionsStep(x []float64, out []float64) (bias float64) {
	bias = m.base
	nodes, values, depth := m.nodes, m.values, m.depth
	for _, i := range m.roots {
		bias += values[i]
		for range depth {
			n := &nodes[i]
			j := step(n, x)
			out[n.feat] += values[j] - values[i]
			i = j
		}
	}
	return bias
}

// treeValue returns the output of the tree rooted at i for row x.
func (m *Model) treeValue(i uint32, x []float64) float64 {
	for {
		n := &m.nodes[i]
		if n.left == i {
			return m.values[i]
		}
		i = step(n, x)
	}
}

func sigmoid(z float64) float64 {
	return 1 / (1 + math.Exp(-z))
}
