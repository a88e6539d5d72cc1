package engine

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// rateKeeper turns inspection-rate targets (scoring.rates) into thresholds:
// quantiles of the recent scores, so that about rates.red of all
// declarations go red by score or profile and rates.yellow yellow, whatever
// the score scale does (a reload that changes weights, the learned model
// taking over). A threshold is a cut inside one histogram bin: scores above
// the bin pass, scores below do not, and within the bin a share of the
// declarations passes, chosen by a hash of the declaration id; so a block of
// declarations with the same score (common before the model is trained:
// one finding of one detector gives one score) is split to hold the target
// instead of going all one way. It counts the scores of the declarations no profile forced
// in a histogram of 0.025-point bins, and the forced ones by channel; the
// counts decay, halving every window/2 declarations, so they weigh about
// the last window. The thresholds are recomputed every 32 declarations from
// the counts of the declarations before: a declaration's own score never
// moves the threshold it is judged by, and a replay, which assesses in
// input order, gets the same thresholds on every run.
//
// The score scale changes in steps: when a newly trained model takes over,
// and at a reload. Then the counts so far are discounted to 1/16, so that
// the new scale's scores decide the thresholds within a few hundred
// declarations instead of a window. The keeper lives on the Engine, not the
// ruleset, so a reload keeps what it has counted.
type rateKeeper struct {
	mu          sync.Mutex
	rates       *config.Rates // nil: fixed thresholds
	bins        [rateBins]float64
	occupied    [(rateBins + 63) / 64]uint64 // bit i%64 of word i/64: bins[i] was counted in (the others are 0)
	forced      [3]float64                   // by channel a profile forced
	strata      [3]float64                   // by channel given before random selection
	total       float64
	seen        uint64
	sinceDecay  int
	sinceUpdate int
	ready       bool // thresholds computed from enough declarations
	scale       any  // what set the score scale at the last observation (the model)

	cuts atomic.Pointer[cuts] // current thresholds, when ready
	on   atomic.Bool          // ready and targets set
}

// cut is a threshold: scores of edge+rateBinWidth and above pass, scores
// in [edge, edge+rateBinWidth) pass when the declaration's hash share is
// below frac. A fixed threshold T is the cut {T, 1}.
type cut struct{ edge, frac float64 }

type cuts struct{ yellow, red cut }

func (c cut) passes(score, u float64) bool {
	return score >= c.edge+rateBinWidth || (score >= c.edge && u < c.frac)
}

// value is the cut as one score, for metrics: where the bin is split.
func (c cut) value() float64 { return c.edge + (1-c.frac)*rateBinWidth }

const (
	rateBins     = 4000
	rateBinWidth = 100.0 / rateBins
	rateEvery    = 32
)

func (k *rateKeeper) configure(r *config.Rates) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rates = r
	k.discount()
	k.update()
}

// discount keeps 1/16 of the counts, after a change of the score scale.
func (k *rateKeeper) discount() { k.decay(1.0 / 16) }

// thresholds returns the yellow and red cuts to apply: the targets' when
// they are set and enough declarations were seen, else the fixed
// thresholds. A target of 0 sends no declaration to that channel by score.
func (k *rateKeeper) thresholds(s *config.Scoring) cuts {
	if k.on.Load() {
		return *k.cuts.Load()
	}
	return cuts{yellow: cut{s.Yellow, 1}, red: cut{s.Red, 1}}
}

// observe counts a declaration's score, the channel a profile forced (if
// any) and the channel it got before random selection.
// scale identifies what set the score scale (the current model): when it
// changes, the counts so far are discounted.
func (k *rateKeeper) observe(score float64, forced declaration.Channel, hasForce bool, stratum declaration.Channel, scale any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if scale != k.scale {
		k.scale = scale
		k.discount()
	}
	if hasForce {
		k.forced[forced]++
	} else {
		b := min(max(int(score/rateBinWidth), 0), rateBins-1)
		k.bins[b]++
		k.occupied[b/64] |= 1 << (b % 64)
	}
	k.strata[stratum]++
	k.total++
	k.seen++
	if k.rates != nil {
		if k.sinceDecay++; k.sinceDecay >= k.rates.Window/8 {
			k.decay(decayStep)
		}
		if k.sinceUpdate++; k.sinceUpdate >= rateEvery || !k.ready {
			k.update()
		}
	}
}

// decayStep, applied every window/8 declarations, halves the counts every
// window/2: a declaration weighs half as much window/2 declarations later.
var decayStep = math.Pow(0.5, 0.25)

