package engine

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/gbdt"
)

// The model stage learns from inspection outcomes what the evidence is worth.
//
// At assessment, the engine builds the declaration's feature vector (see
// features.go) from state as it was before the declaration, lets the current
// model score it when there is an active one, and keeps the vector in the
// store under the declaration id. When the declaration's outcome arrives, the
// vector and the result become one labelled row of a bounded training window,
// and the entities the declaration named update their hit rates. So a
// declaration's own outcome can never reach its own assessment: it arrives
// after the assessment was written, and it only changes what later
// declarations see.
//
// Selection bias. Outcomes exist only for inspected declarations, and when
// riskmon's own channels choose the inspections, high scores are inspected
// far more often than low ones. Each outcome is weighted by the inverse of the
// estimated probability that a declaration of its stratum (the channel its
// score or a profile gave it, before random compliance selection) was
// inspected: outcomes received ÷ declarations assessed in that stratum,
// relative to the most inspected stratum, capped at model.max_weight. When
// inspections do not depend on riskmon (an administration's own selection, a
// data set where every declaration was inspected), every stratum has the same
// rate and every weight is 1; when they follow riskmon's channels, the random
// compliance picks among the green ones count for the green ones that were
// never inspected.
//
// Training. The trees are retrained on the whole window when the labels seen
// have grown by model.retrain_growth since the last training or by
// model.retrain_labels, whichever comes first. Replay trains in the caller's
// goroutine at those points, so it stays deterministic; stream mode trains in
// the background and swaps the model in atomically. A trained model is used
// only when its ranking of the most recent labels (the validation tail it
// never trained on) beats the rule score's: until then, and before
// model.min_labels outcomes, the rule score stands.

// Trained describes a trained model, for metrics and logs.
type Trained struct {
	Name          string // "gbdt@" + content hash
	Active        bool   // its trees count (they beat the rule score on the validation tail); else only its calibration of the rule score does
	Labels        int    // labelled rows it was trained on
	Report        gbdt.Report
	RuleAUC       float64 // the rule score's AUC on the same validation tail
	Hits          float64 // weighted hits among the labels
	Weight        float64 // the model's share of the blend, in log-odds
	ruleA, ruleB  float64 // the rule score calibrated: P = σ(ruleA + ruleB·log1p(score))
	At            time.Time
	FromFile      string // when it was loaded rather than trained
	model         *gbdt.Model
	lay           *layout
	revPerValue   float64 // revenue of a hit per unit of customs value, at training time
	meanRevenue   float64 // mean revenue of a hit, at training time
	expectRevenue bool
}

type labelled struct {
	X    []float32
	Y, W float32
}

type modelStage struct {
	cfg   config.Model
	store *detectors.Store
	sync  bool

	cur atomic.Pointer[Trained]

	assessed  [3]atomic.Uint64 // by stratum
	inspected [3]atomic.Uint64
	unmatched atomic.Uint64 // outcomes whose features were not (or no longer) kept

	mu        sync.Mutex // guards what follows
	lay       *layout
	window    []labelled
	head      int // next slot once the window is full
	labels    int
	lastTrain int
	training  bool
	floor     int // labels of a loaded model, which a training must match to replace it
	glob      entityStats
	trainWG   sync.WaitGroup
	onTrained func(*Trained, error)

	base atomic.Uint64 // float64 bits: the overall weighted hit rate
}

var layouts sync.Map // joined names -> *layout, so equal layouts are one pointer

func internLayout(dets []string, measures [][]detectors.Measure) *layout {
	l := newLayout(dets, measures)
	key := strings.Join(l.names, "\x00")
	v, _ := layouts.LoadOrStore(key, l)
	return v.(*layout)
}

func newModelStage(cfg config.Model, store *detectors.Store, lay *layout) *modelStage {
	ms := &modelStage{cfg: cfg, store: store, lay: lay}
	ms.base.Store(math.Float64bits(0.05))
	return ms
}

func (ms *modelStage) baseRate() float64 { return math.Float64frombits(ms.base.Load()) }

// setBase sets the overall hit rate from the weighted counts (a Laplace
// estimate, so that it is never 0 or 1). ms.mu must be held.
func (ms *modelStage) setBase() {
	ms.base.Store(math.Float64bits((ms.glob.hits + 1) / (ms.glob.inspections + 2)))
}

// setLayout is called on reload: a new feature layout empties the window (its
// rows no longer fit) and retires the model.
func (ms *modelStage) setLayout(cfg config.Model, lay *layout) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.cfg = cfg
	if lay == ms.lay {
		return
	}
	ms.lay, ms.window, ms.head, ms.labels, ms.lastTrain = lay, nil, 0, 0, 0
	ms.cur.Store(nil)
}

