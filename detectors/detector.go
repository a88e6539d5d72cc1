// Package detectors holds the Detector interface, the registry of detector
// kinds, one file per kind, and the statistics helpers they share.
//
// A detector never knows where declarations come from (Kafka, a file) or how
// its findings are combined: it reads a declaration, reports findings with a
// strength in [0,1] and a reason, and learns.
package detectors

import (
	"fmt"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// Finding is a detector's result before scoring: the wire finding (without
// points, which the scorer sets) plus what the scorer needs.
type Finding struct {
	declaration.Finding
	// Weight is the points this finding is worth at strength 1.
	Weight float64
	// Force, when set, is a channel the finding imposes (risk profiles).
	Force    declaration.Channel
	HasForce bool
}

// Detector scores declarations and learns from them. Score must not change
// state: the engine calls Score on every detector, combines the findings into
// an assessment, then calls Learn on every detector with the declaration and
// its assessment ("test, then train"), so no detector sees a declaration in
// its own baseline.
//
// The engine calls Score and Learn for one importer from one goroutine at a
// time, in lodgement order; calls for different importers may run
// concurrently, so state shared across importers must be safe for that. A
// detector built by Build is used by one goroutine at a time (the engine
// builds them once more for each goroutine that assesses), and may keep
// what Score read for the Measure and Learn of the same declaration, as
// long as the state has lost nothing since (scoreRead).
type Detector interface {
	Name() string
	Score(d *declaration.Declaration, out []Finding) []Finding
	Learn(d *declaration.Declaration, a *declaration.Assessment)
}

// scoreRead is a store record that Score read for the declaration in hand,
// which Learn, called after Score for the same declaration, takes instead of
// reading it again: a detector value is used by one goroutine at a time
// (the engine builds the detectors once more for each goroutine that
// assesses), and no other goroutine writes an importer's records while its
// declaration is in hand. The store may still lose a record meanwhile: when
// the entity table is at its cap, another detector's write to the same
// importer's combined record can evict it, and a read then finds nothing.
// So what was read is taken only if the store has evicted nothing since
// (storeMark); otherwise Learn reads again. Learn forgets it.
type scoreRead struct {
	d    *declaration.Declaration
	v    []byte
	ok   bool
	mark uint64
}

// keep remembers v (ok: present) as read for d from s.
func (r *scoreRead) keep(s *Store, d *declaration.Declaration, v []byte, ok bool) {
	r.d, r.v, r.ok, r.mark = d, append(r.v[:0], v...), ok, s.evictions()
}

// take returns what was read for d, if anything and if s has evicted
// nothing since (known), and forgets it.
func (r *scoreRead) take(s *Store, d *declaration.Declaration) (v []byte, ok, known bool) {
	if r.d != d || d == nil {
		return nil, false, false
	}
	r.d = nil
	if s.evictions() != r.mark {
		return nil, false, false
	}
	return r.v, r.ok, true
}

// Uncalibrated is implemented by detectors whose strengths are already on the
// analyst's scale (risk profiles): the engine does not calibrate them.
type Uncalibrated interface {
	Uncalibrated()
}

// OutcomeLearner is implemented by detectors that learn from inspection
// outcomes. Pending appends to dst what the detector keeps about a
// declaration until its outcome; the engine calls it after Learn and keeps
// the bytes, with its own about the declaration, in one record
// (state.pending_mb). LearnOutcome is called when an outcome arrives (in
// replay: when the stream's event time passes the outcome's inspected_at),
// with those bytes, or nil when none are kept (the declaration was not
// assessed here, or its record was evicted); a redelivered outcome is not
// passed on.
type OutcomeLearner interface {
	Pending(d *declaration.Declaration, a *declaration.Assessment, dst []byte) []byte
	LearnOutcome(o *declaration.Outcome, pending []byte)
}

// Measurer is implemented by detectors whose measurements, not only their
// findings, are features of the learned model (unit_value: how far the main
// item's price lies from its peers, and how many peers that rests on). A
// measurement exists whether or not the detector fires: a price 1.2
// deviations below its peers is no finding but may still be evidence.
// Measure is called after Score and before Learn, from the goroutine that
// scores the declaration; it must not change state. It writes one value per
// Measures() entry into out, NaN when it has none.
type Measurer interface {
	Measures() []Measure
	Measure(d *declaration.Declaration, out []float64)
}

// ImporterState is implemented by detectors that keep, in the shared table,
// records that belong to one importer (history: the importer's inspection
// counts), so that stream mode can hand them over with the importer's other
// state when its partition moves to another instance. (What a detector
// writes to the store while assessing an importer's declaration is handed
// over without it.)
type ImporterState interface {
	ImporterTableKeys(importerID string, dst [][]byte) [][]byte
}

// Measure names one measurement: Name is the feature's name after the
// detector's ("unit_value:price_z"), Label says in an explanation what the
// value is ("unit value, robust deviations from its peers").
type Measure struct {
	Name, Label string
}

// Env is what a detector may use when it is built.
type Env struct {
	Config *config.Config
	Store  *Store
	// Shared holds statistics updated in place on almost every declaration
	// (peer-group histograms, inspection-history records); nil gives the
	// detectors a table of their own.
	Shared *Table
}

func (e *Env) shared() *Table {
	if e.Shared == nil {
		e.Shared = NewTable(defaultSharedEntries)
	}
	return e.Shared
}

const defaultSharedEntries = 200000

// base is what every detector has: its configured name and weight, and the
// way it starts a finding. Detector kinds embed it.
type base struct {
	name   string
	weight float64
	// stateKey prefixes the detector's state keys: its kind and name, so that a
	// reload keeps a detector's state when both are unchanged and starts
	// afresh when either changes (another kind never reads records it did
	// not write).
	stateKey string
}

func (b *base) Name() string { return b.name }

// finding starts a finding of this detector on item line (0: the whole
// declaration) with the given strength and reason.
func (b *base) finding(line int, strength float64, reason string) Finding {
	f := Finding{Weight: b.weight}
	f.Detector, f.ItemLine, f.Score, f.Reason = b.name, line, strength, reason
	return f
}

// builder is a kind's constructor as the registry keeps it.
type builder func(b base, params any, env *Env) (Detector, error)

// registerKind declares a detector kind once, from its file's init: its
// default weight, its parameter struct with defaults (decoded, defaulted and
// validated by package config, the one registry of kinds) and its
// constructor, which gets the instance's base and its parameters.
func registerKind[P any](name string, defaultWeight float64, defaults func() *P, build func(b base, p P, env *Env) (Detector, error)) {
	config.RegisterKind(config.Kind{Name: name, DefaultWeight: defaultWeight, NewParams: func() any { return defaults() },
		Build: builder(func(b base, params any, env *Env) (Detector, error) { return build(b, *params.(*P), env) })})
}

// Build constructs every enabled detector of a validated configuration, in
// configuration order.
func Build(cfg *config.Config, env *Env) ([]Detector, error) {
	var out []Detector
	for i := range cfg.Detectors {
		dc := &cfg.Detectors[i]
		if !dc.IsEnabled() {
			continue
		}
		k, ok := config.LookupKind(dc.Kind)
		if !ok {
			return nil, fmt.Errorf("detectors[%d]: unknown kind %q", i, dc.Kind)
		}
		d, err := k.Build.(builder)(base{name: dc.Name, weight: dc.WeightOr(k.DefaultWeight), stateKey: dc.Kind + "\x00" + dc.Name}, dc.Decoded, env)
		if err != nil {
			return nil, fmt.Errorf("detector %s: %w", dc.Name, err)
		}
		out = append(out, d)
	}
	return out, nil
}
