// Package engine is riskmon's engine: every enabled detector scores a
// declaration, the findings are calibrated and combined into a rule score,
// the learned model (model.go, on package gbdt) turns the evidence into
// P(hit) and explains it, a channel is chosen (thresholds, forcing
// profiles, random compliance selection), and then the detectors learn from
// the declaration; inspection outcomes are handed to the detectors that
// learn from them and become the model's training rows. It also saves and
// restores the learned state (checkpoints).
//
// The engine knows no transport: it imports no Kafka client, no HTTP server
// and no metrics library. Stream mode (package stream) and batch mode
// (package batch) are the sources and sinks around it.
package engine

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
)

// Engine scores declarations with every enabled detector, turns the findings
// into an assessment, and then lets every detector learn from the
// declaration. The active ruleset sits behind one atomic pointer, so a reload
// swaps it between two declarations.
//
// Assess may be called concurrently for declarations of different importers;
// calls for one importer must come from one goroutine, in lodgement order
// (route by importer id). Results are deterministic when declarations are
// assessed one at a time in a fixed order, as replay does.
type Engine struct {
	rs     atomic.Pointer[ruleset]
	store  *detectors.Store
	shared *detectors.Table
	// Now stamps assessed_at; tests replace it.
	Now func() time.Time

	observe atomic.Pointer[func(detector string, d time.Duration)]
	seq     atomic.Uint64
	model   *modelStage
	rates   rateKeeper

	batchWork []work              // AssessBatch's, kept between batches
	batchIDs  map[string]struct{} // AssessBatch's, kept between batches
	batchSeen seenBatch           // AssessBatch's, kept between batches
	repeats   atomic.Uint64       // declarations assessed again, not learned (Repeats)

	handover HandoverOffsets // the restored checkpoint's (CheckpointHandover)
}

// ObserveDetectors asks the engine to time each detector (score and learn) on
// 1 declaration in 16 and report it to f (stream mode's metrics).
func (e *Engine) ObserveDetectors(f func(detector string, d time.Duration)) { e.observe.Store(&f) }

type ruleset struct {
	cfg  *config.Config
	dets []detectors.Detector
	cals []*calibrator // one per detector
	// tags are the detectors' section tags in a declaration's record
	// (declrecord.go): an outcome learner's section is tagged by its name.
	tags      []uint32
	aeo       map[string]struct{}
	randCut   uint64 // a declaration is sampled when its hash is below this
	randChan  declaration.Channel
	randSalt  string
	detectors []string
	measurers []detectors.Measurer // per detector, nil when it measures nothing
	lay       *layout              // the model's features for these detectors
	kind      map[string]string    // each enabled detector's kind, by name

	custom  bool // detectors given by the caller (NewWithDetectors)
	batchMu sync.Mutex
	batch   *batchWorkers // the detectors again for each micro-batch worker
	idle    []*detSet     // the detectors again for Assess, not in use (under batchMu)
}

// NewEngine builds the detectors of cfg on a new state store.
func New(cfg *config.Config) (*Engine, error) {
	store, err := detectors.OpenStore(cfg.State.CapacityMB, cfg.State.PendingMB, cfg.State.PendingDir)
	if err != nil {
		return nil, err
	}
	e, err := newEngine(cfg, store, detectors.NewTable(cfg.State.SharedEntries))
	if err != nil {
		store.Close()
	}
	return e, err
}

// Close releases the state store's files (state.pending_dir); the engine
// is not used after.
func (e *Engine) Close() { e.store.Close() }

func newEngine(cfg *config.Config, store *detectors.Store, shared *detectors.Table) (*Engine, error) {
	e := &Engine{store: store, shared: shared, Now: time.Now}
	rs, err := e.build(cfg)
	if err != nil {
		return nil, err
	}
	e.rs.Store(rs)
	e.model = newModelStage(cfg.Model, store, rs.lay)
	e.rates.configure(cfg.Scoring.Rates)
	return e, nil
}

// NewWithDetectors builds an engine on cfg that runs the given detectors
// instead of the configuration's, uncalibrated: for tests and for programs
// that embed the engine with detectors of their own.
func NewWithDetectors(cfg *config.Config, dets ...detectors.Detector) (*Engine, error) {
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	rs := e.rs.Load()
	rs.custom = true
	rs.setDetectors(dets, func(detectors.Detector) bool { return false })
	e.model.setLayout(cfg.Model, rs.lay)
	return e, nil
}