// featurize fills x (len(lay.names)) and the entities' ids and stats.
func (ms *modelStage) featurize(lay *layout, d *declaration.Declaration, raw []float64, measurers []detectors.Measurer, ruleScore float64, aeo bool,
	x []float64, ids []string, stats []entityStats) {
	x[0] = ruleScore
	for i, r := range raw {
		x[lay.detOff+i] = r
	}
	for i, m := range measurers {
		if m != nil {
			m.Measure(d, x[lay.measOff[i]:lay.measOff[i]+lay.measLen[i]])
		}
	}
	entityIDs(d, ids)
	base := ms.baseRate()
	prior := ms.cfg.Prior
	var kb [96]byte
	var vb [32]byte
	for k := range entityKinds {
		stats[k] = entityStats{}
		if ids[k] != "" {
			if v, ok := ms.store.Get(vb[:0], entityKey(kb[:0], k, ids[k])); ok {
				stats[k].decode(v)
			}
		}
		st := &stats[k]
		x[lay.entRate[k]] = math.NaN()
		if st.inspections > 0 {
			x[lay.entRate[k]] = (st.hits + prior*base) / (st.inspections + prior)
		}
		x[lay.entN[k]] = math.Log1p(st.inspections)
		if j := lay.entSeen[k]; j >= 0 {
			x[j] = math.Log1p(st.seen)
		}
	}
	ownValues(d, aeo, x[lay.ownOff:])
}

// remember appends the features of an assessed declaration to b (the
// declaration record's model section, kept until its outcome) and counts
// it in its stratum. (countSeen counts it for the parties.)
func (ms *modelStage) remember(b []byte, d *declaration.Declaration, stratum declaration.Channel, x []float64, ids []string) []byte {
	ms.assessed[stratum].Add(1)
	return appendPending(b, stratum, x, d.TotalValue(), ids)
}

// A pending record: the stratum (with compactPending set), the features as
// binary16 (toHalf), the declaration's total value as float32, then the
// entity ids, each with its length, but for those that derive from others
// as entityIDs makes them (hs4, hs6_origin, importer_hs6), which a bit in
// one byte before the ids stands for. Records without compactPending (from
// before) hold float32 features and every id.
const compactPending = 0x80

// derivedIDs are the entity kinds whose id derives from others'.
var derivedIDs = [...]int{entHS4, entHS6Origin, entImporterHS6}

// derivedBit is kind k's bit in the pending record's byte of ids left out
// (0 for a kind whose id does not derive from others).
func derivedBit(k int) byte {
	for i, dk := range derivedIDs {
		if dk == k {
			return 1 << i
		}
	}
	return 0
}

func deriveID(k int, ids []string) string {
	hs6 := ids[entHS6]
	switch k {
	case entHS4:
		if len(hs6) < 4 {
			return ""
		}
		return hs6[:4]
	case entHS6Origin:
		return hs6 + "/" + ids[entOrigin]
	}
	if ids[entImporter] == "" {
		return ""
	}
	return ids[entImporter] + "/" + hs6
}

// isDerived reports whether ids[k] is what deriveID(k, ids) gives, without
// building it.
func isDerived(k int, ids []string) bool {
	id, hs6 := ids[k], ids[entHS6]
	switch k {
	case entHS4:
		return len(hs6) >= 4 && id == hs6[:4] || len(hs6) < 4 && id == ""
	case entHS6Origin:
		return joined(id, hs6, ids[entOrigin])
	}
	if ids[entImporter] == "" {
		return id == ""
	}
	return joined(id, ids[entImporter], hs6)
}

// joined reports whether s is a + "/" + b.
func joined(s, a, b string) bool {
	return len(s) == len(a)+1+len(b) && s[:len(a)] == a && s[len(a)] == '/' && s[len(a)+1:] == b
}

func appendPending(b []byte, stratum declaration.Channel, x []float64, value float64, ids []string) []byte {
	b = append(b, byte(stratum)|compactPending)
	b = binary.AppendUvarint(b, uint64(len(x)))
	n := len(b)
	b = slices.Grow(b, 2*len(x)+4)[:n+2*len(x)]
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[n+2*i:], toHalf(float32(v)))
	}
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(value)))
	var derived byte
	for _, k := range derivedIDs {
		if isDerived(k, ids) {
			derived |= derivedBit(k)
		}
	}
	b = append(b, derived)
	for k, id := range ids {
		if derived&derivedBit(k) != 0 {
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
	}
	return b
}

