package detectors

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// route judges where goods say they come from. Per item it combines, by
// noisy-OR, these signals:
//   - rare origin: the HS6 × origin pair makes a small share of the HS6's
//     declarations (decayed counts, half-life half_life_days);
//   - origin shift: the pair's share over the last weeks (half-life
//     shift_half_life_days) is several times its long-run share;
//   - a preference claimed on a pair where claims are unusual;
//   - goods under trade-defence duties from a non-traditional origin
//     (configured list);
//   - origin differing from the dispatch country or the exporter's country
//     (weak alone: hubs are legitimate).

func init() {
	registerKind("route", 40, func() *RouteParams {
		return &RouteParams{HalfLifeDays: 180, ShiftHalfLifeDays: 14, MinHSCount: 50, RareShare: 0.02, Rare: 0.5,
			ShiftRatio: 4, ShiftMinShare: 0.05, Shift: 0.5, PrefMinShare: 0.1, Preference: 0.4, Mismatch: 0.1, TradeDefence: 0.5}
	}, newRoute)
}

// RouteParams configures a route detector.
type RouteParams struct {
	HalfLifeDays      float64 `yaml:"half_life_days"`       // memory of the long-run origin mix
	ShiftHalfLifeDays float64 `yaml:"shift_half_life_days"` // memory of the recent origin mix
	MinHSCount        float64 `yaml:"min_hs_count"`         // (decayed) declarations of the HS6 before shares are trusted
	RareShare         float64 `yaml:"rare_share"`           // share below which an origin is rare for the HS6
	Rare              float64 `yaml:"rare"`                 // strength of a never-seen origin (linear down to 0 at rare_share)
	ShiftRatio        float64 `yaml:"shift_ratio"`          // recent share / long-run share that counts as a shift
	ShiftMinShare     float64 `yaml:"shift_min_share"`      // recent share needed for a shift
	Shift             float64 `yaml:"shift"`                // strength of a shift
	PrefMinShare      float64 `yaml:"pref_min_share"`       // share of claims below which a claimed preference is unusual
	Preference        float64 `yaml:"preference"`           // strength of an unusual preference claim
	Mismatch          float64 `yaml:"mismatch"`             // strength of origin differing from dispatch or exporter country
	TradeDefence      float64 `yaml:"trade_defence"`        // strength of a non-traditional origin on listed goods
	// TradeDefenceGoods lists goods under anti-dumping or countervailing
	// duties and the origins that traditionally supply them.
	TradeDefenceGoods []TradeDefenceGoods `yaml:"trade_defence_goods"`
}

// TradeDefenceGoods is one entry of RouteParams.TradeDefenceGoods.
type TradeDefenceGoods struct {
	HSPrefix    []string `yaml:"hs_prefix"`
	Traditional []string `yaml:"traditional_origins"` // "list:NAME" allowed
}

// Validate checks the parameters.
func (p *RouteParams) Validate(pc *config.ParamsContext) {
	for k, v := range map[string]float64{"half_life_days": p.HalfLifeDays, "shift_half_life_days": p.ShiftHalfLifeDays,
		"min_hs_count": p.MinHSCount, "shift_ratio": p.ShiftRatio} {
		if v <= 0 {
			pc.Problemf(k, "must be > 0, got %g", v)
		}
	}
	if p.ShiftHalfLifeDays >= p.HalfLifeDays {
		pc.Problemf("shift_half_life_days", "must be shorter than half_life_days (%g), got %g", p.HalfLifeDays, p.ShiftHalfLifeDays)
	}
	for k, v := range map[string]float64{"rare_share": p.RareShare, "rare": p.Rare, "shift_min_share": p.ShiftMinShare, "shift": p.Shift,
		"pref_min_share": p.PrefMinShare, "preference": p.Preference, "mismatch": p.Mismatch, "trade_defence": p.TradeDefence} {
		if v < 0 || v > 1 {
			pc.Problemf(k, "must be in [0, 1], got %g", v)
		}
	}
	for i, g := range p.TradeDefenceGoods {
		if len(g.HSPrefix) == 0 {
			pc.Problemf(fmt.Sprintf("trade_defence_goods[%d].hs_prefix", i), "must list at least one HS prefix")
		}
		for j, o := range g.Traditional {
			if name, ok := strings.CutPrefix(o, "list:"); ok {
				if _, ok := pc.List(name); !ok {
					pc.Problemf(fmt.Sprintf("trade_defence_goods[%d].traditional_origins[%d]", i, j), "names list %q, which is not defined under lists", name)
				}
			}
		}
	}
}

type route struct {
	base
	p            RouteParams
	table        *Table
	slow, fast   time.Duration
	tradeDefence []tdGoods
}

type tdGoods struct {
	prefixes    []string
	traditional []string
}

