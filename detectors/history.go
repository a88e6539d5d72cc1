package detectors

import (
	"encoding/binary"
	"math"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// history learns risk from inspection outcomes. For each entity a
// declaration names (importer, declarant, exporter, office, HS6, origin,
// HS6 × origin) it keeps a time-decayed count of inspections and of hits, and
// scores a declaration by the smoothed hit rate of its entities against the
// overall rate: rate = (hits + prior·base) / (inspections + prior), lift =
// rate / base, strength = log(lift) / log(max_lift), times the entity's
// weight; the strongest entity gives the finding, with its counts in the
// reason.
//
// Outcomes of declarations this monitor selected because of their score or a
// profile are biased towards hits (that is why they were inspected); they
// count with targeted_weight. Random compliance selections, and inspections
// the monitor did not ask for, count fully. To know which was which, the
// detector remembers, for each declaration it assessed, its entities and how
// it was selected (in the size-capped store; an outcome whose declaration was
// evicted updates only the importer named in the outcome).

func init() {
	registerKind("history", 60, func() *HistoryParams {
		return &HistoryParams{HalfLifeDays: 365, Prior: 10, MaxLift: 10, MinLift: 1.5, TargetedWeight: 0.3, DefaultBase: 0.03,
			Entities: map[string]float64{"importer": 1, "declarant": 0.3, "exporter": 0.8, "office": 0.2, "hs6": 0.4, "origin": 0.5, "hs6_origin": 0.3}}
	}, newHistory)
}

// HistoryParams configures a history detector.
type HistoryParams struct {
	HalfLifeDays   float64 `yaml:"half_life_days"`  // old outcomes count half after this long
	Prior          float64 `yaml:"prior"`           // pseudo-inspections at the base rate, for smoothing
	MaxLift        float64 `yaml:"max_lift"`        // lift at which strength reaches 1
	MinLift        float64 `yaml:"min_lift"`        // lifts below this are not reported
	TargetedWeight float64 `yaml:"targeted_weight"` // weight of outcomes of declarations this monitor targeted
	DefaultBase    float64 `yaml:"default_base"`    // base hit rate until 100 outcomes are known
	// Entities and their weights (0 leaves one out): importer, declarant,
	// exporter, office, hs6, origin, hs6_origin.
	Entities map[string]float64 `yaml:"entities"`
}

var historyEntities = []string{"importer", "declarant", "exporter", "office", "hs6", "origin", "hs6_origin"}

// Validate checks the parameters.
func (p *HistoryParams) Validate(pc *config.ParamsContext) {
	for k, v := range map[string]float64{"half_life_days": p.HalfLifeDays, "prior": p.Prior, "default_base": p.DefaultBase} {
		if v <= 0 {
			pc.Problemf(k, "must be > 0, got %g", v)
		}
	}
	if p.MaxLift <= 1 || p.MinLift < 1 || p.MinLift >= p.MaxLift {
		pc.Problemf("max_lift", "need 1 <= min_lift < max_lift, got %g and %g", p.MinLift, p.MaxLift)
	}
	if p.TargetedWeight < 0 || p.TargetedWeight > 1 {
		pc.Problemf("targeted_weight", "must be in [0, 1], got %g", p.TargetedWeight)
	}
	for k, v := range p.Entities {
		known := false
		for _, e := range historyEntities {
			known = known || e == k
		}
		if !known {
			pc.Problemf("entities."+k, "unknown entity (known: %s)", strings.Join(historyEntities, ", "))
		} else if v < 0 || v > 1 {
			pc.Problemf("entities."+k, "must be in [0, 1], got %g", v)
		}
	}
}

type history struct {
	base
	p        HistoryParams
	rates    *Table // per-entity hit counts
	halfLife time.Duration
	weight   [numEntityKinds]float64 // Entities, by kind
	// last holds the hashes of the entities of the declaration Score read,
	// for its Pending (see scoreRead).
	last struct {
		d      *declaration.Declaration
		n      int
		hashes [maxEntities]uint64
	}
}

func newHistory(b base, p HistoryParams, env *Env) (Detector, error) {
	h := &history{base: b, p: p, rates: env.shared(), halfLife: days(p.HalfLifeDays)}
	for k, name := range historyEntities {
		h.weight[k] = p.Entities[name]
	}
	return h, nil
}

// Per-entity record: decayed hits and inspections, last update.
const (
	hHits = iota
	hN
	hTime
	hFields
)

// Entity kinds, as indexes of historyEntities.
const (
	kImporter = iota
	kDeclarant
	kExporter
	kOffice
	kHS6
	kOrigin
	kHS6Origin
	numEntityKinds
)

// entity is something a declaration names; id2 is the origin of an
// hs6_origin entity.
type entity struct {
	kind    int
	id, id2 string
}

// appendName appends the entity as a reason names it: its id, and for an
// hs6_origin entity "/" and the origin.
func (e *entity) appendName(b []byte) []byte {
	b = append(b, e.id...)
	if e.id2 != "" {
		b = append(append(b, '/'), e.id2...)
	}
	return b
}

// maxEntities bounds the work per declaration: the header's four entities
// and those of the first items.
const maxEntities = 4 + 3*6

// entityList is a declaration's entities, each once.
type entityList struct {
	buf [maxEntities]entity
	n   int
}

func (l *entityList) add(h *history, kind int, id, id2 string) {
	if id == "" || h.weight[kind] == 0 || l.n == len(l.buf) {
		return
	}
	for i := 0; i < l.n; i++ {
		if o := &l.buf[i]; o.kind == kind && o.id == id && o.id2 == id2 {
			return
		}
	}
	l.buf[l.n] = entity{kind, id, id2}
	l.n++
}

// entities lists what a declaration names, each once, into l.
func (h *history) entities(d *declaration.Declaration, l *entityList) []entity {
	l.n = 0
	l.add(h, kImporter, d.Importer.ID, "")
	l.add(h, kDeclarant, d.DeclarantID, "")
	l.add(h, kExporter, d.Exporter.ID, "")
	l.add(h, kOffice, d.Office, "")
	for i := range d.Items {
		if l.n == len(l.buf) {
			break
		}
		it := &d.Items[i]
		hs6 := it.HS6()
		l.add(h, kHS6, hs6, "")
		l.add(h, kOrigin, it.Origin, "")
		l.add(h, kHS6Origin, hs6, it.Origin)
	}
	return l.buf[:l.n]
}

// entityHash identifies an entity in the state: a 64-bit hash of its kind
// and ids (xxhash of kind, NUL, id, NUL, id2). The per-declaration record
// keeps hashes, not names, so that it stays small (8 bytes an entity) while
// it waits for the outcome.
func entityHash(e *entity) uint64 {
	var buf [96]byte
	b := append(buf[:0], historyEntities[e.kind]...)
	b = append(append(b, 0), e.id...)
	b = append(append(b, 0), e.id2...)
	return xxhash.Sum64(b)
}

// hashKeyPrefix appends what an entity's key starts with; the key is that
// and the entity's hash (putHash).
func (h *history) hashKeyPrefix(b []byte) []byte { return append(appendKey(b, h.stateKey, "e"), 0) }

func putHash(prefix []byte, x uint64) []byte { return binary.LittleEndian.AppendUint64(prefix, x) }

func (h *history) hashKey(b []byte, x uint64) []byte { return putHash(h.hashKeyPrefix(b), x) }

func (h *history) read(key []byte, now uint32) (hits, n float64) {
	s, v := h.rates.acquire(key)
	if len(v) == 4*hFields {
		r := record(v)
		t := r.u32(hTime)
		f := ageing(t, now, h.halfLife)
		hits, n = r.f32(hHits)*f, r.f32(hN)*f
	}
	s.mu.Unlock()
	return hits, n
}

func (h *history) baseRate(now uint32) float64 {
	var kb [64]byte
	hits, n := h.read(appendKey(kb[:0], h.stateKey, "g"), now)
	if n < 100 {
		return h.p.DefaultBase
	}
	return math.Max(hits/n, 0.001)
}

type entityRisk struct {
	e        int // index in the declaration's entities
	hits, n  float64
	rate     float64
	strength float64
}

func (h *history) Score(d *declaration.Declaration, out []Finding) []Finding {
	now := unixSec(d.LodgedAt)
	base := h.baseRate(now)
	var rb [maxEntities]entityRisk
	nr := 0
	var el entityList
	var kb [96]byte
	prefix := h.hashKeyPrefix(kb[:0])
	ents := h.entities(d, &el)
	h.last.d, h.last.n = d, len(ents)
	for i := range ents {
		e := &ents[i]
		x := entityHash(e)
		h.last.hashes[i] = x
		hits, n := h.read(putHash(prefix, x), now)
		if hits <= 0 {
			continue
		}
		rate := (hits + h.p.Prior*base) / (n + h.p.Prior)
		lift := rate / base
		if lift < h.p.MinLift {
			continue
		}
		s := h.weight[e.kind] * clamp01(math.Log(lift)/math.Log(h.p.MaxLift))
		// Insert in order of strength, after the equally strong (a stable
		// sort, strongest first).
		k := nr
		for ; k > 0 && rb[k-1].strength < s; k-- {
			rb[k] = rb[k-1]
		}
		rb[k] = entityRisk{i, hits, n, rate, s}
		nr++
	}
	if nr == 0 {
		return out
	}
	risks := rb[:nr]
	var b [512]byte
	r := appendF(append(b[:0], "inspection history against "...), 100*base, 1)
	r = append(r, "% overall: "...)
	for i := range risks[:min(3, len(risks))] {
		x := &risks[i]
		e := &ents[x.e]
		if i > 0 {
			r = append(r, "; "...)
		}
		r = e.appendName(append(append(r, historyEntities[e.kind]...), ' '))
		r = appendF(append(r, ": "...), x.hits, 1)
		r = appendF(append(r, " hits in "...), x.n, 1)
		r = appendF(append(r, " inspections (smoothed "...), 100*x.rate, 0)
		r = append(r, "%)"...)
	}
	f := h.finding(0, risks[0].strength, "")
	f.Reason = string(r)
	return append(out, f)
}

// Learn learns nothing from the declaration itself: history learns from
// outcomes.
func (h *history) Learn(*declaration.Declaration, *declaration.Assessment) {}

// Pending is what the outcome needs: how the declaration was selected and
// its entities (their hashes), 1 + 8 bytes an entity.
func (h *history) Pending(d *declaration.Declaration, a *declaration.Assessment, b []byte) []byte {
	sel := byte('n') // not selected by this monitor
	if a != nil {
		switch {
		case a.SelectedBy == "random":
			sel = 'r'
		case a.Channel != declaration.Green:
			sel = 't'
		}
	}
	b = append(b, sel)
	if h.last.d == d && d != nil {
		h.last.d = nil
		for _, x := range h.last.hashes[:h.last.n] {
			b = binary.LittleEndian.AppendUint64(b, x)
		}
		return b
	}
	var el entityList
	ents := h.entities(d, &el)
	for i := range ents {
		b = binary.LittleEndian.AppendUint64(b, entityHash(&ents[i]))
	}
	return b
}

// ImporterTableKeys names the importer's inspection counts (ImporterState).
func (h *history) ImporterTableKeys(importerID string, dst [][]byte) [][]byte {
	if h.weight[kImporter] == 0 {
		return dst
	}
	return append(dst, h.hashKey(nil, entityHash(&entity{kind: kImporter, id: importerID})))
}

// LearnOutcome updates the hit rates of the entities of the outcome's
// declaration (as Pending kept them; without them, of its importer).
func (h *history) LearnOutcome(o *declaration.Outcome, v []byte) {
	now := unixSec(o.InspectedAt)
	w := 1.0
	var eb [maxEntities]uint64
	es := eb[:0]
	var kb [128]byte
	if len(v) > 0 && (len(v)-1)%8 == 0 {
		if v[0] == 't' {
			w = h.p.TargetedWeight
		}
		for i := 1; i+8 <= len(v); i += 8 {
			es = append(es, binary.LittleEndian.Uint64(v[i:]))
		}
	} else if o.ImporterID != "" && h.weight[kImporter] > 0 {
		es = append(es, entityHash(&entity{kind: kImporter, id: o.ImporterID}))
	}
	hit := 0.0
	if o.Hit {
		hit = w
	}
	// The update is a value (the table may apply it later): addHits.
	op := tableOp{kind: opHits, now: now, a: hit, b: w, slow: h.halfLife}
	h.rates.update(appendKey(kb[:0], h.stateKey, "g"), op)
	prefix := h.hashKeyPrefix(kb[:0])
	for _, x := range es {
		h.rates.update(putHash(prefix, x), op)
	}
}

// addHits adds op.a hits in op.b inspections at time op.now to an entity's
// record (old; nil when there is none), both decayed with half-life
// op.slow, and returns it.
func addHits(old []byte, op *tableOp) []byte {
	now, halfLife := op.now, op.slow
	r := newRecord(hFields, old)
	t := r.u32(hTime)
	f := ageing(t, now, halfLife)
	r.setF32(hHits, float64(r.f32(hHits)*f)+op.a) // not fused: see decay
	r.setF32(hN, float64(r.f32(hN)*f)+op.b)
	r.setU32(hTime, max(t, now))
	return r
}