// countSeen counts an assessed declaration as seen for its parties (ids as
// entityIDs gives them). The counts are shared across importers (a declarant
// works for many): a micro-batch counts them in input order at its end.
// sc is scratch space (the store's read-modify-write takes its buffers to
// the heap: sc lives there already, with the work).
func (ms *modelStage) countSeen(ids []string, sc *seenScratch) {
	var kb [96]byte
	buf := sc.old[:0]
	for k := range entityKinds {
		if !seenKind[k] || ids[k] == "" {
			continue
		}
		buf = ms.store.Update(entityKey(kb[:0], k, ids[k]), buf, sc.addSeen)
	}
}

// countSeenEach is countSeen for the declarations of a micro-batch (ws,
// in input order) at its end, on every core (Store.UpdateEach): each
// party's count is updated in input order, so the store ends as after
// countSeen of one declaration after the other.
func (ms *modelStage) countSeenEach(ws []work, sb *seenBatch) {
	var kb [96]byte
	sb.arena, sb.spans = sb.arena[:0], sb.spans[:0]
	for i := range ws {
		w := &ws[i]
		if w.a.Repeat || w.x == nil {
			continue
		}
		ids := w.ids[:len(entityKinds)]
		for k := range entityKinds {
			if seenKind[k] && ids[k] != "" {
				at := len(sb.arena)
				sb.arena = append(sb.arena, entityKey(kb[:0], k, ids[k])...)
				sb.spans = append(sb.spans, [2]int32{int32(at), int32(len(sb.arena))})
			}
		}
	}
	n := len(sb.spans)
	sb.keys, sb.bufs = slices.Grow(sb.keys[:0], n)[:n], slices.Grow(sb.bufs[:0], n)[:n]
	if len(sb.scratch) < n {
		sb.scratch = make([]seenScratch, n)
	}
	for i, sp := range sb.spans {
		sb.keys[i], sb.bufs[i] = sb.arena[sp[0]:sp[1]:sp[1]], sb.scratch[i].old[:0]
	}
	ms.store.UpdateEach(sb.keys, sb.bufs, func(i int, old []byte) []byte { return sb.scratch[i].addSeen(old) })
}

// seenBatch is countSeenEach's scratch space, kept between batches.
type seenBatch struct {
	arena   []byte     // the keys, one after the other
	spans   [][2]int32 // each key's place in arena
	keys    [][]byte
	bufs    [][]byte
	scratch []seenScratch
}

// seenScratch is scratch space for a read-modify-write of an entity's
// record.
type seenScratch struct {
	old [32]byte
	new [entityRecordSize]byte
}

// addSeen is an entity's record old (nil: none) with one more declaration
// seen, in sc.new (the store copies it).
func (sc *seenScratch) addSeen(old []byte) []byte {
	var st entityStats
	st.decode(old)
	st.seen++
	return st.encode(sc.new[:0])
}

type pending struct {
	stratum declaration.Channel
	x       []float32
	value   float64
	ids     []string
}

var errBadPending = errors.New("corrupt pending record")