func (e *Engine) build(cfg *config.Config) (*ruleset, error) {
	dets, err := detectors.Build(cfg, &detectors.Env{Config: cfg, Store: e.store, Shared: e.shared})
	if err != nil {
		return nil, err
	}
	rs := &ruleset{cfg: cfg, aeo: map[string]struct{}{}, randSalt: cfg.Random.Salt, kind: map[string]string{}}
	for _, dc := range cfg.Detectors {
		if dc.IsEnabled() {
			rs.kind[dc.Name] = dc.Kind
		}
	}
	cal := cfg.Scoring.Calibration
	enabled := map[string]bool{}
	for _, dc := range cfg.Detectors {
		enabled[dc.Name] = cal.Enabled && (dc.Calibrate == nil || *dc.Calibrate)
	}
	rs.setDetectors(dets, func(d detectors.Detector) bool {
		_, fixed := d.(detectors.Uncalibrated)
		return !fixed && enabled[d.Name()]
	})
	if cfg.Scoring.AEOList != "" {
		for _, id := range cfg.Lists[cfg.Scoring.AEOList] {
			rs.aeo[id] = struct{}{}
		}
	}
	rs.randChan, _ = declaration.ParseChannel(cfg.Random.Channel)
	if cfg.Random.Rate >= 1 {
		rs.randCut = math.MaxUint64
	} else {
		rs.randCut = uint64(cfg.Random.Rate * (1 << 63) * 2)
	}
	return rs, nil
}

// setDetectors installs the detectors with their calibrators (calibrated
// or fixed), their section tags, their measurements and the
// model's feature layout for them.
func (rs *ruleset) setDetectors(dets []detectors.Detector, calibrated func(detectors.Detector) bool) {
	cal := rs.cfg.Scoring.Calibration
	rs.dets, rs.cals, rs.detectors = dets, nil, nil
	rs.tags = make([]uint32, len(dets))
	for i, d := range dets {
		rs.cals = append(rs.cals, newCalibrator(cal.FullTail, cal.MinDeclarations, !calibrated(d)))
		rs.detectors = append(rs.detectors, d.Name())
		rs.tags[i] = sectionTag(d.Name())
	}
	rs.measurers = make([]detectors.Measurer, len(rs.dets))
	measures := make([][]detectors.Measure, len(rs.dets))
	for i, d := range rs.dets {
		if m, ok := d.(detectors.Measurer); ok {
			rs.measurers[i], measures[i] = m, m.Measures()
		}
	}
	rs.lay = internLayout(rs.detectors, measures)
}

// Reload swaps in a new configuration between two declarations. The
// detectors' learned state is kept: it lives in the store and the shared
// table under each detector's kind and name, so a detector keeps its history
// when its kind and name are unchanged; calibration counts carry over the
// same way.
// A detector whose parameters changed the shape of its state sees the old
// records as missing ("no history"), never as anomalies.
func (e *Engine) Reload(cfg *config.Config) error {
	_, err := e.ReloadSummary(cfg)
	return err
}

// ReloadChange says what a reload kept of the learned state: the enabled
// detectors that keep theirs (same kind and name), those that start afresh
// (new, renamed or of another kind), those removed, and whether the model
// kept its trees and training window (its features unchanged).
type ReloadChange struct {
	Kept, Fresh, Removed []string
	ModelKept            bool
}

// ReloadSummary is Reload, saying what it kept.
func (e *Engine) ReloadSummary(cfg *config.Config) (ReloadChange, error) {
	old := e.rs.Load()
	rs, err := e.build(cfg)
	if err != nil {
		return ReloadChange{}, err
	}
	var ch ReloadChange
	for _, name := range rs.detectors {
		if k, ok := old.kind[name]; ok && k == rs.kind[name] {
			ch.Kept = append(ch.Kept, name)
		} else {
			ch.Fresh = append(ch.Fresh, name)
		}
	}
	for _, name := range old.detectors {
		if _, ok := rs.kind[name]; !ok {
			ch.Removed = append(ch.Removed, name)
		}
	}
	ch.ModelKept = rs.lay == old.lay
	rs.takeCalibration(old.calibration(), old.kind)
	e.model.setLayout(cfg.Model, rs.lay)
	e.rates.configure(cfg.Scoring.Rates)
	e.rs.Store(rs)
	return ch, nil
}