func (k *rateKeeper) decay(f float64) {
	for i := range k.bins {
		k.bins[i] *= f
	}
	for i := range k.forced {
		k.forced[i] *= f
		k.strata[i] *= f
	}
	k.total *= f
	k.sinceDecay = 0
}

// update recomputes the thresholds. Under k.mu.
func (k *rateKeeper) update() {
	k.sinceUpdate = 0
	r := k.rates
	if r == nil || k.seen < uint64(r.MinDeclarations) || k.total == 0 {
		k.ready = false
		k.on.Store(false)
		return
	}
	red := k.quantile(r.Red*k.total - k.forced[declaration.Red])
	yellow := k.quantile((r.Red+r.Yellow)*k.total - k.forced[declaration.Red] - k.forced[declaration.Yellow])
	// Every red passes the yellow cut too (both use one hash share).
	switch {
	case yellow.edge > red.edge:
		yellow = red
	case yellow.edge == red.edge:
		yellow.frac = max(yellow.frac, red.frac)
	}
	k.cuts.Store(&cuts{yellow: yellow, red: red})
	k.ready = true
	k.on.Store(true)
}

// quantile is the cut that about n of the unforced declarations counted
// pass: the bin where the count from the top reaches n, and the share of
// that bin still needed. Bins never counted in are 0 and change neither the
// count nor the cut: the scan skips them 64 at a time.
func (k *rateKeeper) quantile(n float64) cut {
	n = max(n, 0)
	above := 0.0
	for w := len(k.occupied) - 1; w >= 0; w-- {
		if k.occupied[w] == 0 {
			continue
		}
		for i := min(64*w+63, rateBins-1); i >= 64*w; i-- {
			if b := k.bins[i]; b > 0 && above+b > n {
				return cut{edge: float64(i) * rateBinWidth, frac: (n - above) / b}
			}
			above += k.bins[i]
		}
	}
	return cut{0, 1}
}

// hashShare is a declaration's position in [0, 1) for splitting a bin: a
// hash of its id, independent of the random compliance selection's.
func hashShare(id string) float64 {
	return float64(xxhash.Sum64String("rates\x00"+id)>>11) / (1 << 53)
}

// RateState is what the engine reports about its channel thresholds.
type RateState struct {
	Yellow, Red float64    // thresholds in use
	Targets     bool       // set by inspection-rate targets (else fixed)
	TargetRed   float64    // the targets, when Targets
	TargetYel   float64    //
	Shares      [3]float64 // recent share of each channel before random selection (green, yellow, red)
}

// Rates reports the channel thresholds in use, the targets and the recent
// channel shares (random compliance picks counted by the channel their score
// or profile gave them).
func (e *Engine) Rates() RateState {
	rs := e.rs.Load()
	k := &e.rates
	var st RateState
	c := k.thresholds(&rs.cfg.Scoring)
	st.Yellow, st.Red = c.yellow.value(), c.red.value()
	k.mu.Lock()
	defer k.mu.Unlock()
	if r := k.rates; r != nil {
		st.Targets, st.TargetRed, st.TargetYel = true, r.Red, r.Yellow
	}
	if k.total > 0 {
		for i := range st.Shares {
			st.Shares[i] = k.strata[i] / k.total
		}
	}
	return st
}

// rateState is the rate keeper's part of a checkpoint.
type rateState struct {
	Bins       []float64 `json:"bins"`
	Forced     []float64 `json:"forced"`
	Strata     []float64 `json:"strata"`
	Total      float64   `json:"total"`
	Seen       uint64    `json:"seen"`
	SinceDecay int       `json:"since_decay"`
}

func (k *rateKeeper) save() *rateState {
	k.mu.Lock()
	defer k.mu.Unlock()
	return &rateState{Bins: append([]float64(nil), k.bins[:]...), Forced: append([]float64(nil), k.forced[:]...),
		Strata: append([]float64(nil), k.strata[:]...), Total: k.total, Seen: k.seen, SinceDecay: k.sinceDecay}
}

func (k *rateKeeper) restore(st *rateState) {
	if st == nil || len(st.Bins) != rateBins || len(st.Forced) != 3 || len(st.Strata) != 3 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	copy(k.bins[:], st.Bins)
	for i, b := range k.bins {
		if b != 0 {
			k.occupied[i/64] |= 1 << (i % 64)
		}
	}
	copy(k.forced[:], st.Forced)
	copy(k.strata[:], st.Strata)
	k.total, k.seen, k.sinceDecay = st.Total, st.Seen, st.SinceDecay
	k.update()
}
