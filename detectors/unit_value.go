package detectors

import (
	"math"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// unit_value learns, from the stream itself, the distribution of ln(value per
// kg) and ln(value per supplementary unit) for each peer group (currency × HS6
// × origin, backing off to HS6 and then HS4 when a group has fewer than
// min_peers observations), and flags items whose unit value lies far below
// (undervaluation) or far above (misclassification, over-invoicing) the
// group's median, measured in robust standard deviations (1.4826 × MAD).

func init() {
	registerKind("unit_value", 60, func() *UnitValueParams {
		return &UnitValueParams{MinPeers: 30, LowZ: 1.5, HighZ: 2.5, RampZ: 3, HighFactor: 0.6,
			MinSpread: 0.15, MinValue: 1, PerUnit: true, DutyFreeFactor: 0.25,
			ImporterMin: 5, ImporterZ: 0.5, ImporterRamp: 1.5}
	}, newUnitValue)
}

// UnitValueParams configures a unit_value detector.
type UnitValueParams struct {
	// MinPeers: a peer group with fewer (decayed) observations is not used;
	// the detector backs off to the next, coarser group.
	MinPeers int `yaml:"min_peers"`
	// LowZ: robust deviations below the median at which the detector starts
	// to fire (strength 0 there, rising to 1 at LowZ+RampZ).
	LowZ float64 `yaml:"low_z"`
	// HighZ: the same, above the median.
	HighZ float64 `yaml:"high_z"`
	// RampZ: how many further deviations take the strength from 0 to 1.
	RampZ float64 `yaml:"ramp_z"`
	// HighFactor scales the strength of findings above the median: an
	// over-valued item is less often a revenue risk than an under-valued one.
	HighFactor float64 `yaml:"high_factor"`
	// MinSpread floors the robust standard deviation of ln(unit value), so that
	// a group of near-identical prices does not flag every small change.
	MinSpread float64 `yaml:"min_spread"`
	// MinValue: items with a lower customs value are not scored or learned.
	MinValue float64 `yaml:"min_value"`
	// PerUnit also compares value per supplementary unit when the item has a
	// quantity and a unit.
	PerUnit bool `yaml:"per_unit"`
	// DutyFreeFactor scales the strength of a below-peers finding on an item
	// that declares no duties (duty-free goods, a tariff preference, below
	// the de minimis): undervaluing it puts less revenue at risk.
	DutyFreeFactor float64 `yaml:"duty_free_factor"`
	// The importer's own record: the running mean (over about its last 20
	// items) of its per-kg deviations from the market. An importer whose
	// prices sit systematically below the market (mean at or below
	// -importer_z after importer_min items) adds, to each of its below-median
	// items, a strength rising to 1 at -(importer_z + importer_ramp),
	// combined with the item's own by noisy-OR. ImporterMin 0 turns it off.
	ImporterMin  int     `yaml:"importer_min"`
	ImporterZ    float64 `yaml:"importer_z"`
	ImporterRamp float64 `yaml:"importer_ramp"`
}

// Validate checks the parameters.
func (p *UnitValueParams) Validate(pc *config.ParamsContext) {
	if p.MinPeers < 3 {
		pc.Problemf("min_peers", "must be >= 3, got %d", p.MinPeers)
	}
	if p.LowZ <= 0 {
		pc.Problemf("low_z", "must be > 0, got %g", p.LowZ)
	}
	if p.HighZ <= 0 {
		pc.Problemf("high_z", "must be > 0, got %g", p.HighZ)
	}
	if p.RampZ <= 0 {
		pc.Problemf("ramp_z", "must be > 0, got %g", p.RampZ)
	}
	if p.HighFactor < 0 || p.HighFactor > 1 {
		pc.Problemf("high_factor", "must be in [0, 1], got %g", p.HighFactor)
	}
	if p.MinSpread <= 0 {
		pc.Problemf("min_spread", "must be > 0, got %g", p.MinSpread)
	}
	if p.DutyFreeFactor < 0 || p.DutyFreeFactor > 1 {
		pc.Problemf("duty_free_factor", "must be in [0, 1], got %g", p.DutyFreeFactor)
	}
	if p.ImporterMin < 0 || p.ImporterZ < 0 || p.ImporterRamp <= 0 {
		pc.Problemf("importer_min", "importer_min and importer_z must be >= 0, importer_ramp > 0")
	}
	if p.MinValue < 0 {
		pc.Problemf("min_value", "must be >= 0, got %g", p.MinValue)
	}
}

type unitValue struct {
	base
	p     UnitValueParams
	peers *peers
	store *Store
	last  uvLast
}

// uvLast is what Score read for the declaration in hand, which Measure and
// Learn, called after it for the same declaration from the same goroutine
// (a detector is used by one goroutine at a time), take instead of reading
// it again: the importer's running mean, which nothing changes before this
// detector's Learn, and the reference groups of the items' measures, which
// a group's Learn reads again only where an earlier item of the declaration
// changed it (seenGroups). As with scoreRead, it is taken only while the
// store has evicted nothing and the shared table dropped nothing since
// Score read it (at its cap, an earlier item's update can drop a group a
// later item reads). Learn forgets it.
type uvLast struct {
	d              *declaration.Declaration
	memo           uvMemo
	impMean        float64
	impN           int
	evicted, drops uint64
}

// lastValid reports whether what Score read for d still stands.
func (u *unitValue) lastValid(d *declaration.Declaration) bool {
	l := &u.last
	return l.d == d && d != nil && u.store.evictions() == l.evicted && u.peers.table.Dropped() == l.drops
}

// known returns what Score read for d's measure m of it, if it did and it
// still stands.
func (u *unitValue) known(d *declaration.Declaration, it *declaration.Item, m *measure) (groupStat, bool) {
	if !u.lastValid(d) {
		return groupStat{}, false
	}
	return u.last.memo.find(m.unit, it.HS6(), it.Origin)
}

func newUnitValue(b base, p UnitValueParams, env *Env) (Detector, error) {
	return &unitValue{base: b, p: p, peers: newPeers(env.shared(), p.MinPeers, p.MinSpread), store: env.Store}, nil
}

// measure is one way of expressing an item's unit value.
type measure struct {
	unit string // "kg" or the supplementary unit
	lx   float64
}

func (u *unitValue) measures(it *declaration.Item, out *[2]measure) []measure {
	if it.CustomsValue < u.p.MinValue || it.CustomsValue <= 0 {
		return nil
	}
	ms := append(out[:0], measure{unit: "kg", lx: math.Log(it.CustomsValue / it.GrossMassKg)})
	if u.p.PerUnit && it.Quantity > 0 && it.QuantityUnit != "" && it.QuantityUnit != "KGM" {
		ms = append(ms, measure{unit: it.QuantityUnit, lx: math.Log(it.CustomsValue / it.Quantity)})
	}
	return ms
}

// groups builds the peer-group keys of a measure into g: level 0 is
// currency × HS6 × origin, 1 is currency × HS6, 2 is currency × HS4.
func (u *unitValue) groups(b []byte, d *declaration.Declaration, it *declaration.Item, m *measure) groups {
	b = appendKey(b, u.stateKey, d.Currency, m.unit, "")
	p := len(b)
	b = appendKey(b, it.HS6(), it.Origin)
	return groups{key: b, ends: [3]int{len(b), p + len(it.HS6()), p + len(it.HS4())}, levels: 3}
}

// appendGroupName appends the name of an item's peer group at level.
func appendGroupName(b []byte, it *declaration.Item, level int) []byte {
	switch level {
	case 0:
		return append(append(append(append(b, "HS "...), it.HS6()...), " from "...), it.Origin...)
	case 1:
		return append(append(append(b, "HS "...), it.HS6()...), " (all origins)"...)
	}
	return append(append(append(b, "HS "...), it.HS4()...), " (all subheadings)"...)
}

// importerKey is where the importer's running mean deviation is kept.
func (u *unitValue) importerKey(b []byte, d *declaration.Declaration) []byte {
	return ImporterKey(b, d.Importer.ID, u.stateKey, "i")
}

func (u *unitValue) importerMean(d *declaration.Declaration) (mean float64, n int) {
	if u.p.ImporterMin == 0 {
		return 0, 0
	}
	var kb [64]byte
	var vb [16]byte
	v, ok := u.store.Get(vb[:0], u.importerKey(kb[:0], d))
	if !ok || len(v) != 8 {
		return 0, 0
	}
	r := record(v)
	return r.f32(0), int(r.u32(1))
}

// uvMemo remembers the reference groups Score read for the measures of a
// declaration's items: an item whose finest group an earlier item read
// reads the same (Score changes no state but the groups' cached statistics,
// and a second read finds them fresh and returns what the first did).
type uvMemo struct {
	n    int
	keys [8]struct {
		unit, hs6, origin string
		st                groupStat
	}
}

func (m *uvMemo) find(unit, hs6, origin string) (groupStat, bool) {
	for i := 0; i < m.n; i++ {
		if k := &m.keys[i]; k.unit == unit && k.hs6 == hs6 && k.origin == origin {
			return k.st, true
		}
	}
	return groupStat{}, false
}

func (u *unitValue) reference(memo *uvMemo, kb []byte, d *declaration.Declaration, it *declaration.Item, m *measure) groupStat {
	hs6 := it.HS6()
	if st, ok := memo.find(m.unit, hs6, it.Origin); ok {
		return st
	}
	g := u.groups(kb, d, it, m)
	st := u.peers.reference(&g)
	if memo.n < len(memo.keys) {
		k := &memo.keys[memo.n]
		k.unit, k.hs6, k.origin, k.st = m.unit, hs6, it.Origin, st
		memo.n++
	}
	return st
}

func (u *unitValue) Score(d *declaration.Declaration, out []Finding) []Finding {
	var buf [2]measure
	impMean, impN := u.importerMean(d)
	impStrength := 0.0
	if u.p.ImporterMin > 0 && impN >= u.p.ImporterMin {
		impStrength = ramp(-impMean, u.p.ImporterZ, u.p.ImporterRamp)
	}
	u.last.d, u.last.impMean, u.last.impN, u.last.memo.n = d, impMean, impN, 0 // (the memo's keys are many bytes to clear)
	u.last.evicted, u.last.drops = u.store.evictions(), u.peers.table.Dropped()
	memo := &u.last.memo
	var kb [128]byte
	var rb [384]byte
	for i := range d.Items {
		it := &d.Items[i]
		best := 0.0
		var bm measure
		var bps peerStat
		below := false
		for _, m := range u.measures(it, &buf) {
			st := u.reference(memo, kb[:0], d, it, &m)
			if !st.ok {
				continue
			}
			ps := st.of(m.lx)
			var strength float64
			if ps.z < 0 {
				below = true
				strength = ramp(-ps.z, u.p.LowZ, u.p.RampZ)
				if it.HasDuties && it.Duties == 0 {
					strength *= u.p.DutyFreeFactor
				}
			} else {
				strength = u.p.HighFactor * ramp(ps.z, u.p.HighZ, u.p.RampZ)
			}
			if strength > best {
				best, bm, bps = strength, m, ps
			}
		}
		var f Finding
		r := rb[:0]
		if best > 0 {
			dir := "below"
			if bps.z >= 0 {
				dir = "above"
			}
			f = u.finding(it.Line, best, "")
			r = AppendNumber(append(r, "unit value "...), math.Exp(bm.lx))
			r = append(append(append(append(append(r, ' '), d.Currency...), '/'), bm.unit...), " is "...)
			r = appendF(r, math.Abs(bps.z), 1)
			r = append(append(append(r, " robust deviations "...), dir...), " the "...)
			r = AppendNumber(r, math.Exp(bps.median))
			r = append(append(append(append(append(r, ' '), d.Currency...), '/'), bm.unit...), " median for "...)
			r = appendGroupName(r, it, bps.level)
			r = append(appendInt(append(r, " ("...), bps.n), " peers)"...)
		}
		if below && impStrength > 0 && !(it.HasDuties && it.Duties == 0) {
			if f.Score == 0 {
				f = u.finding(it.Line, 0, "")
				r = append(r[:0], "unit value below the market"...)
			}
			f.Score = 1 - (1-f.Score)*(1-impStrength)
			r = appendF(append(r, "; this importer's prices have averaged "...), -impMean, 1)
			r = appendInt(append(r, " robust deviations below the market over its last "...), min(impN, 20))
			r = append(r, " items"...)
		}
		if f.Score > 0 {
			f.Reason = string(r)
			out = append(out, f)
		}
	}
	return out
}

// Measures are the main item's per-kg price deviation from its peers, the
// size of the peer group it was measured against, and the importer's running
// mean deviation.
func (u *unitValue) Measures() []Measure {
	return []Measure{
		{"price_z", "main item's unit value, in robust deviations from its peers:"},
		{"price_peers", "log(1 + peers) of the main item's unit value:"},
		{"importer_price_z", "importer's mean unit-value deviation from the market:"},
	}
}

func (u *unitValue) Measure(d *declaration.Declaration, out []float64) {
	out[0], out[1], out[2] = math.NaN(), 0, math.NaN()
	it := d.MainItem()
	var buf [2]measure
	if ms := u.measures(it, &buf); len(ms) > 0 {
		st, ok := u.known(d, it, &ms[0])
		if !ok {
			var kb [128]byte
			g := u.groups(kb[:0], d, it, &ms[0])
			st = u.peers.reference(&g)
		}
		if st.ok {
			out[0], out[1] = st.of(ms[0].lx).z, math.Log1p(float64(st.n))
		}
	}
	mean, n := u.last.impMean, u.last.impN
	if !u.lastValid(d) {
		mean, n = u.importerMean(d)
	}
	if n > 0 {
		out[2] = mean
	}
}

// Learn adds every item's measures to their peer groups and folds the per-kg
// deviations, as they stood before, into the importer's running mean.
func (u *unitValue) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	var buf [2]measure
	var zs [8]float64
	nz := 0
	var kb [128]byte
	var seen seenGroups
	for i := range d.Items {
		it := &d.Items[i]
		for j, m := range u.measures(it, &buf) {
			g := u.groups(kb[:0], d, it, &m)
			changed := seen.seen(g.coarsest())
			// The per-kg deviation counts for the importer: it is read (as
			// Score read it, unless an earlier item changed the group). A
			// per-unit group is read only to refresh what an earlier item
			// changed, as its update did before it.
			if perKg := j == 0 && nz < len(zs); perKg || changed {
				st, known := u.known(d, it, &m)
				if changed || !known {
					st = u.peers.reference(&g)
				}
				if st.ok && perKg {
					zs[nz] = max(-6, min(6, st.of(m.lx).z))
					nz++
				}
			}
			u.peers.add(&g, m.lx)
		}
	}
	if u.p.ImporterMin > 0 && nz > 0 {
		u.learnImporter(d, zs[:nz])
	}
	u.last.d = nil
}

// learnImporter folds the declaration's per-kg deviations into the
// importer's running mean (over about its last 20 items).
func (u *unitValue) learnImporter(d *declaration.Declaration, zs []float64) {
	var kb [64]byte
	var vb [8]byte
	key := u.importerKey(kb[:0], d)
	// A read and a write, where Store.Update would take a lock and call a
	// closure (which would move the buffers to the heap): the record is the
	// importer\'s, and one importer\'s declarations are assessed by one
	// goroutine at a time, so no other writer can come in between.
	var mean float64
	var cnt int
	if u.lastValid(d) { // Score read it (importerMean)
		mean, cnt = u.last.impMean, u.last.impN
	} else {
		old, _ := u.store.Get(vb[:0], key)
		r := fixed(old, vb[:], 8)
		mean, cnt = r.f32(0), int(r.u32(1))
	}
	r := record(vb[:8])
	for _, z := range zs {
		cnt++
		mean += (z - mean) / float64(min(cnt, 20))
	}
	r.setF32(0, mean)
	r.setU32(1, uint32(cnt))
	u.store.Set(key, r)
}

func clamp01(x float64) float64 { return min(max(x, 0), 1) }