func decodePending(b []byte) (p pending, err error) {
	if len(b) < 2 || b[0]&^compactPending > 2 {
		return p, errBadPending
	}
	compact := b[0]&compactPending != 0
	width := 4
	if compact {
		width = 2
	}
	p.stratum = declaration.Channel(b[0] &^ compactPending)
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > 4096 || len(b) < 1+k+width*int(n)+4 {
		return p, errBadPending
	}
	b = b[1+k:]
	p.x = make([]float32, n)
	for i := range p.x {
		if compact {
			p.x[i] = fromHalf(binary.LittleEndian.Uint16(b[2*i:]))
		} else {
			p.x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	b = b[width*int(n):]
	p.value = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	b = b[4:]
	var derived byte
	if compact {
		if len(b) == 0 || b[0] >= 1<<len(derivedIDs) {
			return p, errBadPending
		}
		derived, b = b[0], b[1:]
	}
	p.ids = make([]string, 0, len(entityKinds))
	for k := range entityKinds {
		if derived&derivedBit(k) != 0 {
			p.ids = append(p.ids, "") // filled in below, from the others
			continue
		}
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return p, errBadPending
		}
		p.ids = append(p.ids, string(b[n:n+int(l)]))
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return p, errBadPending
	}
	for _, k := range derivedIDs {
		if derived&derivedBit(k) != 0 {
			p.ids[k] = deriveID(k, p.ids)
		}
	}
	return p, nil
}

// weight is the inverse selection-probability weight of an outcome of
// stratum s.
func (ms *modelStage) weight(s declaration.Channel) float64 {
	rate := func(s int) float64 {
		a := ms.assessed[s].Load()
		if a < 100 {
			return math.NaN()
		}
		return float64(ms.inspected[s].Load()) / float64(a)
	}
	own := rate(int(s))
	if math.IsNaN(own) || own <= 0 {
		return 1
	}
	top := own
	for i := range ms.assessed {
		if r := rate(i); r > top {
			top = r
		}
	}
	return min(max(top/own, 1), ms.cfg.MaxWeight)
}

// outcome learns from an inspection outcome, with the model's section of
// its declaration's record (raw; nil when none is kept).
func (ms *modelStage) outcome(o *declaration.Outcome, raw []byte) {
	p, err := decodePending(raw)
	if err != nil {
		// The declaration was never assessed here, or its features were
		// evicted: only the importer the outcome names learns.
		ms.unmatched.Add(1)
		if o.ImporterID != "" {
			ms.updateEntity(0, o.ImporterID, o, 1, 0)
		}
		return
	}
	ms.inspected[p.stratum].Add(1)
	w := ms.weight(p.stratum)
	for k, id := range p.ids {
		if id != "" {
			ms.updateEntity(k, id, o, w, p.value)
		}
	}
	y := float32(0)
	if o.Hit {
		y = 1
	}
	ms.mu.Lock()
	ms.glob.add(o, w, p.value)
	ms.setBase()
	if len(p.x) != len(ms.lay.names) {
		ms.mu.Unlock()
		return
	}
	row := labelled{X: p.x, Y: y, W: float32(w)}
	if len(ms.window) < ms.cfg.Window {
		ms.window = append(ms.window, row)
	} else {
		ms.window[ms.head] = row
		ms.head = (ms.head + 1) % len(ms.window)
	}
	ms.labels++
	due := !ms.training && ms.labels >= ms.cfg.MinLabels &&
		(ms.lastTrain == 0 || ms.labels-ms.lastTrain >= min(ms.cfg.RetrainLabels, int(math.Ceil(ms.cfg.RetrainGrowth*float64(ms.lastTrain)))))
	if due {
		ms.training = true
		ms.lastTrain = ms.labels
	}
	ms.mu.Unlock()
	if !due {
		return
	}
	if ms.sync {
		ms.train()
		return
	}
	ms.trainWG.Add(1)
	go func() {
		defer ms.trainWG.Done()
		ms.train()
	}()
}

func (ms *modelStage) updateEntity(k int, id string, o *declaration.Outcome, w, value float64) {
	var kb [96]byte
	sc := new(seenScratch) // on the heap anyway (see countSeen): one allocation
	ms.store.Update(entityKey(kb[:0], k, id), sc.old[:0], func(old []byte) []byte {
		var st entityStats
		st.decode(old)
		st.add(o, w, value)
		return st.encode(sc.new[:0]) // the store copies it
	})
}

// rows is a copy of the training window, oldest first. ms.mu must be held.
func (ms *modelStage) rows() []labelled {
	rows := make([]labelled, 0, len(ms.window))
	return append(append(rows, ms.window[ms.head:]...), ms.window[:ms.head]...)
}

// train fits a model on the window as it is now and installs it.
func (ms *modelStage) train() (*Trained, error) {
	ms.mu.Lock()
	rows := ms.rows()
	lay, cfg, glob := ms.lay, ms.cfg, ms.glob
	ms.mu.Unlock()
	defer func() {
		ms.mu.Lock()
		ms.training = false
		ms.mu.Unlock()
	}()
	t, err := fit(rows, lay, cfg)
	if err == nil {
		if glob.hits > 0 && glob.hitValue > 0 {
			t.revPerValue, t.meanRevenue = glob.revenue/glob.hitValue, glob.revenue/glob.hits
		}
		ms.mu.Lock()
		// A new model is installed unless a reload retired its layout
		// meanwhile, it learned from fewer labels than a model loaded from
		// a file, or it does not beat the rule score while the current
		// model did: an active model is not retired for an inactive one,
		// so the score does not switch scales back and forth.
		cur := ms.cur.Load()
		keep := cur != nil && cur.Active && !t.Active
		if lay == ms.lay && t.Labels >= ms.floor && !keep {
			ms.cur.Store(t)
		}
		ms.mu.Unlock()
	}
	if ms.onTrained != nil {
		ms.onTrained(t, err)
	}
	return t, err
}

// fit trains trees on rows (oldest first) and judges them on the newest.
func fit(rows []labelled, lay *layout, cfg config.Model) (*Trained, error) {
	ds := gbdt.Dataset{Names: lay.names, X: make([][]float64, len(rows)), Y: make([]float64, len(rows)), W: make([]float64, len(rows))}
	flat := make([]float64, len(rows)*len(lay.names))
	for i, r := range rows {
		x := flat[i*len(lay.names) : (i+1)*len(lay.names)]
		for j, v := range r.X {
			x[j] = float64(v)
			if math.IsInf(x[j], 0) {
				x[j] = math.NaN()
			}
		}
		ds.X[i], ds.Y[i], ds.W[i] = x, float64(r.Y), float64(r.W)
	}
	// The trees start from the calibrated rule score and learn corrections
	// to it: with few labels early stopping leaves the rule ranking nearly
	// as it was, with many the trees take over.
	ruleA, ruleB := platt(column(ds.X, 0), ds.Y, ds.W)
	ds.Offset = make([]float64, len(rows))
	for i := range ds.Offset {
		ds.Offset[i] = ruleA + ruleB*math.Log1p(max(ds.X[i][0], 0))
	}
	p := gbdt.Params{Trees: cfg.Trees, Depth: cfg.Depth, LearningRate: cfg.LearningRate, L2: cfg.L2, MinLeafWeight: cfg.MinLeafWeight,
		Bins: cfg.Bins, EarlyStoppingRounds: cfg.EarlyStoppingRounds, ValidationShare: cfg.ValidationShare}
	m, rep, err := gbdt.Train(ds, p)
	if err != nil {
		return nil, fmt.Errorf("training the model on %d labels: %w", len(rows), err)
	}
	t := &Trained{Labels: len(rows), Report: rep, At: time.Now(), model: m, lay: lay, RuleAUC: math.NaN(), Active: true,
		expectRevenue: cfg.RankBy == "expected_revenue"}
	if rep.ValidRows > 0 {
		tail := len(rows) - rep.ValidRows
		t.RuleAUC = gbdt.AUC(column(ds.X[tail:], 0), ds.Y[tail:], ds.W[tail:])
		t.Active = rep.ValidAUC > t.RuleAUC
	}
	for i := range ds.Y {
		t.Hits += ds.W[i] * ds.Y[i]
	}
	t.Weight = 1
	if cfg.BlendHits > 0 {
		t.Weight = t.Hits / (t.Hits + cfg.BlendHits)
	}
	t.ruleA, t.ruleB = ruleA, ruleB
	t.Name = modelName(m)
	return t, nil
}

// platt fits P(hit) = σ(a + b·log1p(score)) by Newton's method on the
// weighted log-loss (a little ridge on b keeps it finite when the score
// separates the labels perfectly).
func platt(score, y, w []float64) (a, b float64) {
	var sw, sy float64
	for i := range y {
		sw += w[i]
		sy += w[i] * y[i]
	}
	p0 := min(max(sy/sw, 1e-6), 1-1e-6)
	a = math.Log(p0 / (1 - p0))
	for iter := 0; iter < 50; iter++ {
		var ga, gb, haa, hab, hbb float64
		for i := range y {
			g := math.Log1p(max(score[i], 0))
			p := 1 / (1 + math.Exp(-(a + b*g)))
			r := w[i] * (p - y[i])
			h := w[i] * max(p*(1-p), 1e-12)
			ga, gb = ga+r, gb+r*g
			haa, hab, hbb = haa+h, hab+h*g, hbb+h*g*g
		}
		gb += 1e-3 * b
		hbb += 1e-3
		det := haa*hbb - hab*hab
		if det <= 0 {
			break
		}
		da, db := (hbb*ga-hab*gb)/det, (haa*gb-hab*ga)/det
		a, b = a-da, b-db
		if math.Abs(da)+math.Abs(db) < 1e-9 {
			break
		}
	}
	return a, b
}

func column(x [][]float64, j int) []float64 {
	out := make([]float64, len(x))
	for i := range x {
		out[i] = x[i][j]
	}
	return out
}

func modelName(m *gbdt.Model) string {
	b, _ := m.MarshalBinary()
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], xxhash.Sum64(b))
	return "gbdt@" + hex.EncodeToString(h[:4])
}

