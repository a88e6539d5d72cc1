package detectors

import (
	"fmt"
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

func (m *massQuantity) unitKey(it *declaration.Item) keyFunc {
	return func(b []byte, level int) []byte {
		if level == 0 {
			return appendKey(b, m.stateKey, "u", it.QuantityUnit, it.HS6())
		}
		return appendKey(b, m.stateKey, "u", it.QuantityUnit, it.HS4())
	}
}

func (m *massQuantity) ratioKey(it *declaration.Item) keyFunc {
	return func(b []byte, level int) []byte {
		if level == 0 {
			return appendKey(b, m.stateKey, "r", it.HS6())
		}
		return appendKey(b, m.stateKey, "r", it.HS4())
	}
}

func hsLevel(it *declaration.Item, level int) string {
	if level == 0 {
		return "HS " + it.HS6()
	}
	return "HS " + it.HS4() + " (all subheadings)"
}

func (m *massQuantity) Score(d *declaration.Declaration, out []Finding) []Finding {
	for i := range d.Items {
		it := &d.Items[i]
		best := m.finding(it.Line, 0, "")
		consider := func(strength float64, reason func() string) {
			if strength > best.Score {
				best.Score, best.Reason = strength, reason()
			}
		}
		if it.HasNetMass && it.NetMassKg > it.GrossMassKg*(1+m.p.NetTolerance) {
			consider(m.p.NetAboveGross, func() string {
				return fmt.Sprintf("net mass %s kg is above gross mass %s kg, which is physically impossible", FormatNumber(it.NetMassKg), FormatNumber(it.GrossMassKg))
			})
		}
		if perUnit(it) {
			lx := math.Log(it.GrossMassKg / it.Quantity)
			if ps, ok := m.peers.deviation(2, m.unitKey(it), lx); ok {
				s, dir, what := ramp(ps.z, m.p.HighZ, m.p.RampZ), "above", "the quantity may be understated"
				if ps.z < 0 {
					s, dir, what = m.p.LowFactor*ramp(-ps.z, m.p.LowZ, m.p.RampZ), "below", "the quantity may be overstated"
				}
				consider(s, func() string {
					return fmt.Sprintf("gross mass per %s %s kg is %.1f robust deviations %s the %s kg/%s median for %s (%d peers): %s",
						it.QuantityUnit, FormatNumber(math.Exp(lx)), math.Abs(ps.z), dir, FormatNumber(math.Exp(ps.median)), it.QuantityUnit, hsLevel(it, ps.level), ps.n, what)
				})
			}
		}
		if it.HasNetMass && it.NetMassKg > 0 && it.NetMassKg <= it.GrossMassKg {
			lx := math.Log(it.GrossMassKg / it.NetMassKg)
			if ps, ok := m.peers.deviation(2, m.ratioKey(it), lx); ok {
				consider(m.p.RatioFactor*ramp(math.Abs(ps.z), m.p.RatioZ, m.p.RampZ), func() string {
					return fmt.Sprintf("gross/net mass ratio %.2f is %.1f robust deviations from the %.2f median for %s (%d peers)",
						math.Exp(lx), math.Abs(ps.z), math.Exp(ps.median), hsLevel(it, ps.level), ps.n)
				})
			}
		}
		if best.Score > 0 {
			out = append(out, best)
		}
	}
	return out
}

func (m *massQuantity) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	for i := range d.Items {
		it := &d.Items[i]
		if perUnit(it) {
			m.peers.learn(2, m.unitKey(it), math.Log(it.GrossMassKg/it.Quantity))
		}
		if it.HasNetMass && it.NetMassKg > 0 && it.NetMassKg <= it.GrossMassKg {
			m.peers.learn(2, m.ratioKey(it), math.Log(it.GrossMassKg/it.NetMassKg))
		}
	}
}
