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

// keyPrefix appends what the keys of this detector's records start with:
// its state key and a separator. A key is then the record's letter ('p' an
// HS6 × origin pair, 'h' an HS6), a separator and the HS6, and for a pair a
// separator and the origin.
func (r *route) keyPrefix(b []byte) []byte { return append(append(b, r.stateKey...), 0) }

// hsKeyOf appends an item's HS6 key to the prefix p (of length pre) and
// returns it; pairOf turns it into the item's pair key (letter 'p', the
// origin appended).
func hsKeyOf(p []byte, pre int, it *declaration.Item) []byte {
	return append(append(p[:pre], 'h', 0), it.HS6()...)
}

func pairOf(hsKey []byte, pre int, it *declaration.Item) []byte {
	hsKey[pre] = 'p'
	return append(append(hsKey, 0), it.Origin...)
}

// counts reads a record aged to time now.
func (r *route) counts(key []byte, now uint32) (slow, fast, pref float64) {
	s, v := r.table.acquire(key)
	if len(v) == 4*rtFields {
		rec := record(v)
		t := rec.u32(rtTime)
		fs := ageing(t, now, r.slow)
		slow, fast, pref = rec.f32(rtSlow)*fs, decay(rec.f32(rtFast), t, now, r.fast), rec.f32(rtPref)*fs
	}
	s.mu.Unlock()
	return slow, fast, pref
}

// sameHS6 is the index of the first item before i with the HS6 of item i, or
// -1; samePair the same for HS6 and origin.
func sameHS6(d *declaration.Declaration, i int) int {
	hs := d.Items[i].HS6()
	for j := 0; j < i; j++ {
		if d.Items[j].HS6() == hs {
			return j
		}
	}
	return -1
}

func samePair(d *declaration.Declaration, i int) int {
	it := &d.Items[i]
	for j := 0; j < i; j++ {
		if d.Items[j].Origin == it.Origin && d.Items[j].HS6() == it.HS6() {
			return j
		}
	}
	return -1
}

// maxMemo items of a declaration have their counts remembered, so that items
// sharing an HS6 (or a pair) read it once.
const maxMemo = 16

type routeCounts struct{ slow, fast, pref float64 }

