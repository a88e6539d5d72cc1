package batch

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// Replay's assessments do not depend on the number of workers: the same
// bytes for 1, 2 and 3, with the model training on the way and the shared
// statistics dropping entries (a small table) and the entity table evicting
// (a small cap), so that what is dropped must not depend on the workers
// either. Every 40th declaration comes again right after it under another
// importer (a resubmission, one id of two importers in one batch): the
// declaration records the store ends with (how many, their bytes) must not
// depend on the workers either.
func TestReplayWorkersIdentical(t *testing.T) {
	decls, outcomes, _ := modelStream(t, 12000)
	var withDups []byte
	for i, line := range bytes.SplitAfter(decls, []byte("\n")) {
		withDups = append(withDups, line...)
		if i%40 == 0 && len(line) > 1 {
			withDups = append(withDups, resubmit(line)...)
		}
	}
	decls = withDups
	yml := strings.Replace(string(config.DefaultYAML()), "min_labels: 500 ", "min_labels: 200 ", 1)
	yml = strings.Replace(yml, "shared_entries: 200000", "shared_entries: 1000", 1)
	yml = strings.Replace(yml, "capacity_mb: 64", "capacity_mb: 1", 1)
	cfg, err := config.Parse([]byte(yml), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.SharedEntries != 1000 || cfg.State.CapacityMB != 1 || cfg.Model.MinLabels != 200 {
		t.Fatal("the test configuration did not take")
	}
	var first []byte
	var firstDecl [2]uint64
	for _, workers := range []int{1, 2, 3} {
		if workers == 3 { // and the declaration records on disk: the same assessments
			cfg.State.PendingDir = t.TempDir()
			firstDecl[1] = 0 // bytes on disk are not fastcache's
		}
		e, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := Replay(e, ReplayOptions{Input: bytes.NewReader(decls), InputName: "d", Outcomes: bytes.NewReader(outcomes), OutcomesName: "o",
			Output: &out, Errors: io.Discard, Workers: workers}); err != nil {
			t.Fatal(err)
		}
		if _, _, evicted := e.Store().Stats(); e.Model() == nil || e.Shared().Dropped() == 0 || evicted == 0 {
			t.Fatalf("workers %d: model %v, %d shared entries dropped, %d entity records evicted: the test does not exercise training and eviction", workers, e.Model(), e.Shared().Dropped(), evicted)
		}
		got := assessedAt.ReplaceAll(out.Bytes(), nil)
		entries, size := e.Store().DeclStats()
		if first == nil {
			first, firstDecl = got, [2]uint64{entries, size}
			continue
		}
		if firstDecl[1] == 0 {
			firstDecl[1] = size
		}
		if d := [2]uint64{entries, size}; d != firstDecl {
			t.Errorf("workers %d: declaration records %d, %d bytes; workers 1: %d, %d bytes", workers, d[0], d[1], firstDecl[0], firstDecl[1])
		}
		if !bytes.Equal(got, first) {
			a, b := bytes.Split(first, []byte("\n")), bytes.Split(got, []byte("\n"))
			for i := range min(len(a), len(b)) {
				if !bytes.Equal(a[i], b[i]) {
					t.Fatalf("workers %d: assessment %d differs from workers 1:\n%s\n%s", workers, i+1, a[i], b[i])
				}
			}
			t.Fatalf("workers %d: %d assessments, workers 1: %d", workers, len(b), len(a))
		}
	}
}
