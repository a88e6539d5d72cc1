package detectors

import (
	"math"
	"math/bits"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// importer_behaviour compares a declaration with its importer's own history:
// a new importer (few declarations so far, or first seen recently), above all
// one whose first declarations carry high duties (the "missing trader" who
// imports a burst of high-duty goods and disappears); a surge of declarations
// against the importer's own baseline; a commodity (HS4) or an origin the
// importer has never declared before. Signals combine by noisy-OR into one
// finding per declaration.

func init() {
	registerKind("importer_behaviour", 40, func() *ImporterParams {
		return &ImporterParams{NewCount: 10, NewDays: 30, New: 0.1, NewHighDuty: 0.7, HighDuty: 0.25,
			SpikeMinCount: 20, SpikeRatio: 4, Spike: 0.4, KnownMinCount: 10, NewCommodity: 0.2, NewOrigin: 0.1,
			FastHalfLifeDays: 3, SlowHalfLifeDays: 90}
	}, newImporterBehaviour)
}

// ImporterParams configures an importer_behaviour detector.
type ImporterParams struct {
	NewCount    int     `yaml:"new_count"`     // an importer with fewer declarations...
	NewDays     float64 `yaml:"new_days"`      // ... first seen fewer days ago is new
	New         float64 `yaml:"new"`           // strength of "new importer" on low-duty goods
	NewHighDuty float64 `yaml:"new_high_duty"` // strength of "new importer" whose declaration carries duties of high_duty or more
	// HighDuty is the declared duties / customs value ratio at which a new
	// importer's goods count as high-duty; strength rises linearly from new
	// at a ratio of 0 to new_high_duty at high_duty.
	HighDuty         float64 `yaml:"high_duty"`
	SpikeMinCount    int     `yaml:"spike_min_count"`     // declarations of history before surges are judged
	SpikeRatio       float64 `yaml:"spike_ratio"`         // recent rate / baseline rate that is a surge
	Spike            float64 `yaml:"spike"`               // strength of a surge
	KnownMinCount    int     `yaml:"known_min_count"`     // declarations of history before new commodities and origins count
	NewCommodity     float64 `yaml:"new_commodity"`       // strength of an HS4 the importer never declared
	NewOrigin        float64 `yaml:"new_origin"`          // strength of an origin the importer never declared
	FastHalfLifeDays float64 `yaml:"fast_half_life_days"` // memory of the recent rate
	SlowHalfLifeDays float64 `yaml:"slow_half_life_days"` // memory of the baseline rate
}

// Validate checks the parameters.
func (p *ImporterParams) Validate(pc *config.ParamsContext) {
	for k, v := range map[string]float64{"new": p.New, "new_high_duty": p.NewHighDuty, "spike": p.Spike,
		"new_commodity": p.NewCommodity, "new_origin": p.NewOrigin} {
		if v < 0 || v > 1 {
			pc.Problemf(k, "must be in [0, 1], got %g", v)
		}
	}
	for k, v := range map[string]float64{"high_duty": p.HighDuty, "spike_ratio": p.SpikeRatio,
		"fast_half_life_days": p.FastHalfLifeDays, "slow_half_life_days": p.SlowHalfLifeDays} {
		if v <= 0 {
			pc.Problemf(k, "must be > 0, got %g", v)
		}
	}
	if p.FastHalfLifeDays >= p.SlowHalfLifeDays {
		pc.Problemf("fast_half_life_days", "must be shorter than slow_half_life_days (%g), got %g", p.SlowHalfLifeDays, p.FastHalfLifeDays)
	}
	if p.NewCount < 0 || p.SpikeMinCount < 0 || p.KnownMinCount < 0 || p.NewDays < 0 {
		pc.Problemf("new_count", "counts and days must be >= 0")
	}
}

type importerBehaviour struct {
	base
	p          ImporterParams
	store      *Store
	fast, slow time.Duration
	last       scoreRead // the importer's record, for Learn
}

func newImporterBehaviour(b base, p ImporterParams, env *Env) (Detector, error) {
	return &importerBehaviour{base: b, p: p, store: env.Store,
		fast: days(p.FastHalfLifeDays), slow: days(p.SlowHalfLifeDays)}, nil
}

func days(d float64) time.Duration { return time.Duration(d * 24 * float64(time.Hour)) }

// The importer's record: first seen, last update, count, decayed counts
// (fast, slow), a 256-bit set of HS4 headings and a 128-bit set of origins.
const (
	ibFirst = iota
	ibLast
	ibCount
	ibFast
	ibSlow
	ibHS4     // 8 fields
	ibOrigins = ibHS4 + 8
	ibFields  = ibOrigins + 4
)

// A record is stored in one of two forms: the fixed form above (68 bytes),
// or, while the two sets hold at most ibListMax members together, the first
// five fields followed by each set as a count and its members' bit numbers
// (an importer with one heading and one origin: 24 bytes). ibExpand reads
// either into the fixed form; ibCompact writes the smaller.
const ibListMax = 40

func ibExpand(v []byte, buf *[4 * ibFields]byte) record {
	if len(v) == 4*ibFields {
		return record(v)
	}
	if len(v) < 4*ibHS4+2 {
		return nil
	}
	clear(buf[:])
	rec := record(buf[:])
	copy(rec, v[:4*ibHS4])
	sets := v[4*ibHS4:]
	for _, field := range [2]int{ibHS4, ibOrigins} {
		if len(sets) == 0 || len(sets) < 1+int(sets[0]) {
			return nil
		}
		for _, b := range sets[1 : 1+sets[0]] {
			if field == ibOrigins && b >= 128 {
				return nil
			}
			rec.setU32(field+int(b)/32, rec.u32(field+int(b)/32)|1<<(b%32))
		}
		sets = sets[1+sets[0]:]
	}
	if len(sets) != 0 {
		return nil
	}
	return rec
}

func ibCompact(rec record, dst []byte) []byte {
	n := 0
	for f := ibHS4; f < ibFields; f++ {
		n += bits.OnesCount32(rec.u32(f))
	}
	if n > ibListMax {
		return rec
	}
	dst = append(dst[:0], rec[:4*ibHS4]...)
	for _, set := range [2][2]int{{ibHS4, ibOrigins}, {ibOrigins, ibFields}} {
		at := len(dst)
		dst = append(dst, 0)
		for f := set[0]; f < set[1]; f++ {
			for w := rec.u32(f); w != 0; w &= w - 1 {
				dst = append(dst, byte(32*(f-set[0])+bits.TrailingZeros32(w)))
			}
		}
		dst[at] = byte(len(dst) - at - 1)
	}
	return dst
}

func bitIn(rec record, field, bits int, s string) (int, uint32) {
	h := int(fnv32(s)) & (bits - 1)
	return field + h/32, 1 << (h % 32)
}

func (ib *importerBehaviour) key(kb []byte, d *declaration.Declaration) []byte {
	return ImporterKey(kb, d.Importer.ID, ib.stateKey)
}

// dutyRatio is the declaration's declared duties over its customs value.
func dutyRatio(d *declaration.Declaration) float64 {
	var duties, value float64
	for i := range d.Items {
		duties += d.Items[i].Duties
		value += d.Items[i].CustomsValue
	}
	if value <= 0 {
		return 0
	}
	return duties / value
}

func (ib *importerBehaviour) Score(d *declaration.Declaration, out []Finding) []Finding {
	now := unixSec(d.LodgedAt)
	var kb [64]byte
	var vb, xb [4 * ibFields]byte
	v, found := ib.store.Get(vb[:0], ib.key(kb[:0], d))
	ib.last.keep(ib.store, d, v, found)
	rec := ibExpand(v, &xb)
	var rb [256]byte
	ev := newEvidence()
	b := append(append(append(rb[:0], "importer "...), d.Importer.ID...), ": "...)
	ok := false
	line := 0
	count := 0
	ageDays := 0.0
	if rec != nil {
		count = int(rec.u32(ibCount))
		ageDays = float64(now-min(now, rec.u32(ibFirst))) / 86400
	}
	if count < ib.p.NewCount && ageDays < ib.p.NewDays {
		dr := dutyRatio(d)
		if b, ok = ev.add(b, ib.p.New+(ib.p.NewHighDuty-ib.p.New)*clamp01(dr/ib.p.HighDuty)); ok {
			b = append(b, "new importer ("...)
			if count > 0 {
				b = append(appendInt(append(b, "declaration "...), count+1), ", first seen "...)
				b = append(appendF(b, ageDays, 0), " days ago"...)
			} else {
				b = append(b, "first declaration"...)
			}
			b = appendF(append(b, ") declaring duties of "...), 100*dr, 0)
			b = append(b, "% of value"...)
		}
	}
	if rec != nil && count >= ib.p.SpikeMinCount {
		t := rec.u32(ibLast)
		age := math.Max(ageDays, 1)
		fast := dailyRate(decay(rec.f32(ibFast), t, now, ib.fast), ib.p.FastHalfLifeDays, age)
		slow := dailyRate(decay(rec.f32(ibSlow), t, now, ib.slow), ib.p.SlowHalfLifeDays, age)
		if slow > 0 && fast/slow >= ib.p.SpikeRatio {
			r := fast / slow
			if b, ok = ev.add(b, ib.p.Spike*clamp01((r-ib.p.SpikeRatio)/ib.p.SpikeRatio+0.5)); ok {
				b = appendF(append(b, "declaring "...), r, 1)
				b = appendF(append(b, " times its usual rate ("...), fast, 1)
				b = appendF(append(b, " a day recently, "...), slow, 1)
				b = append(b, " a day over months)"...)
			}
		}
	}
	if rec != nil && count >= ib.p.KnownMinCount {
		for i := range d.Items {
			it := &d.Items[i]
			if f, bit := bitIn(rec, ibHS4, 256, it.HS4()); rec.u32(f)&bit == 0 {
				if b, ok = ev.add(b, ib.p.NewCommodity); ok {
					b = appendInt(append(append(append(b, "first declaration of HS "...), it.HS4()...), " in "...), count)
				}
				line = it.Line
				break
			}
		}
		for i := range d.Items {
			it := &d.Items[i]
			if f, bit := bitIn(rec, ibOrigins, 128, it.Origin); rec.u32(f)&bit == 0 {
				if b, ok = ev.add(b, ib.p.NewOrigin); ok {
					b = appendInt(append(append(append(b, "first goods from "...), it.Origin...), " in "...), count)
					b = append(b, " declarations"...)
				}
				if line == 0 {
					line = it.Line
				}
				break
			}
		}
	}
	if s := ev.strength(); s > 0 {
		f := ib.finding(line, s, "")
		f.Reason = string(b)
		out = append(out, f)
	}
	return out
}

// dailyRate turns a decayed count into declarations a day. Under a steady
// rate λ, a count decayed with half-life h over a history of a days holds
// λ · h/ln 2 · (1 − 2^(−a/h)); a young importer's slow count is far from its
// steady state, and without this correction every importer would seem to
// surge in its first months.
func dailyRate(count, halfLifeDays, ageDays float64) float64 {
	return count * math.Ln2 / (halfLifeDays * (1 - math.Exp2(-ageDays/halfLifeDays)))
}

func (ib *importerBehaviour) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	now := unixSec(d.LodgedAt)
	var kb [64]byte
	var vb, xb, cb [4 * ibFields]byte
	key := ib.key(kb[:0], d)
	// A read and a write, where Store.Update would take a lock and call a
	// closure (which would move the buffers to the heap): the record is the
	// importer\'s, and one importer\'s declarations are assessed by one
	// goroutine at a time, so no other writer can come in between.
	old, _, known := ib.last.take(ib.store, d)
	if !known {
		old, _ = ib.store.Get(vb[:0], key)
	}
	rec := ibExpand(old, &xb)
	if rec == nil {
		rec = record(xb[:])
		clear(rec)
	}
	if rec.u32(ibCount) == 0 {
		rec.setU32(ibFirst, now)
	}
	t := rec.u32(ibLast)
	rec.setF32(ibFast, decay(rec.f32(ibFast), t, now, ib.fast)+1)
	rec.setF32(ibSlow, decay(rec.f32(ibSlow), t, now, ib.slow)+1)
	rec.setU32(ibLast, max(t, now))
	rec.setU32(ibCount, rec.u32(ibCount)+1)
	for i := range d.Items {
		f, b := bitIn(rec, ibHS4, 256, d.Items[i].HS4())
		rec.setU32(f, rec.u32(f)|b)
		f, b = bitIn(rec, ibOrigins, 128, d.Items[i].Origin)
		rec.setU32(f, rec.u32(f)|b)
	}
	ib.store.Set(key, ibCompact(rec, cb[:0]))
}