// scoreWith turns the model's view of a declaration into the assessment's
// score, probability and explanation. x must be the layout's features.
func (t *Trained) scoreWith(d *declaration.Declaration, x []float64, ids []string, stats []entityStats, base float64,
	a *declaration.Assessment, aeoFactor float64, aeo bool) {
	lay := t.lay
	var cbuf [128]float64
	contrib := floats(cbuf[:], len(x))
	// The log-odds are the calibrated rule score plus the trees'
	// corrections, counted with the blend weight; the rule score's part is
	// credited to the rule score, so bias + Σ contributions is the final
	// log-odds.
	// A model that did not beat the rule score leaves only the calibration.
	var bias float64
	if t.Active {
		bias = t.model.Contributions(x, contrib)
		bias = t.Weight*bias + t.ruleA
		for i := range contrib {
			contrib[i] *= t.Weight
		}
	} else {
		clear(contrib)
		bias = t.ruleA
	}
	contrib[0] += t.ruleB * math.Log1p(max(x[0], 0))
	logit := bias
	for _, c := range contrib {
		logit += c
	}
	p := 1 / (1 + math.Exp(-logit))
	score := 100 * p
	expected := t.expectRevenue && t.meanRevenue > 0
	var ev float64
	if expected {
		ev = p * t.revPerValue * d.TotalValue()
		score = 100 * ev / (ev + t.meanRevenue)
	}
	if aeo {
		score *= aeoFactor
	}
	a.Score, a.Model, a.Probability = score, t.Name, p

	// Sum the contributions by what they are about (the layout's spans): a
	// detector, an entity, a figure of the declaration, the rule score.
	var sbuf [64]float64
	sums := sbuf[:0]
	var positive float64
	for _, sp := range lay.spans {
		var sum float64
		for _, c := range contrib[sp.at:sp.end] {
			sum += c
		}
		sums = append(sums, sum)
		positive += max(sum, 0)
	}
	// Findings' points: each detector's finding gets the share of the score
	// its strength and measures pushed up, and the rule score's share is
	// split among the findings that made the rule score, by their rule
	// points; the model's own finding holds the rest.
	rest := score
	var rb [32]float64
	rulePoints := floats(rb[:], len(a.Findings))
	var ruleSum float64
	for j := range a.Findings {
		rulePoints[j] = a.Findings[j].Points
		ruleSum += rulePoints[j]
		a.Findings[j].Points = 0
	}
	if positive > 0 {
		var pbuf [32]float64
		per := floats(pbuf[:], len(lay.detNames))
		clear(per)
		for i, sp := range lay.spans {
			if di := lay.featDet[sp.at]; di >= 0 && sums[i] > 0 {
				per[di] += sums[i]
			}
		}
		for di, v := range per {
			if v == 0 {
				continue
			}
			for j := range a.Findings {
				if a.Findings[j].Detector == lay.detNames[di] {
					a.Findings[j].Points = score * v / positive
					rest -= a.Findings[j].Points
					break
				}
			}
		}
		for i, sp := range lay.spans {
			if sp.g.kind != groupRule || sums[i] <= 0 || ruleSum <= 0 {
				continue
			}
			share := score * sums[i] / positive
			for j, rp := range rulePoints {
				if rp > 0 {
					pts := share * rp / ruleSum
					a.Findings[j].Points += pts
					rest -= pts
				}
			}
		}
	}
	var tb [3]int
	top := topIndexes(sums, 0.05, tb[:0])
	var reason [320]byte
	b := append(reason[:0], "learned model: P(hit) "...)
	b = detectors.AppendNumber(b, p)
	b = append(b, " against "...)
	b = detectors.AppendNumber(b, base)
	b = append(b, " overall"...)
	if expected {
		b = detectors.AppendNumber(append(b, ", expected revenue "...), ev)
	}
	for k, gi := range top {
		g := lay.spans[gi]
		if k == 0 {
			b = append(b, "; raised most by "...)
		} else {
			b = append(b, "; "...)
		}
		switch g.g.kind {
		case groupRule:
			b = appendScore(append(b, "the rule score "...), x[g.at])
		case groupDetector:
			b = detectors.AppendNumber(append(append(b, lay.detNames[g.g.index]...), " strength "...), x[g.at])
		case groupMeasure:
			b = append(append(append(append(b, lay.detNames[lay.featDet[g.at]]...), ' '), lay.labels[g.at]...), ' ')
			b = detectors.AppendNumber(b, x[g.at])
		case groupEntity:
			b = appendEntity(b, g.g.index, ids[g.g.index], stats[g.g.index])
		case groupOwn:
			b = appendOwn(b, g.g.index, d, x[g.at])
		}
		b = append(detectors.AppendNumber(append(b, " (+"...), sums[gi]), " log-odds)"...)
	}
	if len(top) == 0 {
		b = append(b, "; nothing raised it"...)
	}
	a.Findings = append(a.Findings, declaration.Finding{Detector: "model", Score: p, Points: max(rest, 0), Reason: string(b)})
	sortByPoints(a.Findings)
}

