package detectors

import (
	"encoding/binary"
	"math"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// benford tests, per importer, whether the first digits of its declared item
// values follow Benford's law, as invoices that reflect real prices and
// quantities do. Invented or adjusted values (values kept just under a
// threshold, round figures, made-up invoices) drift away from it. Two tests
// must both hold, each covering the other's blind spot:
//   - significance: Pearson's chi-square with 8 degrees of freedom, whose
//     threshold accounts for the sample size (a fixed deviation band, such as
//     Nigrini's MAD bands, flags honest importers with few declarations);
//   - size of the departure: the mean absolute deviation of the digit shares
//     (Nigrini's MAD) above mad_min, because with thousands of values a
//     chi-square finds honest price lists (which are only roughly Benford)
//     significant.
// Strength is the product of a ramp on -log10(p) from p_start over p_ramp
// and a ramp on MAD from mad_min to mad_full.

func init() {
	registerKind("benford", 20, func() *BenfordParams {
		return &BenfordParams{MinValues: 30, PStart: 3, PRamp: 4, MADMin: 0.015, MADFull: 0.04, MinValue: 10, MaxValues: 2000}
	}, newBenford)
}

// BenfordParams configures a benford detector.
type BenfordParams struct {
	MinValues int     `yaml:"min_values"` // values in the sample before the test is made
	PStart    float64 `yaml:"p_start"`    // -log10(p) where strength starts
	PRamp     float64 `yaml:"p_ramp"`     // further -log10(p) to strength 1
	MADMin    float64 `yaml:"mad_min"`    // mean absolute deviation of digit shares where strength starts (Nigrini: 0.015 is nonconformity)
	MADFull   float64 `yaml:"mad_full"`   // ... and where it is full
	MinValue  float64 `yaml:"min_value"`  // smaller values are left out (their first digit means little)
	// MaxValues: beyond this sample size all counts are halved, so the test
	// follows the importer's recent invoices.
	MaxValues int `yaml:"max_values"`
}

// Validate checks the parameters.
func (p *BenfordParams) Validate(pc *config.ParamsContext) {
	if p.MinValues < 10 {
		pc.Problemf("min_values", "must be >= 10, got %d", p.MinValues)
	}
	if p.PStart <= 0 || p.PRamp <= 0 {
		pc.Problemf("p_start", "p_start and p_ramp must be > 0")
	}
	if p.MADMin <= 0 || p.MADFull <= p.MADMin {
		pc.Problemf("mad_full", "need 0 < mad_min < mad_full, got %g and %g", p.MADMin, p.MADFull)
	}
	if p.MaxValues < 2*p.MinValues {
		pc.Problemf("max_values", "must be at least twice min_values, got %d", p.MaxValues)
	}
}

type benford struct {
	base
	p     BenfordParams
	store *Store
	last  scoreRead // the importer's digit counts, for Learn
}

func newBenford(b base, p BenfordParams, env *Env) (Detector, error) {
	return &benford{base: b, p: p, store: env.Store}, nil
}

// benfordP[d-1] is the probability of first digit d.
var benfordP = func() (p [9]float64) {
	for d := 1; d <= 9; d++ {
		p[d-1] = math.Log10(1 + 1/float64(d))
	}
	return p
}()

func firstDigit(v float64) int {
	for v >= 10 {
		v /= 10
	}
	for v < 1 {
		v *= 10
	}
	return int(v)
}

func (b *benford) key(kb []byte, d *declaration.Declaration) []byte {
	return ImporterKey(kb, d.Importer.ID, b.stateKey)
}

// chi2Tail8 is P(X > x) for a chi-square variable with 8 degrees of freedom.
func chi2Tail8(x float64) float64 {
	h := x / 2
	term, sum := 1.0, 1.0
	for k := 1; k < 4; k++ {
		term *= h / float64(k)
		sum += term
	}
	return math.Exp(-h) * sum
}

// The importer's record is its nine digit counts, as unsigned varints (an
// importer with a few values: 9 bytes).
func decodeDigits(v []byte) (c [9]uint32, ok bool) {
	for i := range c {
		x, n := binary.Uvarint(v)
		if n <= 0 || x > math.MaxUint32 {
			return c, false
		}
		c[i], v = uint32(x), v[n:]
	}
	return c, len(v) == 0
}

func (b *benford) Score(d *declaration.Declaration, out []Finding) []Finding {
	var kb [64]byte
	var vb [9 * binary.MaxVarintLen32]byte
	v, ok := b.store.Get(vb[:0], b.key(kb[:0], d))
	b.last.keep(b.store, d, v, ok)
	if !ok {
		return out
	}
	digits, ok := decodeDigits(v)
	if !ok {
		return out
	}
	var counts [9]float64
	var n float64
	for i := range counts {
		counts[i] = float64(digits[i])
		n += counts[i]
	}
	if n < float64(b.p.MinValues) {
		return out
	}
	var chi2, mad float64
	worst, worstDev := 0, 0.0
	for i, c := range counts {
		e := n * benfordP[i]
		chi2 += (c - e) * (c - e) / e
		dev := math.Abs(c/n - benfordP[i])
		mad += dev / 9
		if dev > worstDev {
			worst, worstDev = i, dev
		}
	}
	p := chi2Tail8(chi2)
	logp := -math.Log10(math.Max(p, 1e-300))
	s := ramp(logp, b.p.PStart, b.p.PRamp) * clamp01((mad-b.p.MADMin)/(b.p.MADFull-b.p.MADMin))
	if s == 0 {
		return out
	}
	f := b.finding(0, s, "")
	var rb [320]byte
	msg := append(append(rb[:0], "first digits of importer "...), d.Importer.ID...)
	msg = appendF(append(msg, "'s last "...), n, 0)
	msg = appendF(append(msg, " declared values depart from Benford's law (chi-square "...), chi2, 1)
	msg = appendE1(append(msg, ", p = "...), p)
	msg = appendF(append(msg, ", MAD "...), mad, 3)
	msg = appendInt(append(msg, "): "...), worst+1)
	msg = appendF(append(msg, " makes "...), 100*counts[worst]/n, 0)
	msg = appendF(append(msg, "% of them, against "...), 100*benfordP[worst], 1)
	f.Reason = string(append(msg, "% expected"...))
	return append(out, f)
}

func (b *benford) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	var kb [64]byte
	var vb [9 * binary.MaxVarintLen32]byte
	key := b.key(kb[:0], d)
	// A read and a write, where Store.Update would take a lock and call a
	// closure (which would move the buffers to the heap): the record is the
	// importer\'s, and one importer\'s declarations are assessed by one
	// goroutine at a time, so no other writer can come in between.
	old, _, known := b.last.take(b.store, d)
	if !known {
		old, _ = b.store.Get(vb[:0], key)
	}
	r, ok := decodeDigits(old)
	if !ok {
		r = [9]uint32{} // a missing or malformed record starts afresh
	}
	for i := range d.Items {
		v := d.Items[i].CustomsValue
		if v < b.p.MinValue {
			continue
		}
		r[firstDigit(v)-1]++
	}
	var n uint32
	for _, c := range r {
		n += c
	}
	if int(n) > b.p.MaxValues {
		for i := range r {
			r[i] /= 2
		}
	}
	nv := vb[:0]
	for _, c := range r {
		nv = binary.AppendUvarint(nv, uint64(c))
	}
	b.store.Set(key, nv)
}
