package gbdt

import "math"

// gradPair is the first and second derivative of one row's weighted
// log-loss with respect to its margin.
type gradPair struct {
	g, h float64
}

// histBin accumulates the gradient pairs and the row count of one bin.
type histBin struct {
	g, h float64
	n    int32
}

// candidate is a split of a node: rows with a value bin <= bin go left,
// missing values go right when missRight.
type candidate struct {
	gain      float64
	feat      int
	bin       int
	missRight bool
	gl, hl    float64 // left child sums
	gr, hr    float64 // right child sums
}

// leafRows records which training rows (a range of grower.rows) ended in a
// leaf, to update their margins without walking the tree again.
type leafRows struct {
	node   uint32
	lo, hi int
}

// grower grows one tree at a time on the binned training rows.
type grower struct {
	p       Params
	nf      int
	edges   [][]float64 // per feature
	nbins   []int       // value bins per feature: len(edges)+1
	stride  int         // histogram slots per feature: 1 + max(nbins)
	rowBins []uint8     // bins of the training rows, row-major: rowBins[r*nf+f]
	colBins [][]uint8   // the same by feature: colBins[f][r]
	grad    []gradPair  // per training row, for the current round

	rows   []int32 // training row numbers; each node owns a range
	tmp    []int32 // partition scratch
	hists  [][2][]histBin
	leaves []leafRows
	deep   int    // deepest leaf of the current tree
	m      *Model // grown trees are appended to its nodes
}

func newGrower(m *Model, p Params, edges [][]float64, cols [][]uint8) *grower {
	nf, nTrain := len(cols), len(cols[0])
	t := &grower{m: m, p: p, nf: nf, edges: edges, colBins: cols}
	// Histograms read whole rows, partitions one feature: each gets the
	// layout that keeps its reads sequential.
	t.rowBins = make([]uint8, nTrain*nf)
	for f, col := range cols {
		for r, b := range col {
			t.rowBins[r*nf+f] = b
		}
	}
	t.nbins = make([]int, nf)
	for f, e := range edges {
		t.nbins[f] = len(e) + 1
		t.stride = max(t.stride, len(e)+2)
	}
	t.grad = make([]gradPair, nTrain)
	t.rows = make([]int32, nTrain)
	t.tmp = make([]int32, 0, nTrain)
	// Two histograms per level (the two children being grown); a node's
	// children never overwrite its sibling's, which is grown later.
	t.hists = make([][2][]histBin, p.Depth)
	for d := range t.hists {
		for s := range 2 {
			t.hists[d][s] = make([]histBin, nf*t.stride)
		}
	}
	return t
}

// growTree grows one tree on the current gradients and appends it to the
// model. t.leaves then lists the rows of each leaf.
func (t *grower) growTree() {
	for i := range t.rows {
		t.rows[i] = int32(i)
	}
	t.leaves = t.leaves[:0]
	t.deep = 0
	var G, H float64
	for _, gh := range t.grad {
		G += gh.g
		H += gh.h
	}
	root := t.newNodes(1)
	t.m.roots = append(t.m.roots, root)
	hist := t.hists[0][0]
	t.buildHist(hist, t.rows)
	t.grow(root, 0, len(t.rows), hist, G, H, 0)
}

// newNodes appends k nodes to the model and returns the first one's index.
func (t *grower) newNodes(k int) uint32 {
	m := t.m
	i := uint32(len(m.nodes))
	for range k {
		m.nodes = append(m.nodes, node{})
		m.values = append(m.values, 0)
	}
	return i
}

// grow makes node id, which owns rows[lo:hi] with gradient sums G, H, a
// leaf or splits it and grows its children. hist is its histogram, nil at
// the maximum depth where no split is searched.
func (t *grower) grow(id uint32, lo, hi int, hist []histBin, G, H float64, depth int) {
	t.m.values[id] = t.leafValue(G, H)
	if hist != nil {
		if s, ok := t.bestSplit(hist, G, H, int32(hi-lo)); ok {
			mid := t.partition(lo, hi, s)
			left := t.newNodes(2)
			thr := math.Inf(1) // bin == nbins: all values left, missing right
			if s.bin < t.nbins[s.feat] {
				thr = t.edges[s.feat][s.bin-1]
			}
			t.m.nodes[id] = splitNode(thr, left, s.feat, s.missRight, t.nf)
			var hl, hr []histBin
			if depth+1 < t.p.Depth {
				// Build the smaller child's histogram from its rows and
				// get the larger one's by subtraction from the parent.
				hl, hr = t.hists[depth+1][0], t.hists[depth+1][1]
				if mid-lo <= hi-mid {
					t.buildHist(hl, t.rows[lo:mid])
					subtract(hr, hist, hl)
				} else {
					t.buildHist(hr, t.rows[mid:hi])
					subtract(hl, hist, hr)
				}
			}
			t.grow(left, lo, mid, hl, s.gl, s.hl, depth+1)
			t.grow(left+1, mid, hi, hr, s.gr, s.hr, depth+1)
			return
		}
	}
	t.m.nodes[id] = leafNode(id)
	t.leaves = append(t.leaves, leafRows{node: id, lo: lo, hi: hi})
	t.deep = max(t.deep, depth)
}