// calibration is the detectors' calibration counts, by name.
func (rs *ruleset) calibration() map[string]calibratorCounts {
	m := map[string]calibratorCounts{}
	for i, c := range rs.cals {
		var cc calibratorCounts
		cc.N, cc.Tree = c.counts()
		m[rs.detectors[i]] = cc
	}
	return m
}

// takeCalibration starts each detector's calibrator from the counts of the
// detector of the same name, when that one was of the same kind (kinds: by
// name): a reload, or a checkpoint of another ruleset.
func (rs *ruleset) takeCalibration(counts map[string]calibratorCounts, kinds map[string]string) {
	for i, name := range rs.detectors {
		cc, ok := counts[name]
		if !ok || len(cc.Tree) != len(rs.cals[i].tree) || kinds[name] != rs.kind[name] {
			continue
		}
		rs.cals[i].setCounts(cc.N, cc.Tree)
	}
}

// Repeats counts the declarations assessed whose id had been assessed
// before (redelivered or resubmitted): scored again, but not learned from
// again.
func (e *Engine) Repeats() uint64 { return e.repeats.Load() }

// Config returns the active configuration.
func (e *Engine) Config() *config.Config { return e.rs.Load().cfg }

// Detectors names the enabled detectors in configuration order.
func (e *Engine) Detectors() []string { return e.rs.Load().detectors }

// Store is the engine's state store.
func (e *Engine) Store() *detectors.Store { return e.store }

// Shared is the engine's table of shared statistics.
func (e *Engine) Shared() *detectors.Table { return e.shared }

// Assess scores d against the state as it was before d, then lets the
// detectors learn from d.
func (e *Engine) Assess(d *declaration.Declaration) *declaration.Assessment {
	rs := e.rs.Load()
	w := workPool.Get().(*work)
	w.d = d
	ds := e.takeSet(rs)
	a := e.assessTimed(rs, *ds, w).a
	rs.putSet(ds)
	w.d, w.a = nil, nil
	workPool.Put(w)
	return a
}

// takeSet returns a set of the ruleset's detectors that no other goroutine
// uses until putSet: a built detector keeps what it read for the
// declaration in hand (Score's reads, for Measure and Learn), so each
// goroutine that assesses has detectors of its own, as micro-batch and
// stream workers do. Detectors given by the caller (NewWithDetectors) are
// the ruleset's own, shared, as before.
func (e *Engine) takeSet(rs *ruleset) *detSet {
	if rs.custom {
		return &detSet{rs.dets, rs.measurers, e.store}
	}
	rs.batchMu.Lock()
	if n := len(rs.idle); n > 0 {
		ds := rs.idle[n-1]
		rs.idle = rs.idle[:n-1]
		rs.batchMu.Unlock()
		return ds
	}
	rs.batchMu.Unlock()
	ds, ok := e.buildSet(rs, e.store, e.shared)
	if !ok {
		return &detSet{rs.dets, rs.measurers, e.store}
	}
	return &ds
}

// putSet gives back a set that takeSet gave.
func (rs *ruleset) putSet(ds *detSet) {
	if rs.custom {
		return
	}
	rs.batchMu.Lock()
	rs.idle = append(rs.idle, ds)
	rs.batchMu.Unlock()
}

// workPool holds the work of Assess between declarations: it is large
// (scratch space for findings, features and ids).
var workPool = sync.Pool{New: func() any { return new(work) }}

// assessTimed assesses and settles w with the detectors of ds, timing them
// on 1 declaration in 16 for ObserveDetectors.
func (e *Engine) assessTimed(rs *ruleset, ds detSet, w *work) *work {
	observe := e.observe.Load()
	w.timed = observe != nil && e.seq.Add(1)%16 == 0 && len(rs.dets) <= len(w.spent)
	model := e.model.cur.Load()
	e.assess(rs, ds, model, e.rates.thresholds(&rs.cfg.Scoring), w)
	e.settle(rs, model, w, true)
	if w.timed {
		for i, name := range rs.detectors {
			(*observe)(name, w.spent[i])
		}
	}
	return w
}

