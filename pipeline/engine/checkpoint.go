package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/detectors"
)

// A checkpoint is the engine's learned state in a directory: the per-entity
// store (fastcache's format: detector state, the model's entity hit rates and
// the features of declarations awaiting their outcome), the shared
// statistics, the calibrators' counts, the model, its training window and
// the ruleset it was learned under. It is written to a temporary
// directory and renamed into place, so a crash mid-write leaves the previous
// checkpoint intact.
//
// A checkpoint learned under another ruleset is restored as a reload would
// carry state over: detectors whose kind and name are unchanged keep their
// state and calibration (state keys begin with both), others start afresh;
// the model and its training window stay when the model's features are the
// same, and start afresh otherwise. A restart after a configuration change
// so forgets no more than the reload did.

// checkpointFormat 2: detector state keyed by kind and name, detector kinds
// and the model's feature names recorded. Format 1 keyed state by name only.
const checkpointFormat = 3

type checkpointMeta struct {
	Format      int                         `json:"format"`
	Ruleset     string                      `json:"ruleset"`
	SavedAt     time.Time                   `json:"saved_at"`
	Kinds       map[string]string           `json:"kinds"` // detector name -> kind
	Calibration map[string]calibratorCounts `json:"calibration"`
	Rates       *rateState                  `json:"rates,omitempty"` // the inspection-rate keeper's counts
	Handover    HandoverOffsets             `json:"handover,omitempty"`
}

// HandoverOffsets are, for each changelog topic, the offsets of its
// partitions below which a checkpoint's state holds every record (stream
// mode measures the partitions' end offsets just before the state is
// saved): a restart that is given such a partition again reads its
// changelog from there, not from its start (see pipeline/stream).
type HandoverOffsets map[string]map[int]int64

type calibratorCounts struct {
	N    uint64   `json:"n"`
	Tree []uint64 `json:"tree"`
}

// SaveState writes a checkpoint of the engine's state to dir, with the
// changelog offsets its state holds records below: handover (nil: none) is
// called once the state is saved, for them (what they were measured on may
// have changed while it was saved).
func (e *Engine) SaveState(dir string, handover func() HandoverOffsets) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := e.store.Save(filepath.Join(tmp, "store")); err != nil {
		return fmt.Errorf("saving the state store: %w", err)
	}
	f, err := os.Create(filepath.Join(tmp, "shared.bin"))
	if err != nil {
		return err
	}
	if _, err := e.shared.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("saving shared statistics: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := e.model.save(tmp); err != nil {
		return fmt.Errorf("saving the model state: %w", err)
	}
	rs := e.rs.Load()
	meta := checkpointMeta{Format: checkpointFormat, Ruleset: rs.cfg.Ruleset, SavedAt: time.Now().UTC(),
		Kinds: rs.kind, Calibration: rs.calibration(), Rates: e.rates.save()}
	if handover != nil {
		meta.Handover = handover()
	}
	b, _ := json.MarshalIndent(meta, "", " ")
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), b, 0o644); err != nil {
		return err
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// NewFromState builds an engine and restores its state from the checkpoint
// in dir, if there is one (see the comment on checkpoints for one learned
// under another ruleset). It says whether it restored, what, and why not.
func NewFromState(cfg *config.Config, dir string) (e *Engine, restored bool, why string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		e, err = New(cfg)
		return e, false, "no checkpoint in " + dir, err
	}
	var meta checkpointMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		e, err = New(cfg)
		return e, false, "unreadable checkpoint meta.json: " + err.Error(), err
	}
	if meta.Format != checkpointFormat {
		e, err = New(cfg)
		return e, false, fmt.Sprintf("checkpoint format %d is not this riskmon's %d (detector state is keyed differently): starting afresh", meta.Format, checkpointFormat), err
	}
	store, err := detectors.LoadStore(filepath.Join(dir, "store"), cfg.State.CapacityMB, cfg.State.PendingMB, cfg.State.PendingDir)
	if err != nil {
		e, err = New(cfg)
		return e, false, "unreadable state store: " + err.Error(), err
	}
	shared := detectors.NewTable(cfg.State.SharedEntries)
	f, err := os.Open(filepath.Join(dir, "shared.bin"))
	if err == nil {
		_, err = shared.ReadFrom(f)
		f.Close()
	}
	if err != nil {
		store.Close() // New opens the declaration log again
		e, err = New(cfg)
		return e, false, "unreadable shared statistics: " + err.Error(), err
	}
	e, err = newEngine(cfg, store, shared)
	if err != nil {
		store.Close()
		return nil, false, "", err
	}
	e.rs.Load().takeCalibration(meta.Calibration, meta.Kinds)
	e.handover = meta.Handover
	if !store.DeclCarried() {
		// The declaration records started empty: the pending topic's
		// records below the offsets are not in the state (with no pending
		// topic of its own, they are the changelog's).
		delete(e.handover, cfg.Stream.Pending())
	}
	e.rates.restore(meta.Rates)
	modelKept, err := e.model.restore(dir, e)
	if err != nil {
		store.Close()
		e, err = New(cfg)
		return e, false, "unreadable model state: " + err.Error(), err
	}
	ents, _, _ := store.Stats()
	decls, _ := store.DeclStats()
	why = fmt.Sprintf("restored the checkpoint of %s: %d entity records, %d declaration records, %d shared statistics",
		meta.SavedAt.Format(time.RFC3339), ents, decls, shared.Len())
	if t := e.model.cur.Load(); t != nil {
		why += ", model " + t.Name
	}
	if meta.Ruleset != cfg.Ruleset {
		why += fmt.Sprintf(", learned under ruleset %s (now %s): detectors of unchanged kind and name keep their state", meta.Ruleset, cfg.Ruleset)
		if !modelKept {
			why += "; the model's features changed, so the model and its training window start afresh"
		}
	}
	return e, true, why, nil
}

// CheckpointHandover is the changelog offsets the checkpoint this engine was
// restored from holds records below (nil when it was not restored, or the
// checkpoint recorded none).
func (e *Engine) CheckpointHandover() HandoverOffsets { return e.handover }