// TrainInline makes the engine train its model in the goroutine that applies
// the outcome that makes a training due, so that replay is deterministic.
func (e *Engine) TrainInline() { e.model.sync = true }

// OnModelTrained registers f to hear of every training (metrics, logs).
func (e *Engine) OnModelTrained(f func(t *Trained, err error)) { e.model.onTrained = f }

// WaitTraining waits for a background training to finish.
func (e *Engine) WaitTraining() { e.model.trainWG.Wait() }

// Model is the current model, nil before the first training.
func (e *Engine) Model() *Trained { return e.model.cur.Load() }

// ModelLabels is the number of labelled declarations learned from, and the
// outcomes that matched no remembered declaration.
func (e *Engine) ModelLabels() (labels int, unmatched uint64) {
	e.model.mu.Lock()
	defer e.model.mu.Unlock()
	return e.model.labels, e.model.unmatched.Load()
}

// TrainNow trains a model on the labels in the window now, whatever the
// schedule, and installs it (riskmon train).
func (e *Engine) TrainNow() (*Trained, error) {
	e.model.mu.Lock()
	if len(e.model.window) == 0 {
		e.model.mu.Unlock()
		return nil, errors.New("no labelled declarations: no outcome matched a declaration of the input")
	}
	e.model.training = true
	e.model.lastTrain = e.model.labels
	e.model.mu.Unlock()
	return e.model.train()
}

