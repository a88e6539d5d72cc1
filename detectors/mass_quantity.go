package detectors

import (
	"math"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// mass_quantity checks an item's masses and quantity against physics and
// against its peers: net mass above gross mass; gross mass per supplementary
// unit far above what the same HS code usually weighs per unit (the quantity
// is understated, which on goods with specific duties, per litre or per
// thousand cigarettes, cuts the duty); and a gross-to-net ratio far from the
// usual packaging share. Peers are learned online per HS6 × unit (backing off
// to HS4 × unit), and per HS6 (HS4) for the ratio.

func init() {
	registerKind("mass_quantity", 50, func() *MassQuantityParams {
		return &MassQuantityParams{MinPeers: 30, HighZ: 2.5, LowZ: 4, RampZ: 3, LowFactor: 0,
			MinSpread: 0.1, NetTolerance: 0.02, NetAboveGross: 0.7, RatioZ: 4, RatioFactor: 0.3}
	}, newMassQuantity)
}

// MassQuantityParams configures a mass_quantity detector.
type MassQuantityParams struct {
	MinPeers int `yaml:"min_peers"` // observations a peer group needs
	// HighZ: robust deviations of ln(gross kg per unit) above the peer median
	// at which findings start (quantity understated).
	HighZ float64 `yaml:"high_z"`
	// LowZ: the same below the median (quantity overstated), scaled by
	// LowFactor: seldom a revenue risk, so off (0) by default.
	LowZ      float64 `yaml:"low_z"`
	LowFactor float64 `yaml:"low_factor"`
	RampZ     float64 `yaml:"ramp_z"`     // further deviations from strength 0 to 1
	MinSpread float64 `yaml:"min_spread"` // floor of the robust standard deviation (log units)
	// NetTolerance: net mass may exceed gross mass by this share (rounding)
	// before it is flagged; NetAboveGross is that finding's strength.
	NetTolerance  float64 `yaml:"net_tolerance"`
	NetAboveGross float64 `yaml:"net_above_gross"`
	// RatioZ: robust deviations of ln(gross/net) from the HS6 peers, either
	// way, at which findings start, scaled by RatioFactor.
	RatioZ      float64 `yaml:"ratio_z"`
	RatioFactor float64 `yaml:"ratio_factor"`
}

// Validate checks the parameters.
func (p *MassQuantityParams) Validate(pc *config.ParamsContext) {
	if p.MinPeers < 3 {
		pc.Problemf("min_peers", "must be >= 3, got %d", p.MinPeers)
	}
	for k, v := range map[string]float64{"high_z": p.HighZ, "low_z": p.LowZ, "ramp_z": p.RampZ, "min_spread": p.MinSpread, "ratio_z": p.RatioZ} {
		if v <= 0 {
			pc.Problemf(k, "must be > 0, got %g", v)
		}
	}
	for k, v := range map[string]float64{"low_factor": p.LowFactor, "net_above_gross": p.NetAboveGross, "ratio_factor": p.RatioFactor} {
		if v < 0 || v > 1 {
			pc.Problemf(k, "must be in [0, 1], got %g", v)
		}
	}
	if p.NetTolerance < 0 {
		pc.Problemf("net_tolerance", "must be >= 0, got %g", p.NetTolerance)
	}
}

type massQuantity struct {
	base
	p     MassQuantityParams
	peers *peers
}

func newMassQuantity(b base, p MassQuantityParams, env *Env) (Detector, error) {
	return &massQuantity{base: b, p: p, peers: newPeers(env.shared(), p.MinPeers, p.MinSpread)}, nil
}

func perUnit(it *declaration.Item) bool {
	return it.Quantity > 0 && it.QuantityUnit != "" && it.QuantityUnit != "KGM"
}

// unitGroups builds the keys of an item's groups of gross kg per unit:
// unit × HS6, then unit × HS4.
func (m *massQuantity) unitGroups(b []byte, it *declaration.Item) groups {
	b = appendKey(b, m.stateKey, "u", it.QuantityUnit, it.HS6())
	return groups{key: b, ends: [3]int{len(b), len(b) - 2}, levels: 2}
}

// ratioGroups builds the keys of an item's groups of gross/net ratio: HS6,
// then HS4.
func (m *massQuantity) ratioGroups(b []byte, it *declaration.Item) groups {
	b = appendKey(b, m.stateKey, "r", it.HS6())
	return groups{key: b, ends: [3]int{len(b), len(b) - 2}, levels: 2}
}

// appendHSLevel appends the name of an item's group at level.
func appendHSLevel(b []byte, it *declaration.Item, level int) []byte {
	if level == 0 {
		return append(append(b, "HS "...), it.HS6()...)
	}
	return append(append(append(b, "HS "...), it.HS4()...), " (all subheadings)"...)
}

func (m *massQuantity) Score(d *declaration.Declaration, out []Finding) []Finding {
	var kb [128]byte
	var rb [320]byte
	for i := range d.Items {
		it := &d.Items[i]
		// The strongest of the three checks; its reason is written once
		// it is known.
		best, why := 0.0, 0
		var unitLx, ratioLx float64
		var unitPS, ratioPS peerStat
		if it.HasNetMass && it.NetMassKg > it.GrossMassKg*(1+m.p.NetTolerance) && m.p.NetAboveGross > best {
			best, why = m.p.NetAboveGross, 1
		}
		if perUnit(it) {
			lx := math.Log(it.GrossMassKg / it.Quantity)
			g := m.unitGroups(kb[:0], it)
			if ps, ok := m.peers.deviation(&g, lx); ok {
				s := ramp(ps.z, m.p.HighZ, m.p.RampZ)
				if ps.z < 0 {
					s = m.p.LowFactor * ramp(-ps.z, m.p.LowZ, m.p.RampZ)
				}
				if s > best {
					best, why, unitLx, unitPS = s, 2, lx, ps
				}
			}
		}
		if it.HasNetMass && it.NetMassKg > 0 && it.NetMassKg <= it.GrossMassKg {
			lx := math.Log(it.GrossMassKg / it.NetMassKg)
			g := m.ratioGroups(kb[:0], it)
			if ps, ok := m.peers.deviation(&g, lx); ok {
				if s := m.p.RatioFactor * ramp(math.Abs(ps.z), m.p.RatioZ, m.p.RampZ); s > best {
					best, why, ratioLx, ratioPS = s, 3, lx, ps
				}
			}
		}
		if best <= 0 {
			continue
		}
		r := rb[:0]
		switch why {
		case 1:
			r = AppendNumber(append(r, "net mass "...), it.NetMassKg)
			r = AppendNumber(append(r, " kg is above gross mass "...), it.GrossMassKg)
			r = append(r, " kg, which is physically impossible"...)
		case 2:
			ps := &unitPS
			dir, what := "above", "the quantity may be understated"
			if ps.z < 0 {
				dir, what = "below", "the quantity may be overstated"
			}
			r = append(append(append(r, "gross mass per "...), it.QuantityUnit...), ' ')
			r = AppendNumber(r, math.Exp(unitLx))
			r = appendF(append(r, " kg is "...), math.Abs(ps.z), 1)
			r = append(append(append(r, " robust deviations "...), dir...), " the "...)
			r = AppendNumber(r, math.Exp(ps.median))
			r = append(append(append(r, " kg/"...), it.QuantityUnit...), " median for "...)
			r = appendHSLevel(r, it, ps.level)
			r = append(append(appendInt(append(r, " ("...), ps.n), " peers): "...), what...)
		case 3:
			ps := &ratioPS
			r = appendF(append(r, "gross/net mass ratio "...), math.Exp(ratioLx), 2)
			r = appendF(append(r, " is "...), math.Abs(ps.z), 1)
			r = appendF(append(r, " robust deviations from the "...), math.Exp(ps.median), 2)
			r = appendHSLevel(append(r, " median for "...), it, ps.level)
			r = append(appendInt(append(r, " ("...), ps.n), " peers)"...)
		}
		f := m.finding(it.Line, best, "")
		f.Reason = string(r)
		out = append(out, f)
	}
	return out
}

// Learn adds every item to its groups. A group is read first (refreshing
// its cached statistics, as the update of an item did before the groups
// were read apart) only when an earlier item of the declaration changed it:
// otherwise Score's read left it as this read would (see seenGroups).
func (m *massQuantity) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	var kb [128]byte
	var seen seenGroups
	for i := range d.Items {
		it := &d.Items[i]
		if perUnit(it) {
			lx := math.Log(it.GrossMassKg / it.Quantity)
			g := m.unitGroups(kb[:0], it)
			if seen.seen(g.coarsest()) {
				m.peers.reference(&g)
			}
			m.peers.add(&g, lx)
		}
		if it.HasNetMass && it.NetMassKg > 0 && it.NetMassKg <= it.GrossMassKg {
			lx := math.Log(it.GrossMassKg / it.NetMassKg)
			g := m.ratioGroups(kb[:0], it)
			if seen.seen(g.coarsest()) {
				m.peers.reference(&g)
			}
			m.peers.add(&g, lx)
		}
	}
}
