package batch

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/synth"
)

// The replay's outcome monitor attributes every applied outcome to the
// channel and selection its declaration got (as the assessments say), counts
// the outcome of a declaration never assessed apart, and a repeated outcome
// once; its table shows the random sample's hit rate and each group's true
// hit rate beside it.
func TestReplayMonitor(t *testing.T) {
	var decls, outs, truth bytes.Buffer
	if err := synth.Write(synth.Options{Count: 20000, Seed: 3, InspectRate: 0.1},
		synth.Writers{Declarations: &decls, Outcomes: &outs, Truth: &truth}); err != nil {
		t.Fatal(err)
	}
	// A repeated outcome and one of a declaration never assessed, due early.
	outsRaw := bytes.Clone(outs.Bytes())
	first := bytes.SplitN(outsRaw, []byte("\n"), 2)[0]
	ghost := bytes.Replace(first, []byte(`"declaration_id":"`), []byte(`"declaration_id":"GHOST-`), 1)
	extra := append(append(append(append([]byte{}, first...), '\n'), ghost...), '\n')
	cfg := config.Default()
	cfg.Random.Rate = 0.05
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Replay(e, ReplayOptions{Input: &decls, InputName: "d", Outcomes: io.MultiReader(bytes.NewReader(extra), bytes.NewReader(outsRaw)), OutcomesName: "o",
		Output: io.Discard, Errors: io.Discard, KeepScores: true})
	if err != nil {
		t.Fatal(err)
	}
	m := st.Monitor
	// Besides the ghost, an outcome whose record the store has evicted
	// (it evicts the oldest first, and outcomes come weeks later) is
	// counted apart too.
	if m.Repeated != 1 || m.Unmatched < 1 || m.Unmatched > st.OutcomesApplied/100 {
		t.Errorf("unmatched %d, repeated %d; want the ghost (and few evicted), and the first outcome's copy", m.Unmatched, m.Repeated)
	}
	attributed := 0
	for _, g := range m.Groups {
		attributed += g.Inspected
	}
	if attributed != st.OutcomesApplied-m.Unmatched-m.Repeated {
		t.Errorf("%d attributed of %d applied, %d unmatched, %d repeated", attributed, st.OutcomesApplied, m.Unmatched, m.Repeated)
	}
	// What the assessments say, for every outcome applied.
	group := map[string]Group{}
	for _, s := range st.Scores {
		group[s.ID] = Group{s.Channel, s.SelectedBy}
	}
	want := map[Group]*Tally{}
	applied := 0
	for _, l := range bytes.Split(bytes.TrimSpace(outsRaw), []byte("\n")) {
		o, err := declaration.DecodeOutcome(l)
		if err != nil {
			t.Fatal(err)
		}
		if applied == st.OutcomesApplied-2 { // the two extra ones were applied too
			break
		}
		applied++
		tally(want, group[o.DeclarationID]).add(o)
	}
	if len(want) != len(m.Groups) {
		t.Errorf("%d groups, want %d", len(m.Groups), len(want))
	}
	for g, w := range want {
		got := m.Groups[g]
		if got == nil || got.Inspected > w.Inspected || got.Inspected < w.Inspected-(m.Unmatched-1) || got.Hits > w.Hits {
			t.Errorf("%v: %+v, want %+v (less at most the %d evicted)", g, got, w, m.Unmatched-1)
		}
	}
	r := m.Random()
	if r.Inspected == 0 || r.Hits == 0 {
		t.Fatalf("random sample: %+v", r)
	}
	truthByID := map[string]*declaration.Outcome{}
	for _, l := range bytes.Split(bytes.TrimSpace(truth.Bytes()), []byte("\n")) {
		o, _ := declaration.DecodeOutcome(l)
		truthByID[o.DeclarationID] = o
	}
	table := m.Table(st.Scores, truthByID)
	t.Logf("\n%s", table)
	for _, s := range []string{"random compliance sample", "true hit rate", "red      score", "by detector:"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q", s)
		}
	}
}