// work is one declaration on its way through the engine.
type work struct {
	d        *declaration.Declaration
	a        *declaration.Assessment
	raw      []float64 // each detector's strongest raw strength
	rawBuf   [16]float64
	forced   declaration.Channel
	hasForce bool
	stratum  declaration.Channel
	x        []float64 // the model's features, when the model stage is on
	xbuf     [128]float64
	fbuf     [16]detectors.Finding // scratch space for the findings
	seen     seenScratch
	ids      [16]string
	rec      []byte // the declaration's record (declrecord.go), built here
	// repeat: AssessBatch found the declaration's id earlier in the batch
	// (assess also asks the store, and marks the assessment Repeat).
	repeat bool
	stats  [16]entityStats
	timed  bool
	spent  [16]time.Duration
}

// detSet is a ruleset's detectors, their measurements (nil where a
// detector measures nothing) and the store handle they write through: the
// ruleset's own, or a micro-batch worker's copy.
type detSet struct {
	dets  []detectors.Detector
	meas  []detectors.Measurer
	store *detectors.Store
}

// buildSet builds the ruleset's detectors once more, on the given handles
// on the store and the shared table (a micro-batch worker's, or a stream
// worker's), with their measurements; false when they cannot be built
// (detectors given by the caller) or do not match the ruleset's.
func (e *Engine) buildSet(rs *ruleset, store *detectors.Store, shared *detectors.Table) (detSet, bool) {
	if rs.custom {
		return detSet{}, false
	}
	dets, err := detectors.Build(rs.cfg, &detectors.Env{Config: rs.cfg, Store: store, Shared: shared})
	if err != nil || len(dets) != len(rs.dets) {
		return detSet{}, false // built once already from the same configuration: cannot happen
	}
	meas := make([]detectors.Measurer, len(dets))
	for i, d := range dets {
		meas[i], _ = d.(detectors.Measurer)
	}
	return detSet{dets, meas, store}, true
}

// assess scores w.d with the detectors of ds, chooses its channel with the
// cuts c, and lets the detectors learn from it. It reads the shared counts
// (calibration, rate keeper, the model's party counts) but leaves their
// updates to settle.
func (e *Engine) assess(rs *ruleset, ds detSet, model *Trained, c cuts, w *work) {
	d, dets := w.d, ds.dets
	fs := w.fbuf[:0]
	w.raw = w.rawBuf[:0]
	for i, det := range dets {
		start := len(fs)
		var t0 time.Time
		if w.timed {
			t0 = time.Now()
		}
		fs = det.Score(d, fs)
		if w.timed {
			w.spent[i] = time.Since(t0)
		}
		strongest := 0.0
		for j := start; j < len(fs); j++ {
			strongest = max(strongest, fs[j].Score)
			fs[j].Score = rs.cals[i].calibrate(fs[j].Score)
		}
		w.raw = append(w.raw, strongest)
	}
	a := &declaration.Assessment{
		DeclarationID: d.ID, ImporterID: d.Importer.ID, LodgedAt: d.LodgedAt, Ruleset: rs.cfg.Ruleset,
	}
	w.a = a
	var aeo bool
	var combined float64
	w.forced, w.hasForce, aeo, combined = rs.score(d, fs, a)
	w.x = nil
	if rs.cfg.Model.Enabled {
		w.x = floats(w.xbuf[:], len(rs.lay.names))
		clear(w.x) // w may be reused
		e.model.featurize(rs.lay, d, w.raw, ds.meas, combined, aeo, w.x, w.ids[:], w.stats[:])
		if model != nil && model.lay == rs.lay {
			model.scoreWith(d, w.x, w.ids[:len(entityKinds)], w.stats[:], e.model.baseRate(), a, rs.cfg.Scoring.AEOFactor, aeo)
		}
	}
	w.stratum = rs.channel(d, a, w.forced, w.hasForce, c)
	var kb [96]byte
	key := declKey(kb[:0], d.ID)
	// Learned once: a declaration whose id has a record (assessed here
	// before, or handed over) taught the detectors, the model's window and
	// outcome monitoring already. Its first record stays, with the
	// features its outcome will be learned with, the channel its outcome
	// is attributed to and any mark that its outcome was. (What the
	// detectors' Score kept for Learn stays until it is replaced: it is
	// taken only for the same declaration.)
	repeat := w.repeat || ds.store.HasDecl(key)
	w.repeat = false // taken (w is reused)
	if repeat {
		e.repeats.Add(1)
		a.Repeat, a.AssessedAt = true, e.Now()
		return
	}
	rec, at := openSection(w.rec[:0])
	rec = closeSection(rs.appendSelection(rec, a), at, tagSelection)
	if w.x != nil {
		rec, at = openSection(rec)
		rec = closeSection(e.model.remember(rec, d, w.stratum, w.x, w.ids[:len(entityKinds)]), at, tagModel)
	}
	for i, det := range dets {
		var t0 time.Time
		if w.timed {
			t0 = time.Now()
		}
		det.Learn(d, a)
		if l, ok := det.(detectors.OutcomeLearner); ok {
			rec, at = openSection(rec)
			if p := l.Pending(d, a, rec); len(p) >= len(rec) {
				rec = closeSection(p, at, rs.tags[i])
			} else { // not appended to rec: nothing kept
				rec = rec[:at]
			}
		}
		if w.timed {
			w.spent[i] += time.Since(t0)
		}
	}
	ds.store.SetDecl(key, rec)
	w.rec = rec[:0] // grown, kept for the next
	a.AssessedAt = e.Now()
}

