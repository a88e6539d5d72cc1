package engine

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
)

// Micro-batches: how replay uses every core and stays deterministic.
//
// AssessBatch takes a batch of declarations in input order and deals each
// into a lane by a hash of its importer, so one lane holds all of an
// importer's declarations, in order, and an importer's own state (its
// records in the store) evolves exactly as if one goroutine did everything.
// What importers share is frozen for the batch: the workers read the shared
// statistics (peer groups, routes, inspection history), the calibrators, the
// rate keeper's cuts, the model and its party counts as they were when the
// batch began; their updates to the shared statistics are recorded, and at
// the batch's end the updates and the counts are applied in input order.
// Each lane's writes to the store go to its overlay, which the lane reads
// its own writes through, and reach the store in input order too, so that
// what the store evicts when it is full does not depend on the workers
// either.
// The result depends on the batch boundaries, never on the number of
// workers or on their timing: `--workers 1` and `--workers 8` give the same
// assessments, byte for byte.
//
// The batch's importers are dealt out in lanes (by a hash of the importer,
// lanesPerWorker lanes for each worker), and a worker that is done with a
// lane takes the next one not taken: a worker that drew busy importers
// does not leave the others idle until it is done. Each lane has its own
// detectors and overlay, so which worker assesses a lane changes nothing.
//
// Against one declaration at a time (Assess, as stream mode does), a
// declaration does not see the shared updates of the earlier declarations of
// its own batch: at most BatchSize declarations of staleness in statistics
// that are built from hundreds of thousands.
const BatchSize = 256

// lanesPerWorker is how many lanes a batch has for each worker.
const lanesPerWorker = 8

// batchWorkers are a ruleset's detectors built once more for each lane,
// with the shared statistics behind a recorder.
type batchWorkers struct {
	sets []detSet // each with the lane's handle on the store
	ovs  []*detectors.Overlay
	recs []*detectors.Recorder
	// The batch's declarations by lane: lane l's are order[start[l]:start[l+1]],
	// in input order.
	order []int32
	start []int
}

// workersFor returns n sets of the ruleset's detectors for a micro-batch's
// lanes, built on first use; nil when the ruleset's detectors were given by
// the caller (NewWithDetectors) and cannot be built again.
func (e *Engine) workersFor(rs *ruleset, n int) *batchWorkers {
	rs.batchMu.Lock()
	defer rs.batchMu.Unlock()
	if rs.batch != nil && len(rs.batch.sets) == n {
		return rs.batch
	}
	bw := &batchWorkers{}
	for range n {
		rec, ov := &detectors.Recorder{}, &detectors.Overlay{}
		set, ok := e.buildSet(rs, e.store.Deferred(ov), e.shared.Deferred(rec))
		if !ok {
			return nil
		}
		bw.sets, bw.ovs, bw.recs = append(bw.sets, set), append(bw.ovs, ov), append(bw.recs, rec)
	}
	rs.batch = bw
	return bw
}

// deal sorts the batch's declarations into lanes by importer (a counting
// sort, which keeps each lane's in input order).
func (bw *batchWorkers) deal(ws []work, lanes int) {
	bw.order = slices.Grow(bw.order[:0], len(ws))[:len(ws)]
	bw.start = slices.Grow(bw.start[:0], lanes+2)[:lanes+2]
	clear(bw.start)
	lane := func(i int) int {
		if lanes == 1 {
			return 0
		}
		return int(xxhash.Sum64String(ws[i].d.Importer.ID) % uint64(lanes))
	}
	for i := range ws { // start[l+2] counts lane l's
		bw.start[lane(i)+2]++
	}
	for l := 2; l < len(bw.start); l++ {
		bw.start[l] += bw.start[l-1]
	}
	for i := range ws { // start[l+1] is where lane l's next goes
		l := lane(i)
		bw.order[bw.start[l+1]] = int32(i)
		bw.start[l+1]++
	}
	bw.start = bw.start[:lanes+1]
}

// AssessBatch assesses ds, in input order, on up to workers goroutines, and
// returns their assessments in the same order (see BatchSize for what it
// guarantees). Calls must not overlap each other or Assess. Outcomes are
// applied between batches (ApplyOutcome).
func (e *Engine) AssessBatch(ds []*declaration.Declaration, workers int) []*declaration.Assessment {
	rs := e.rs.Load()
	model := e.model.cur.Load()
	c := e.rates.thresholds(&rs.cfg.Scoring)
	// The batches' work is kept between calls (it is large: scratch space
	// for findings, features and ids); calls do not overlap.
	if cap(e.batchWork) < len(ds) {
		e.batchWork = make([]work, len(ds))
	}
	ws := e.batchWork[:len(ds)]
	// A repeat of an earlier declaration of the batch is marked here, in
	// input order: the lanes do not see each other's records, and the
	// same id may come with another importer (another lane).
	if e.batchIDs == nil {
		e.batchIDs = map[string]struct{}{}
	}
	clear(e.batchIDs)
	for i, d := range ds {
		_, again := e.batchIDs[d.ID]
		e.batchIDs[d.ID] = struct{}{}
		ws[i].d, ws[i].a, ws[i].timed, ws[i].repeat = d, nil, false, again
	}
	workers = max(1, min(workers, len(ds)))
	lanes := 1
	if workers > 1 {
		lanes = workers * lanesPerWorker
	}
	bw := e.workersFor(rs, lanes)
	if bw == nil { // detectors given by the caller: one worker, updates at once
		for i := range ws {
			e.assess(rs, detSet{rs.dets, rs.measurers, e.store}, model, c, &ws[i])
		}
	} else {
		bw.deal(ws, lanes)
		var next atomic.Int32
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for l := int(next.Add(1)) - 1; l < lanes; l = int(next.Add(1)) - 1 {
					for _, i := range bw.order[bw.start[l]:bw.start[l+1]] {
						bw.recs[l].At(int(i))
						bw.ovs[l].At(int(i))
						e.assess(rs, bw.sets[l], model, c, &ws[i])
					}
				}
			})
		}
		wg.Wait()
		e.store.ApplyOverlays(bw.ovs)
		e.shared.ApplyRecorded(bw.recs)
	}
	e.model.countSeenEach(ws, &e.batchSeen)
	out := make([]*declaration.Assessment, len(ws))
	for i := range ws {
		e.settle(rs, model, &ws[i], false)
		out[i] = ws[i].a
		ws[i].d, ws[i].a = nil, nil // not kept alive by the next batch's work
	}
	return out
}
