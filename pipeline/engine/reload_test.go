package engine

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

func parseCfg(t *testing.T, yml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yml), "test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// phone is declaration n of importer imp, lodged a minute after the one
// before, one item of HS 851713.
func phone(imp string, n int) *declaration.Declaration {
	d := simpleDecl(fmt.Sprintf("%s-%d", imp, n))
	d.Importer.ID = imp
	d.LodgedAt = d.LodgedAt.Add(time.Duration(n) * time.Minute)
	return d
}

// profileCfg scores every phone declaration with the profile detector's
// weight (profiles are uncalibrated: their points are the analyst's).
func profileCfg(weight, yellow, red int) string {
	return fmt.Sprintf(`name: r
random: {rate: 0}
model: {enabled: false}
scoring: {yellow: %d, red: %d}
detectors:
  - name: prof
    kind: profile
    weight: %d
    params:
      profiles: [{id: PHONES, reason: phones, match: {hs_prefix: ["8517"]}}]
`, yellow, red, weight)
}

// A reload's thresholds and weights apply from the next declaration on, and
// the assessment names the new ruleset. The scores land exactly on the
// thresholds: a score equal to a threshold takes its channel.
func TestReloadTakesEffect(t *testing.T) {
	e, err := New(parseCfg(t, profileCfg(40, 40, 70)))
	if err != nil {
		t.Fatal(err)
	}
	check := func(n int, wantScore float64, want declaration.Channel) {
		t.Helper()
		a := e.Assess(phone("I1", n))
		if a.Score != wantScore || a.Channel != want || a.Ruleset != e.Config().Ruleset {
			t.Errorf("declaration %d: score %v channel %v ruleset %s, want %v %v %s", n, a.Score, a.Channel, a.Ruleset, wantScore, want, e.Config().Ruleset)
		}
	}
	check(1, 40, declaration.Yellow) // at the yellow threshold
	first := e.Config().Ruleset
	if err := e.Reload(parseCfg(t, profileCfg(70, 40, 70))); err != nil {
		t.Fatal(err)
	}
	if e.Config().Ruleset == first {
		t.Fatal("the ruleset id did not change with the weight")
	}
	check(2, 70, declaration.Red) // the new weight, at the red threshold
	if err := e.Reload(parseCfg(t, profileCfg(70, 40, 80))); err != nil {
		t.Fatal(err)
	}
	check(3, 70, declaration.Yellow) // the new red threshold
	if err := e.Reload(parseCfg(t, profileCfg(39, 40, 80))); err != nil {
		t.Fatal(err)
	}
	check(4, 39, declaration.Green) // just under yellow
}

// ibCfg runs one importer_behaviour detector that calls an importer new for
// its first three declarations.
func ibCfg(name, kind string, weight int) string {
	return fmt.Sprintf(`name: r
random: {rate: 0}
model: {enabled: false}
detectors:
  - name: %s
    kind: %s
    weight: %d
    params: {new_count: 3}
`, name, kind, weight)
}

func newImporterFinding(a *declaration.Assessment) bool {
	for _, f := range a.Findings {
		if strings.Contains(f.Reason, "new importer") {
			return true
		}
	}
	return false
}