// A model file is a header line, the model's metadata as JSON (what the
// engine needs besides the trees: the rule score's calibration, the blend
// weight, the revenue figures) and the trees in the gbdt package's format.
const modelMagic = "riskmon-model/v1\n"

type modelMeta struct {
	Active      bool      `json:"active"`
	Labels      int       `json:"labels"`
	Hits        float64   `json:"hits"`
	Weight      float64   `json:"weight"`
	RuleA       float64   `json:"rule_a"`
	RuleB       float64   `json:"rule_b"`
	RevPerValue float64   `json:"revenue_per_value"`
	MeanRevenue float64   `json:"mean_revenue"`
	TrainedAt   time.Time `json:"trained_at"`
	ValidAUC    float64   `json:"validation_auc"`
	RuleAUC     float64   `json:"rule_auc"`
}

// MarshalBinary writes the model file.
func (t *Trained) MarshalBinary() ([]byte, error) {
	meta, err := json.Marshal(modelMeta{Active: t.Active, Labels: t.Labels, Hits: t.Hits, Weight: t.Weight, RuleA: t.ruleA, RuleB: t.ruleB,
		RevPerValue: t.revPerValue, MeanRevenue: t.meanRevenue, TrainedAt: t.At.UTC(), ValidAUC: finite(t.Report.ValidAUC), RuleAUC: finite(t.RuleAUC)})
	if err != nil {
		return nil, err
	}
	trees, err := t.model.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := append([]byte(modelMagic), binary.AppendUvarint(nil, uint64(len(meta)))...)
	return append(append(b, meta...), trees...), nil
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// LoadModel installs a model written by Trained.MarshalBinary (riskmon
// train, model.file, checkpoints). Its features must be this
// configuration's. A model trained here later replaces it only once it has
// learned from as many labels.
func (e *Engine) LoadModel(b []byte, source string) (*Trained, error) {
	t, err := e.decodeModel(b, source)
	if err != nil {
		return nil, err
	}
	e.model.mu.Lock()
	e.model.floor = t.Labels
	e.model.mu.Unlock()
	e.model.cur.Store(t)
	return t, nil
}

func (e *Engine) decodeModel(b []byte, source string) (*Trained, error) {
	if !bytes.HasPrefix(b, []byte(modelMagic)) {
		return nil, fmt.Errorf("model %s: not a riskmon model file", source)
	}
	b = b[len(modelMagic):]
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, fmt.Errorf("model %s: truncated", source)
	}
	var meta modelMeta
	if err := json.Unmarshal(b[k:k+int(n)], &meta); err != nil {
		return nil, fmt.Errorf("model %s: metadata: %w", source, err)
	}
	var m gbdt.Model
	if err := m.UnmarshalBinary(b[k+int(n):]); err != nil {
		return nil, fmt.Errorf("model %s: %w", source, err)
	}
	rs := e.rs.Load()
	if !rs.lay.same(m.Names()) {
		return nil, fmt.Errorf("model %s was trained on %d features that are not this configuration's %d: train it again under this configuration",
			source, len(m.Names()), len(rs.lay.names))
	}
	if meta.Weight < 0 || meta.Weight > 1 {
		return nil, fmt.Errorf("model %s: weight %g is not in [0, 1]", source, meta.Weight)
	}
	t := &Trained{Name: modelName(&m), Active: meta.Active, Labels: meta.Labels, Hits: meta.Hits, Weight: meta.Weight, At: meta.TrainedAt,
		FromFile: source, model: &m, lay: rs.lay, RuleAUC: meta.RuleAUC, ruleA: meta.RuleA, ruleB: meta.RuleB,
		revPerValue: meta.RevPerValue, meanRevenue: meta.MeanRevenue, expectRevenue: rs.cfg.Model.RankBy == "expected_revenue"}
	t.Report.Trees = m.NumTrees()
	t.Report.ValidAUC, t.Report.ValidLogLoss, t.Report.TrainLogLoss = meta.ValidAUC, math.NaN(), math.NaN()
	return t, nil
}

