package engine

import (
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
)

// State handover (stream mode's changelog): what an instance must pass on
// when an importer's partition moves to another instance is what it keeps
// about that importer and its declarations. Everything the detectors and
// the engine write to the store while assessing a declaration is of that
// kind (the importer's records, and the declaration's own until its
// outcome: its entities, features and treatment), so a Worker reports
// those writes; what an outcome changes that belongs to the importer is
// named by OutcomeRecords. Statistics shared by all importers (peer groups,
// routes, entity hit rates other than the importer's, calibration, the
// model) are not handed over: every instance learns them from its own
// share of the stream.

// Record is one piece of handed-over state: a key of the store (an entity
// record, or with Decl a declaration record) or of the shared table
// (Table), and its value (nil: deleted).
type Record struct {
	Table, Decl bool
	Key, Value  []byte
}

// Worker assesses declarations like Engine.Assess, on a copy of the
// detectors whose store writes it reports. A stream worker owns one; calls
// of one Worker must not overlap.
type Worker struct {
	e   *Engine
	rs  *ruleset
	set detSet
	tap detectors.Tap
	wk  *work // reused: it is large (scratch space), and a worker assesses one at a time
}

// NewWorker returns a worker for e.
func (e *Engine) NewWorker() *Worker { return &Worker{e: e} }

// Assess assesses d and returns, with the assessment, the store writes made
// for it (valid until the next call), except the model's counts that settle
// updated in the importer's combined record: a handover moves that record
// whole (detectors.ImporterRecordKey). A worker follows reloads: it builds
// its detectors again when the ruleset has changed.
func (w *Worker) Assess(d *declaration.Declaration) (*declaration.Assessment, []detectors.Write) {
	e := w.e
	rs := e.rs.Load()
	if rs != w.rs {
		set, ok := e.buildSet(rs, e.store.Tapped(&w.tap), e.shared)
		if !ok { // detectors given by the caller
			return e.Assess(d), nil
		}
		w.rs, w.set = rs, set
	}
	w.tap.Writes = w.tap.Writes[:0]
	if w.wk == nil {
		w.wk = new(work)
	}
	wk := w.wk
	wk.d = d
	defer func() { wk.d, wk.a = nil, nil }()
	e.assessTimed(rs, w.set, wk)
	if wk.x != nil { // the importer's own party counts, which settle updated
		var kb [96]byte
		rk := detectors.ImporterRecordKey(d.Importer.ID)
		for k, kind := range entityKinds {
			if (kind == "importer" || kind == "importer_hs6") && wk.ids[k] != "" {
				key := entityKey(kb[:0], k, wk.ids[k])
				if detectors.InRecord(key, rk) {
					continue // a section of the importer's combined record, which a handover moves whole
				}
				if v, ok := e.store.Get(nil, key); ok {
					w.tap.Writes = append(w.tap.Writes, detectors.Write{Key: append([]byte(nil), key...), Value: v})
				}
			}
		}
	}
	return wk.a, w.tap.Writes
}

// PartitionKey is the store key under which stream mode keeps the input
// partition of an importer's declarations (the changelog partition its
// outcome records go to).
func PartitionKey(dst []byte, importerID string) []byte {
	return detectors.ImporterKey(dst[:0], importerID, "\xffK")
}

// OutcomeRecords are the records of importerID that applying an outcome of
// declaration declID changed: the importer's inspection counts (the
// detectors' and the model's) and the declaration's own record, now marked
// learned, so that a new owner does not learn a redelivery twice.
func (e *Engine) OutcomeRecords(importerID, declID string) []Record {
	var out []Record
	var kb [96]byte
	if importerID != "" {
		for _, d := range e.rs.Load().dets {
			if s, ok := d.(detectors.ImporterState); ok {
				for _, k := range s.ImporterTableKeys(importerID, nil) {
					if v := e.shared.Get(k); v != nil {
						out = append(out, Record{Table: true, Key: k, Value: v})
					}
				}
			}
		}
		k := entityKey(kb[:0], 0, importerID)
		if v, ok := e.store.Get(nil, k); ok {
			out = append(out, Record{Key: append([]byte(nil), k...), Value: v})
		}
	}
	k := declKey(kb[:0], declID)
	if v, ok := e.store.GetDecl(nil, k); ok {
		out = append(out, Record{Decl: true, Key: append([]byte(nil), k...), Value: v})
	}
	return out
}

// Restore writes a handed-over record into the engine's state.
func (e *Engine) Restore(r Record) {
	switch {
	case r.Table && r.Value != nil:
		e.shared.Put(r.Key, r.Value)
	case r.Table:
	default:
		e.store.Restore(detectors.Write{Key: r.Key, Value: r.Value, Decl: r.Decl})
	}
}