// Learned state carries over a reload when a detector's kind and name are
// unchanged (whatever else changed), and starts afresh when either changes.
func TestReloadKeepsState(t *testing.T) {
	e, err := New(parseCfg(t, ibCfg("ib", "importer_behaviour", 40)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	next := func() *declaration.Assessment { n++; return e.Assess(phone("I1", n)) }
	for i := 0; i < 3; i++ {
		if a := next(); !newImporterFinding(a) {
			t.Fatalf("declaration %d of I1 is not called new: %+v", n, a.Findings)
		}
	}
	if a := next(); newImporterFinding(a) {
		t.Fatalf("declaration 4 of I1 still called new")
	}
	reload := func(yml string) {
		t.Helper()
		if err := e.Reload(parseCfg(t, yml)); err != nil {
			t.Fatal(err)
		}
	}
	reload(ibCfg("ib", "importer_behaviour", 60)) // weight changed: same detector
	if a := next(); newImporterFinding(a) {
		t.Errorf("after a weight change, I1 is new again: the detector's state was lost")
	}
	reload(ibCfg("ib2", "importer_behaviour", 60)) // renamed: another detector
	if a := next(); !newImporterFinding(a) {
		t.Errorf("a renamed detector kept the old one's state: %+v", a.Findings)
	}
	reload(ibCfg("ib2", "importer_behaviour", 60))
	if a := next(); !newImporterFinding(a) {
		t.Errorf("the renamed detector forgot its own first declaration of I1")
	}
}

// checkpointed builds an engine on yml, assesses importer I1's first four
// declarations and saves a checkpoint, in dir.
// testHandover are the changelog offsets checkpointed records (the
// default topic names).
var testHandover = HandoverOffsets{"riskmon-changelog": {0: 10, 1: 11}, "riskmon-pending": {0: 20, 1: 21}}

// handoverTopics are the topics of an engine's checkpoint offsets, sorted.
func handoverTopics(e *Engine) []string { return slices.Sorted(maps.Keys(e.CheckpointHandover())) }

func checkpointed(t *testing.T, yml string) (e *Engine, dir string) {
	t.Helper()
	e, err := New(parseCfg(t, yml))
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 4; n++ {
		e.Assess(phone("I1", n))
	}
	dir = t.TempDir() + "/ck"
	if err := e.SaveState(dir, func() HandoverOffsets { return testHandover }); err != nil {
		t.Fatal(err)
	}
	return e, dir
}

// A checkpoint restores under its own ruleset and under another one: there
// detectors of unchanged kind and name keep their state, a renamed one
// starts afresh, and the reason says which ruleset it was learned under. A
// checkpoint of another format is refused, and the engine starts afresh.
func TestCheckpointAcrossRulesets(t *testing.T) {
	_, dir := checkpointed(t, ibCfg("ib", "importer_behaviour", 40))
	restore := func(yml string) (*Engine, string) {
		t.Helper()
		e, restored, why, err := NewFromState(parseCfg(t, yml), dir)
		if err != nil || !restored {
			t.Fatalf("not restored: %v %s", err, why)
		}
		return e, why
	}
	same, why := restore(ibCfg("ib", "importer_behaviour", 40))
	if strings.Contains(why, "learned under ruleset") || newImporterFinding(same.Assess(phone("I1", 5))) {
		t.Errorf("same ruleset: %s", why)
	}
	heavier, why := restore(ibCfg("ib", "importer_behaviour", 80))
	if !strings.Contains(why, "learned under ruleset r@") || newImporterFinding(heavier.Assess(phone("I1", 5))) {
		t.Errorf("weight changed: state not kept (%s)", why)
	}
	renamed, _ := restore(ibCfg("other", "importer_behaviour", 40))
	if !newImporterFinding(renamed.Assess(phone("I1", 5))) {
		t.Errorf("a renamed detector restored the old one's state")
	}

	// A format-1 checkpoint keyed state by name alone (and format 2 kept
	// entity records in fastcache): refused.
	meta := dir + "/meta.json"
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, []byte(strings.Replace(string(b), `"format": 3`, `"format": 1`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, restored, why, err := NewFromState(parseCfg(t, ibCfg("ib", "importer_behaviour", 40)), dir)
	if err != nil || restored || !strings.Contains(why, "checkpoint format 1") {
		t.Errorf("format 1 checkpoint: restored %v, %q, %v", restored, why, err)
	}
}

// Calibration follows the same rule as state: it carries over a reload for
// a detector of unchanged kind and name, and starts afresh when the kind
// changes under the same name.
func TestReloadCalibrationByKind(t *testing.T) {
	e, err := New(parseCfg(t, ibCfg("x", "importer_behaviour", 40)))
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 50; n++ {
		e.Assess(phone("I1", n))
	}
	seen := func() uint64 { return e.rs.Load().cals[0].n.Load() }
	if seen() != 50 {
		t.Fatalf("calibrator saw %d declarations, want 50", seen())
	}
	ch, err := e.ReloadSummary(parseCfg(t, ibCfg("x", "importer_behaviour", 70)))
	if err != nil {
		t.Fatal(err)
	}
	if seen() != 50 {
		t.Errorf("weight change: calibrator restarted at %d", seen())
	}
	if fmt.Sprint(ch) != "{[x] [] [] true}" {
		t.Errorf("weight change: %+v, want x kept and the model kept", ch)
	}
	splitting := "name: r\nrandom: {rate: 0}\nmodel: {enabled: false}\ndetectors: [{name: x, kind: splitting, weight: 70}, {name: y, kind: route}]\n"
	if ch, err = e.ReloadSummary(parseCfg(t, splitting)); err != nil {
		t.Fatal(err)
	}
	if seen() != 0 {
		t.Errorf("kind change: the splitting detector x took over importer_behaviour's calibration (%d declarations)", seen())
	}
	if fmt.Sprint(ch) != "{[] [x y] [] false}" {
		t.Errorf("kind change and a new detector: %+v, want x and y fresh, the model afresh", ch)
	}
	if ch, err = e.ReloadSummary(parseCfg(t, "name: r\nrandom: {rate: 0}\nmodel: {enabled: false}\ndetectors: [{name: y, kind: route}]\n")); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ch) != "{[y] [] [x] false}" {
		t.Errorf("x removed: %+v", ch)
	}
}

// With the declaration records on disk (state.pending_dir), a checkpoint
// brings them back: an outcome of a declaration assessed before it finds
// its record after a restart; one assessed after it does not (the input
// brings it again). A restart that changes where the records are kept
// keeps the entity state.
func TestCheckpointDeclarationsOnDisk(t *testing.T) {
	onDisk := ibCfg("ib", "importer_behaviour", 40) + "state: {pending_dir: " + t.TempDir() + "}\n"
	e, dir := checkpointed(t, onDisk)
	e.Assess(phone("I1", 5))
	if _, _, _, err := NewFromState(parseCfg(t, onDisk), dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second engine on the same state.pending_dir: %v; want it refused", err)
	}
	e.Close() // the process stops

	outcome := func(e *Engine, n int) Attribution {
		return e.ApplyOutcome(&declaration.Outcome{DeclarationID: fmt.Sprintf("I1-%d", n), ImporterID: "I1"})
	}
	r, restored, why, err := NewFromState(parseCfg(t, onDisk), dir)
	if err != nil || !restored {
		t.Fatalf("not restored: %v %s", err, why)
	}
	if at := outcome(r, 2); !at.Known {
		t.Error("the outcome of a declaration assessed before the checkpoint found no record after the restart")
	}
	if at := outcome(r, 5); at.Known {
		t.Error("the outcome of a declaration assessed after the checkpoint found a record")
	}
	// The records carried over, the changelog offsets stand for both topics.
	if got := handoverTopics(r); !slices.Equal(got, []string{"riskmon-changelog", "riskmon-pending"}) {
		t.Errorf("the checkpoint's offsets after a restart with its records: %v", got)
	}
	r.Close()

	// A state.pending_dir started afresh (another directory: an ephemeral
	// volume) holds none of the pending topic's records below its offsets:
	// the restore must read the pending topic from its start.
	fresh := ibCfg("ib", "importer_behaviour", 40) + "state: {pending_dir: " + t.TempDir() + "}\n"
	f, _, _, err := NewFromState(parseCfg(t, fresh), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := handoverTopics(f); !slices.Equal(got, []string{"riskmon-changelog"}) {
		t.Errorf("the checkpoint's offsets after a restart with state.pending_dir started afresh: %v, want the changelog's only", got)
	}
	f.Close()

	inMemory, restored, why, err := NewFromState(parseCfg(t, ibCfg("ib", "importer_behaviour", 40)), dir)
	if err != nil || !restored {
		t.Fatalf("a checkpoint with the records on disk, restarted with them in memory: not restored: %v %s", err, why)
	}
	if newImporterFinding(inMemory.Assess(phone("I1", 6))) {
		t.Error("restarted with the records in memory: the importer's state was lost")
	}
	if at := outcome(inMemory, 3); at.Known {
		t.Error("restarted with the records in memory: found a record only the disk had")
	}
	if got := handoverTopics(inMemory); !slices.Equal(got, []string{"riskmon-changelog"}) {
		t.Errorf("the checkpoint's offsets after a restart with the records in memory: %v, want the changelog's only", got)
	}
}