// String is one line on the training, for logs.
func (t *Trained) String() string {
	state := "inactive (no better than the rule score)"
	if t.Active {
		state = "active, weight " + detectors.FormatNumber(t.Weight)
	}
	if t.FromFile != "" { // a model file keeps neither the training's time nor its log-loss
		return fmt.Sprintf("%s loaded from %s, trained on %d labels (%.0f weighted hits) at %s, %d trees: validation AUC %.3f (rule score %.3f); %s",
			t.Name, t.FromFile, t.Labels, t.Hits, t.At.UTC().Format(time.RFC3339), t.Report.Trees, t.Report.ValidAUC, t.RuleAUC, state)
	}
	return fmt.Sprintf("%s trained on %d labels (%.0f weighted hits), %d trees in %v: validation AUC %.3f (rule score %.3f), log-loss %.4f; %s",
		t.Name, t.Labels, t.Hits, t.Report.Trees, t.Report.Duration.Round(time.Millisecond), t.Report.ValidAUC, t.RuleAUC, t.Report.ValidLogLoss, state)
}

// modelState is the model stage's part of a checkpoint besides the store.
type modelState struct {
	Names               []string // the features of Rows and of the model
	Rows                []labelled
	Labels, LastTrain   int
	Glob                [5]float64
	Assessed, Inspected [3]uint64
	Unmatched           uint64
}

func (ms *modelStage) save(dir string) error {
	if t := ms.cur.Load(); t != nil {
		b, err := t.MarshalBinary()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "model.bin"), b, 0o644); err != nil {
			return err
		}
	}
	ms.mu.Lock()
	st := modelState{Names: ms.lay.names, Labels: ms.labels, LastTrain: ms.lastTrain, Unmatched: ms.unmatched.Load(),
		Glob: [5]float64{ms.glob.seen, ms.glob.inspections, ms.glob.hits, ms.glob.revenue, ms.glob.hitValue}}
	st.Rows = ms.rows()
	ms.mu.Unlock()
	for i := range st.Assessed {
		st.Assessed[i], st.Inspected[i] = ms.assessed[i].Load(), ms.inspected[i].Load()
	}
	f, err := os.Create(filepath.Join(dir, "model-window.gob"))
	if err != nil {
		return err
	}
	if err := gob.NewEncoder(f).Encode(&st); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// restore reads the model stage's part of a checkpoint. The entity hit
// rates and counts always carry over; the training window and the model only
// when they were learned on this layout's features (kept reports it).
func (ms *modelStage) restore(dir string, e *Engine) (kept bool, err error) {
	f, err := os.Open(filepath.Join(dir, "model-window.gob"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // a checkpoint from before the model stage
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	var st modelState
	if err := gob.NewDecoder(f).Decode(&st); err != nil {
		return false, err
	}
	kept = ms.lay.same(st.Names)
	if !kept {
		st.Rows, st.Labels, st.LastTrain = nil, 0, 0
	}
	ms.mu.Lock()
	ms.window, ms.head, ms.labels, ms.lastTrain = st.Rows, 0, st.Labels, st.LastTrain
	if len(ms.window) > ms.cfg.Window {
		ms.window = ms.window[len(ms.window)-ms.cfg.Window:]
	}
	g := st.Glob
	ms.glob = entityStats{seen: g[0], inspections: g[1], hits: g[2], revenue: g[3], hitValue: g[4]}
	ms.setBase()
	ms.mu.Unlock()
	ms.unmatched.Store(st.Unmatched)
	for i := range st.Assessed {
		ms.assessed[i].Store(st.Assessed[i])
		ms.inspected[i].Store(st.Inspected[i])
	}
	if !kept {
		return false, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "model.bin"))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	t, err := e.decodeModel(b, "checkpoint")
	if err != nil {
		return false, err
	}
	t.FromFile = ""
	ms.cur.Store(t)
	return true, nil
}

// topIndexes appends to dst (up to its capacity) the indexes of the largest
// values of at least floor, largest first, the earlier index first among
// equals, without sorting them all.
func topIndexes(v []float64, floor float64, dst []int) []int {
	k := cap(dst)
	for i, x := range v {
		if x < floor {
			continue
		}
		j := len(dst)
		for j > 0 && x > v[dst[j-1]] {
			j--
		}
		if j == k {
			continue
		}
		if len(dst) < k {
			dst = append(dst, 0)
		}
		copy(dst[j+1:], dst[j:len(dst)-1])
		dst[j] = i
	}
	return dst
}

// floats is buf[:n] when it is large enough, else a new slice: scratch
// space on the stack for the usual sizes, without a limit on the others.
func floats(buf []float64, n int) []float64 {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]float64, n)
}