// settle counts an assessed declaration in the counts shared by all
// importers: the calibrators, the rate keeper and the model's party counts.
// A micro-batch counts its parties seen before (countSeenEach): seen false.
func (e *Engine) settle(rs *ruleset, model *Trained, w *work, seen bool) {
	if w.a.Repeat {
		return
	}
	for i, r := range w.raw {
		rs.cals[i].observe(r)
	}
	e.rates.observe(w.a.Score, w.forced, w.hasForce, w.stratum, model)
	if seen && w.x != nil {
		e.model.countSeen(w.ids[:len(entityKinds)], &w.seen)
	}
}

// ApplyOutcome hands an inspection outcome to the detectors that learn from
// outcomes and to the model stage, and says how the engine had assessed its
// declaration, for outcome monitoring (see Attribution).
func (e *Engine) ApplyOutcome(o *declaration.Outcome) Attribution {
	var kb [96]byte
	key := declKey(kb[:0], o.DeclarationID)
	rec, ok := e.store.GetDecl(nil, key)
	if ok && len(rec) == 1 && rec[0] == doneMark {
		return Attribution{Repeat: true} // a redelivery: learned already
	}
	if !ok {
		rec = nil // not assessed here, or no longer remembered
	}
	at := attribution(section(rec, tagSelection))
	rs := e.rs.Load()
	for i, d := range rs.dets {
		if l, ok := d.(detectors.OutcomeLearner); ok {
			l.LearnOutcome(o, section(rec, rs.tags[i]))
		}
	}
	if rs.cfg.Model.Enabled {
		e.model.outcome(o, section(rec, tagModel))
	}
	if ok {
		e.store.SetDecl(key, []byte{doneMark})
	}
	return at
}