func newRoute(b base, p RouteParams, env *Env) (Detector, error) {
	r := &route{base: b, p: p, table: env.shared(),
		slow: time.Duration(p.HalfLifeDays * 24 * float64(time.Hour)), fast: time.Duration(p.ShiftHalfLifeDays * 24 * float64(time.Hour))}
	for _, g := range p.TradeDefenceGoods {
		var trad []string
		for _, o := range g.Traditional {
			if name, ok := strings.CutPrefix(o, "list:"); ok {
				trad = append(trad, env.Config.Lists[name]...)
			} else {
				trad = append(trad, o)
			}
		}
		r.tradeDefence = append(r.tradeDefence, tdGoods{prefixes: g.HSPrefix, traditional: trad})
	}
	return r, nil
}

// Counts of an HS6 × origin pair: declarations (long-run and recent),
// preference claims (long-run), last update. Counts of an HS6: the same
// without claims.
const (
	rtSlow = iota
	rtFast
	rtPref
	rtTime
	rtFields
)

func (r *route) pairKey(b []byte, it *declaration.Item) []byte {
	return appendKey(b, r.stateKey, "p", it.HS6(), it.Origin)
}

func (r *route) hsKey(b []byte, it *declaration.Item) []byte {
	return appendKey(b, r.stateKey, "h", it.HS6())
}

// counts reads a record aged to time now.
func (r *route) counts(key []byte, now uint32) (slow, fast, pref float64) {
	r.table.view(key, func(v []byte) {
		if len(v) == 4*rtFields {
			rec := record(v)
			t := rec.u32(rtTime)
			slow, fast, pref = decay(rec.f32(rtSlow), t, now, r.slow), decay(rec.f32(rtFast), t, now, r.fast), decay(rec.f32(rtPref), t, now, r.slow)
		}
	})
	return slow, fast, pref
}

func (r *route) Score(d *declaration.Declaration, out []Finding) []Finding {
	now := unixSec(d.LodgedAt)
	var kbuf [64]byte
	kb := kbuf[:0]
	for i := range d.Items {
		it := &d.Items[i]
		ev := newEvidence()
		add := ev.add
		kb = r.hsKey(kb[:0], it)
		hsSlow, hsFast, _ := r.counts(kb, now)
		kb = r.pairKey(kb[:0], it)
		pSlow, pFast, pPref := r.counts(kb, now)
		if hsSlow >= r.p.MinHSCount {
			share := pSlow / hsSlow
			if share < r.p.RareShare {
				add(r.p.Rare*(1-share/r.p.RareShare), fmt.Sprintf("origin %s makes %.1f%% of HS %s declarations (%.0f weighted)", it.Origin, 100*share, it.HS6(), hsSlow))
			}
			if hsFast > 0 {
				recent := pFast / hsFast
				if recent >= r.p.ShiftMinShare && recent >= r.p.ShiftRatio*share {
					add(r.p.Shift*clamp01((recent/math.Max(share, 1e-9)-r.p.ShiftRatio)/r.p.ShiftRatio+0.5),
						fmt.Sprintf("origin %s rose to %.0f%% of recent HS %s declarations from %.1f%% in the long run", it.Origin, 100*recent, it.HS6(), 100*share))
				}
			}
			if it.Preference != "" && pSlow >= 10 && pPref/pSlow < r.p.PrefMinShare {
				add(r.p.Preference, fmt.Sprintf("preference %s claimed where only %.0f%% of HS %s from %s claim one", it.Preference, 100*pPref/pSlow, it.HS6(), it.Origin))
			}
		}
		for _, g := range r.tradeDefence {
			if hasPrefix(it.HSCode, g.prefixes) && !slices.Contains(g.traditional, it.Origin) {
				add(r.p.TradeDefence, fmt.Sprintf("HS %s is under trade-defence duties and %s is not a traditional origin", it.HS6(), it.Origin))
				break
			}
		}
		if d.DispatchCountry != "" && d.DispatchCountry != it.Origin {
			add(r.p.Mismatch, "dispatched from "+d.DispatchCountry)
		}
		if d.Exporter.Country != "" && d.Exporter.Country != it.Origin {
			add(r.p.Mismatch, "exporter in "+d.Exporter.Country)
		}
		if s := ev.strength(); s > 0 {
			f := r.finding(it.Line, s, "")
			f.Reason = ev.reason("item from " + it.Origin + ": ")
			out = append(out, f)
		}
	}
	return out
}

func hasPrefix(hs string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(hs, p) {
			return true
		}
	}
	return false
}

func (r *route) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	now := unixSec(d.LodgedAt)
	var kbuf [64]byte
	kb := kbuf[:0]
	for i := range d.Items {
		it := &d.Items[i]
		pref := 0.0
		if it.Preference != "" {
			pref = 1
		}
		for _, k := range [2]int{0, 1} {
			if k == 0 {
				kb = r.hsKey(kb[:0], it)
			} else {
				kb = r.pairKey(kb[:0], it)
			}
			r.table.update(kb, func(old []byte) []byte {
				rec := newRecord(rtFields, old)
				t := rec.u32(rtTime)
				rec.setF32(rtSlow, decay(rec.f32(rtSlow), t, now, r.slow)+1)
				rec.setF32(rtFast, decay(rec.f32(rtFast), t, now, r.fast)+1)
				rec.setF32(rtPref, decay(rec.f32(rtPref), t, now, r.slow)+pref)
				rec.setU32(rtTime, max(t, now))
				return rec
			})
		}
	}
}