// leafValue is the shrunken Newton step -G/(H+L2) of a node.
func (t *grower) leafValue(G, H float64) float64 {
	if H+t.p.L2 <= 0 {
		return 0
	}
	return -G / (H + t.p.L2) * t.p.LearningRate
}

// parallelHist is the least number of row-features for which buildHist
// spreads its work over goroutines; below it they cost more than they save.
const parallelHist = 1 << 16

// buildHist sums the gradient pairs of rows into hist, per feature and bin.
// Large histograms are built by several goroutines, each owning a range of
// features: every sum is still taken over the same rows in the same order,
// so the result does not depend on the number of goroutines.
func (t *grower) buildHist(hist []histBin, rows []int32) {
	if len(rows)*t.nf < parallelHist {
		t.buildHistFeatures(hist, rows, 0, t.nf)
		return
	}
	parallel(t.nf, func(lo, hi int) { t.buildHistFeatures(hist, rows, lo, hi) })
}

// buildHistFeatures builds the histograms of features lo..hi-1.
func (t *grower) buildHistFeatures(hist []histBin, rows []int32, lo, hi int) {
	nf, stride := t.nf, t.stride
	clear(hist[lo*stride : hi*stride])
	for _, r := range rows {
		gh := t.grad[r]
		bins := t.rowBins[int(r)*nf+lo : int(r)*nf+hi]
		off := lo * stride
		for _, b := range bins {
			e := &hist[off+int(b)]
			e.g += gh.g
			e.h += gh.h
			e.n++
			off += stride
		}
	}
}

// subtract sets dst = a - b slot by slot.
func subtract(dst, a, b []histBin) {
	for i := range dst {
		dst[i] = histBin{g: a[i].g - b[i].g, h: a[i].h - b[i].h, n: a[i].n - b[i].n}
	}
}

// bestSplit returns the split of highest positive gain
//
//	GL²/(HL+L2) + GR²/(HR+L2) - G²/(H+L2)
//
// whose children both hold rows and at least MinLeafWeight of hessian, and
// false if there is none. Ties keep the first found (lowest feature, then
// lowest bin, then missing right), which makes the choice deterministic.
//
// For each threshold both directions of the missing values are tried and
// the better one is learned. The threshold after the last value bin sends
// all values left and the missing ones right: a split on missingness alone.
// When the node has no missing rows the direction cannot be learned and
// missing values follow the heavier child.
func (t *grower) bestSplit(hist []histBin, G, H float64, n int32) (candidate, bool) {
	l2, minW := t.p.L2, t.p.MinLeafWeight
	parent := G * G / (H + l2)
	var best candidate
	found := false
	try := func(f, b int, missRight bool, gl, hl float64, nl int32) {
		gr, hr, nr := G-gl, H-hl, n-nl
		if nl == 0 || nr == 0 || hl < minW || hr < minW {
			return
		}
		gain := gl*gl/(hl+l2) + gr*gr/(hr+l2) - parent
		if gain > best.gain {
			best = candidate{gain: gain, feat: f, bin: b, missRight: missRight, gl: gl, hl: hl, gr: gr, hr: hr}
			found = true
		}
	}
	for f := range t.nf {
		nb := t.nbins[f]
		hf := hist[f*t.stride : f*t.stride+nb+1]
		miss := hf[0]
		var gl, hl float64
		var nl int32
		for b := 1; b <= nb; b++ {
			gl += hf[b].g
			hl += hf[b].h
			nl += hf[b].n
			if miss.n == 0 {
				try(f, b, hl < H-hl, gl, hl, nl)
				continue
			}
			try(f, b, true, gl, hl, nl)
			try(f, b, false, gl+miss.g, hl+miss.h, nl+miss.n)
		}
	}
	return best, found
}

// partition reorders rows[lo:hi] stably so that the rows going left under
// s come first, and returns the index of the first row going right.
func (t *grower) partition(lo, hi int, s candidate) int {
	rows := t.rows[lo:hi]
	col, b := t.colBins[s.feat], uint8(s.bin)
	missLeft := !s.missRight
	right := t.tmp[:0]
	l := 0
	for _, r := range rows {
		bin := col[r]
		if (bin != 0 && bin <= b) || (bin == 0 && missLeft) {
			rows[l] = r
			l++
		} else {
			right = append(right, r)
		}
	}
	copy(rows[l:], right)
	return lo + l
}