func (r *route) Score(d *declaration.Declaration, out []Finding) []Finding {
	now := unixSec(d.LodgedAt)
	var kbuf [96]byte
	kb := r.keyPrefix(kbuf[:0])
	pre := len(kb)
	var hsMemo, pairMemo [maxMemo]routeCounts
	var rb [320]byte
	for i := range d.Items {
		it := &d.Items[i]
		hs6 := it.HS6()
		// Scoring changes no state: an HS6 or a pair an earlier item read
		// reads the same (remembered for declarations of up to maxMemo
		// items, which bounds the search).
		var hc, pc routeCounts
		j, k := -1, -1
		if len(d.Items) <= maxMemo {
			j, k = sameHS6(d, i), samePair(d, i)
		}
		kb = hsKeyOf(kb, pre, it)
		if j >= 0 {
			hc = hsMemo[j]
		} else {
			hc.slow, hc.fast, hc.pref = r.counts(kb, now)
		}
		if k >= 0 {
			pc = pairMemo[k]
		} else {
			kb = pairOf(kb, pre, it)
			pc.slow, pc.fast, pc.pref = r.counts(kb, now)
		}
		if i < maxMemo {
			hsMemo[i], pairMemo[i] = hc, pc
		}
		hsSlow, hsFast := hc.slow, hc.fast
		pSlow, pFast, pPref := pc.slow, pc.fast, pc.pref
		ev := newEvidence()
		b := append(append(append(rb[:0], "item from "...), it.Origin...), ": "...)
		ok := false
		if hsSlow >= r.p.MinHSCount {
			share := pSlow / hsSlow
			if share < r.p.RareShare {
				if b, ok = ev.add(b, r.p.Rare*(1-share/r.p.RareShare)); ok {
					b = appendF(append(append(append(b, "origin "...), it.Origin...), " makes "...), 100*share, 1)
					b = appendF(append(append(append(b, "% of HS "...), hs6...), " declarations ("...), hsSlow, 0)
					b = append(b, " weighted)"...)
				}
			}
			if hsFast > 0 {
				recent := pFast / hsFast
				if recent >= r.p.ShiftMinShare && recent >= r.p.ShiftRatio*share {
					if b, ok = ev.add(b, r.p.Shift*clamp01((recent/math.Max(share, 1e-9)-r.p.ShiftRatio)/r.p.ShiftRatio+0.5)); ok {
						b = appendF(append(append(append(b, "origin "...), it.Origin...), " rose to "...), 100*recent, 0)
						b = appendF(append(append(append(b, "% of recent HS "...), hs6...), " declarations from "...), 100*share, 1)
						b = append(b, "% in the long run"...)
					}
				}
			}
			if it.Preference != "" && pSlow >= 10 && pPref/pSlow < r.p.PrefMinShare {
				if b, ok = ev.add(b, r.p.Preference); ok {
					b = appendF(append(append(append(b, "preference "...), it.Preference...), " claimed where only "...), 100*pPref/pSlow, 0)
					b = append(append(append(append(append(b, "% of HS "...), hs6...), " from "...), it.Origin...), " claim one"...)
				}
			}
		}
		for _, g := range r.tradeDefence {
			if hasPrefix(it.HSCode, g.prefixes) && !slices.Contains(g.traditional, it.Origin) {
				if b, ok = ev.add(b, r.p.TradeDefence); ok {
					b = append(append(append(append(append(b, "HS "...), hs6...), " is under trade-defence duties and "...), it.Origin...), " is not a traditional origin"...)
				}
				break
			}
		}
		if d.DispatchCountry != "" && d.DispatchCountry != it.Origin {
			b = ev.addText(b, r.p.Mismatch, "dispatched from ", d.DispatchCountry)
		}
		if d.Exporter.Country != "" && d.Exporter.Country != it.Origin {
			b = ev.addText(b, r.p.Mismatch, "exporter in ", d.Exporter.Country)
		}
		if s := ev.strength(); s > 0 {
			f := r.finding(it.Line, s, "")
			f.Reason = string(b)
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

// Learn counts every item in its HS6 and its pair, an update each, in item
// order.
func (r *route) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	now := unixSec(d.LodgedAt)
	var kbuf [96]byte
	kb := r.keyPrefix(kbuf[:0])
	pre := len(kb)
	for i := range d.Items {
		it := &d.Items[i]
		pref := 0.0
		if it.Preference != "" {
			pref = 1
		}
		kb = hsKeyOf(kb, pre, it)
		r.count(kb, now, pref)
		kb = pairOf(kb, pre, it)
		r.count(kb, now, pref)
	}
}

// count adds a declaration at time now (pref: 1 when it claims a
// preference) to the record of key (addRoute; the table may apply the
// update after count returns, the key is copied).
func (r *route) count(key []byte, now uint32, pref float64) {
	r.table.update(key, tableOp{kind: opRoute, now: now, a: pref, slow: r.slow, fast: r.fast})
}

// addRoute adds a declaration at time op.now (op.a: 1 when it claims a
// preference) to a record of counts (old; nil when there is none), decayed
// with half-lives op.slow and op.fast, and returns it.
func addRoute(old []byte, op *tableOp) []byte {
	now, slow, fast, pref := op.now, op.slow, op.fast, op.a
	rec := newRecord(rtFields, old)
	t := rec.u32(rtTime)
	fs := ageing(t, now, slow)
	rec.setF32(rtSlow, float64(rec.f32(rtSlow)*fs)+1) // not fused: see decay
	rec.setF32(rtFast, decay(rec.f32(rtFast), t, now, fast)+1)
	rec.setF32(rtPref, float64(rec.f32(rtPref)*fs)+pref)
	rec.setU32(rtTime, max(t, now))
	return rec
}
