package detectors

import (
	"fmt"
	"math"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// splitting looks for one consignment split into several declarations to
// stay under a value threshold (a de minimis, a simplified-procedure limit):
// a burst of declarations by the same importer (optionally of the same HS6)
// within window_hours, each valued just under the same threshold, which
// together exceed it. Thresholds may be configured; by default any round
// value (1, 2, 2.5, 3 or 5 times a power of ten) is a candidate, so the
// detector needs no knowledge of the tariff.

func init() {
	registerKind("splitting", 50, func() *SplittingParams {
		return &SplittingParams{WindowHours: 48, Band: 0.1, MinBurst: 2, FullBurst: 5, MinShare: 0.6, MinValue: 100}
	}, newSplitting)
}

// SplittingParams configures a splitting detector.
type SplittingParams struct {
	WindowHours float64 `yaml:"window_hours"` // how far back a burst reaches
	// Band: a value is "just under" threshold T when it lies in [T·(1−band), T).
	Band float64 `yaml:"band"`
	// MinBurst declarations just under one threshold (this one included)
	// start a finding; FullBurst give strength 1.
	MinBurst  int `yaml:"min_burst"`
	FullBurst int `yaml:"full_burst"`
	// MinShare: the declarations just under the threshold must make at least
	// this share of the importer's declarations in the window. A busy
	// importer has values just under some round number by chance (about one
	// in five with a 10 % band); a split consignment has little else.
	MinShare   float64   `yaml:"min_share"`
	Thresholds []float64 `yaml:"thresholds"` // known thresholds; empty: any round value
	SameHS6    bool      `yaml:"same_hs6"`   // count only declarations of the same first-item HS6
	MinValue   float64   `yaml:"min_value"`  // smaller declarations are ignored
}

// Validate checks the parameters.
func (p *SplittingParams) Validate(pc *config.ParamsContext) {
	if p.WindowHours <= 0 {
		pc.Problemf("window_hours", "must be > 0, got %g", p.WindowHours)
	}
	if p.Band <= 0 || p.Band >= 0.5 {
		pc.Problemf("band", "must be in (0, 0.5), got %g", p.Band)
	}
	if p.MinBurst < 2 {
		pc.Problemf("min_burst", "must be >= 2, got %d", p.MinBurst)
	}
	if p.FullBurst <= p.MinBurst-1 || p.FullBurst > splitRing {
		pc.Problemf("full_burst", "must be in [min_burst, %d], got %d", splitRing, p.FullBurst)
	}
	if p.MinShare < 0 || p.MinShare > 1 {
		pc.Problemf("min_share", "must be in [0, 1], got %g", p.MinShare)
	}
	for i, t := range p.Thresholds {
		if t <= 0 {
			pc.Problemf(fmt.Sprintf("thresholds[%d]", i), "must be > 0, got %g", t)
		}
	}
}

type splitting struct {
	base
	p     SplittingParams
	store *Store
	last  scoreRead // the importer's recent values, for Learn
}

func newSplitting(b base, p SplittingParams, env *Env) (Detector, error) {
	return &splitting{base: b, p: p, store: env.Store}, nil
}

// The importer's recent declarations: its last (time, value) pairs, at most
// splitRing of them, oldest first, those older than the window dropped when
// one is added (an importer seen once a month keeps one pair: 8 bytes). A
// busy importer's pairs cover less than the window; the share test then
// judges the declarations it holds.
const splitRing = 16

func (sp *splitting) key(kb []byte, d *declaration.Declaration) []byte {
	if sp.p.SameHS6 {
		return appendKey(kb, sp.stateKey, d.Importer.ID, d.Items[0].HS6())
	}
	return ImporterKey(kb, d.Importer.ID, sp.stateKey)
}

var roundSteps = []float64{1, 2, 2.5, 3, 5, 10}

// roundAbove is the smallest round value (1, 2, 2.5, 3 or 5 × 10^k) >= v.
func roundAbove(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, s := range roundSteps {
		if s*p >= v {
			return s * p
		}
	}
	return 10 * p
}

// threshold is the threshold v sits just under, or 0.
func (sp *splitting) threshold(v float64) float64 {
	if v < sp.p.MinValue {
		return 0
	}
	if len(sp.p.Thresholds) > 0 {
		for _, t := range sp.p.Thresholds {
			if v < t && v >= t*(1-sp.p.Band) {
				return t
			}
		}
		return 0
	}
	t := roundAbove(v)
	if v == t {
		t = roundAbove(v * 1.0000001)
	}
	if v >= t*(1-sp.p.Band) {
		return t
	}
	return 0
}

func (sp *splitting) Score(d *declaration.Declaration, out []Finding) []Finding {
	v := d.TotalValue()
	t := sp.threshold(v)
	if t == 0 {
		return out
	}
	var kb [64]byte
	var vb [8 * splitRing]byte
	raw, ok := sp.store.Get(vb[:0], sp.key(kb[:0], d))
	sp.last.keep(sp.store, d, raw, ok)
	if len(raw) == 0 || len(raw)%8 != 0 {
		return out
	}
	rec := record(raw)
	now := unixSec(d.LodgedAt)
	window := uint32(sp.p.WindowHours * 3600)
	var vals [1 + splitRing]float64
	vals[0] = v
	values := vals[:1]
	sum := v
	total := 1
	for i := 0; i < len(rec)/8; i++ {
		ts, val := rec.u32(2*i), rec.f32(2*i+1)
		if ts == 0 || now < ts || now-ts > window {
			continue
		}
		total++
		if sp.threshold(val) != t {
			continue
		}
		values = append(values, val)
		sum += val
	}
	k := len(values)
	if k < sp.p.MinBurst || sum <= t || float64(k) < sp.p.MinShare*float64(total) {
		return out
	}
	f := sp.finding(0, clamp01(float64(k-sp.p.MinBurst+1)/float64(sp.p.FullBurst-sp.p.MinBurst+1)), "")
	var rb [384]byte
	r := appendInt(rb[:0], k)
	r = appendInt(append(r, " of the "...), total)
	r = append(append(append(r, " declarations of importer "...), d.Importer.ID...), " within "...)
	r = appendF(r, sp.p.WindowHours, 0)
	r = AppendNumber(append(r, " hours are each valued just under "...), t)
	r = append(r, " ("...)
	for i, x := range values {
		if i > 0 {
			r = append(r, ", "...)
		}
		r = AppendNumber(r, x)
	}
	r = AppendNumber(append(r, "; together "...), sum)
	f.Reason = string(append(r, ')'))
	return append(out, f)
}

func (sp *splitting) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	v := d.TotalValue()
	now := unixSec(d.LodgedAt)
	var kb [64]byte
	var vb, nb [8 * (splitRing + 1)]byte
	key := sp.key(kb[:0], d)
	// A read and a write, where Store.Update would take a lock and call a
	// closure (which would move the buffers to the heap): the record is the
	// importer\'s, and one importer\'s declarations are assessed by one
	// goroutine at a time, so no other writer can come in between.
	old, _, known := sp.last.take(sp.store, d)
	if !known {
		old, _ = sp.store.Get(vb[:0], key)
	}
	if len(old)%8 != 0 || len(old) > 8*splitRing {
		old = nil // malformed: start afresh
	}
	window := uint32(sp.p.WindowHours * 3600)
	rec := record(nb[:0])
	for i := 0; i < len(old)/8; i++ {
		if ts := record(old).u32(2 * i); ts > now || now-ts <= window {
			rec = append(rec, old[8*i:8*i+8]...)
		}
	}
	rec = append(rec, make([]byte, 8)...)
	n := len(rec) / 8
	rec.setU32(2*(n-1), max(now, 1))
	rec.setF32(2*(n-1)+1, v)
	if n > splitRing {
		rec = rec[8:]
	}
	sp.store.Set(key, rec)
}