// score combines findings into the assessment's score, findings, channel and
// selected_by. Each finding is worth p = weight × strength points; the score
// is the noisy-OR 100·(1 − Π(1 − p/100)), so weak signals add up but never
// pass 100, and each finding's reported points are its share of the score in
// proportion to p, so that the reported points sum to the score.
//
// Findings of one detector and rule on several items of a declaration are
// one piece of evidence, not several (the items share an importer, a supplier
// and an invoice): only the strongest counts, and its reason names the other
// items.
func (rs *ruleset) score(d *declaration.Declaration, fs []detectors.Finding, a *declaration.Assessment) (forced declaration.Channel, hasForce, aeo bool, combined float64) {
	fs = collapse(fs)
	s := &rs.cfg.Scoring
	var sum float64
	keep := 1.0
	for i := range fs {
		p := min(max(fs[i].Weight*fs[i].Score, 0), 100)
		fs[i].Points = p
		sum += p
		keep *= 1 - p/100
		if fs[i].HasForce {
			forced, hasForce = max(forced, fs[i].Force), true
		}
	}
	combined = 100 * (1 - keep)
	final := combined
	aeo = rs.isAEO(d)
	if aeo {
		final *= s.AEOFactor
	}
	a.Score = final
	a.Findings = make([]declaration.Finding, len(fs), len(fs)+1)
	for i := range fs {
		a.Findings[i] = fs[i].Finding
		if sum > 0 {
			a.Findings[i].Points = final * fs[i].Points / sum
		}
	}
	sortByPoints(a.Findings)
	if aeo && combined > 0 {
		a.Findings = append(a.Findings, declaration.Finding{Detector: "aeo", Reason: "Authorised Economic Operator: score reduced from " +
			fmtScore(combined) + " to " + fmtScore(final) + " (factor " + fmtScore(s.AEOFactor) + ")"})
	}
	return forced, hasForce, aeo, combined
}

// sortByPoints sorts findings by points, highest first, keeping the order
// of equals (as sort.SliceStable, which it calls for more than 20: up to 20
// that sorts by insertion, as here, without allocating).
func sortByPoints(fs []declaration.Finding) {
	if len(fs) > 20 {
		sort.SliceStable(fs, func(i, j int) bool { return fs[i].Points > fs[j].Points })
		return
	}
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].Points > fs[j-1].Points; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}

// channel sets the assessment's channel and selected_by from its score and
// the thresholds, a forcing profile and the random compliance sample. It
// returns the channel the score or a profile gave, before random selection:
// the stratum that tells how likely an inspection was.
func (rs *ruleset) channel(d *declaration.Declaration, a *declaration.Assessment, forced declaration.Channel, hasForce bool, c cuts) declaration.Channel {
	a.Channel, a.SelectedBy = declaration.Green, "score"
	u := 0.0
	if c.yellow.frac < 1 || c.red.frac < 1 {
		u = hashShare(d.ID)
	}
	switch {
	case c.red.passes(a.Score, u):
		a.Channel = declaration.Red
	case c.yellow.passes(a.Score, u):
		a.Channel = declaration.Yellow
	}
	if hasForce {
		a.Channel, a.SelectedBy = forced, "profile"
	}
	stratum := a.Channel
	if rs.randCut > 0 && xxhash.Sum64String(rs.randSalt+"\x00"+d.ID) < rs.randCut {
		a.Channel, a.SelectedBy = max(a.Channel, rs.randChan), "random"
	}
	return stratum
}

func (rs *ruleset) isAEO(d *declaration.Declaration) bool {
	if d.Importer.AEO && rs.cfg.Scoring.TrustDeclaredAEO {
		return true
	}
	_, ok := rs.aeo[d.Importer.ID]
	return ok
}

// collapse keeps, for each detector and rule, the strongest finding, noting
// the other items it was found on.
func collapse(fs []detectors.Finding) []detectors.Finding {
	out := fs[:0]
	var also map[int][]int // index in out -> other item lines
	for _, f := range fs {
		j := -1
		for k := range out {
			if out[k].Detector == f.Detector && out[k].Rule == f.Rule {
				j = k
				break
			}
		}
		if j < 0 {
			out = append(out, f)
			continue
		}
		if also == nil {
			also = map[int][]int{}
		}
		weaker := f
		if f.Score > out[j].Score {
			weaker, out[j] = out[j], f
		}
		if weaker.ItemLine > 0 && weaker.ItemLine != out[j].ItemLine {
			also[j] = append(also[j], weaker.ItemLine)
		}
	}
	for j, lines := range also {
		sort.Ints(lines)
		var b strings.Builder
		for i, l := range lines {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(l))
		}
		item := "item"
		if len(lines) > 1 {
			item = "items"
		}
		out[j].Reason += " (also on " + item + " " + b.String() + ")"
	}
	return out
}

// fmtScore writes a score as a reason quotes it: at most two decimals.
func fmtScore(v float64) string {
	var b [24]byte
	return string(appendScore(b[:0], v))
}

// appendScore appends v as fmtScore writes it.
func appendScore(b []byte, v float64) []byte { return declaration.AppendRounded(b, v, 2) }
