package batch

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/synth"
)

// modelStream is a generated stream where a third of the declarations are
// inspected, so that the model trains early and often.
func modelStream(t *testing.T, n int) (decls, outcomes, truth []byte) {
	t.Helper()
	var d, o, tr bytes.Buffer
	if err := synth.Write(synth.Options{Count: n, Seed: 21, InspectRate: 0.3}, synth.Writers{Declarations: &d, Outcomes: &o, Truth: &tr}); err != nil {
		t.Fatal(err)
	}
	return d.Bytes(), o.Bytes(), tr.Bytes()
}

func modelConfig(t *testing.T) *config.Config {
	t.Helper()
	yml := strings.Replace(string(config.DefaultYAML()), "min_labels: 500 ", "min_labels: 200 ", 1)
	c, err := config.Parse([]byte(yml), "test")
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.MinLabels != 200 {
		t.Fatal("the test configuration did not lower model.min_labels")
	}
	return c
}

var assessedAt = regexp.MustCompile(`"assessed_at":"[^"]+",`)

// replayModel replays decls with outcomes and returns each assessment line
// (without assessed_at) by declaration id, in order.
func replayModel(t *testing.T, decls, outcomes []byte) (byID map[string]string, ids []string, e *engine.Engine) {
	t.Helper()
	e, err := engine.New(modelConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Replay(e, ReplayOptions{Input: bytes.NewReader(decls), InputName: "d", Outcomes: bytes.NewReader(outcomes), OutcomesName: "o",
		Output: &out, Errors: io.Discard}); err != nil {
		t.Fatal(err)
	}
	byID = map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var a struct {
			ID string `json:"declaration_id"`
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatal(err)
		}
		byID[a.ID] = assessedAt.ReplaceAllString(l, "")
		ids = append(ids, a.ID)
	}
	return byID, ids, e
}

// A declaration's own outcome never reaches its own assessment: flipping
// the result of one inspected declaration leaves its assessment unchanged,
// while it does change what the model says of later declarations.
func TestModelNoLeakage(t *testing.T) {
	decls, outcomes, _ := modelStream(t, 6000)
	base, ids, e := replayModel(t, decls, outcomes)
	if m := e.Model(); m == nil || !m.Active {
		t.Fatalf("no active model after 6,000 declarations with a third inspected: %v", m)
	}
	lines := strings.Split(strings.TrimSpace(string(outcomes)), "\n")
	pos := map[string]int{}
	for i, id := range ids {
		pos[id] = i
	}
	var targets []int // outcome lines of model-scored declarations in the last half
	for i, l := range lines {
		o, err := declaration.DecodeOutcome([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if pos[o.DeclarationID] > len(ids)/2 && strings.Contains(base[o.DeclarationID], `"model":"gbdt@`) && len(targets) < 4 && i%7 == 0 {
			targets = append(targets, i)
		}
	}
	if len(targets) < 4 {
		t.Fatalf("only %d model-scored inspected declarations to test", len(targets))
	}
	later := 0
	for _, i := range targets {
		flipped := append([]string(nil), lines...)
		if strings.Contains(flipped[i], `"result":"hit"`) {
			flipped[i] = strings.Replace(flipped[i], `"result":"hit"`, `"result":"clean"`, 1)
		} else {
			flipped[i] = strings.Replace(flipped[i], `"result":"clean"`, `"result":"hit"`, 1)
		}
		o, _ := declaration.DecodeOutcome([]byte(lines[i]))
		got, _, _ := replayModel(t, decls, []byte(strings.Join(flipped, "\n")+"\n"))
		if got[o.DeclarationID] != base[o.DeclarationID] {
			t.Errorf("flipping the outcome of %s changed its own assessment:\n%s\n%s", o.DeclarationID, base[o.DeclarationID], got[o.DeclarationID])
		}
		for _, id := range ids[pos[o.DeclarationID]+1:] {
			if got[id] != base[id] {
				later++
			}
		}
	}
	if later == 0 {
		t.Error("flipping outcomes changed no later assessment: outcomes do not reach the model")
	}
}

// With the model scoring: the same input gives the same bytes (training
// points are deterministic), every model-scored assessment names the model
// and its probability, its findings' points add up to the score, and the
// model's finding explains itself with numbers.
func TestModelAssessments(t *testing.T) {
	decls, outcomes, _ := modelStream(t, 5000)
	a, ids, _ := replayModel(t, decls, outcomes)
	b, _, _ := replayModel(t, decls, outcomes)
	scored, entity, ruleRaised, profilePointed := 0, 0, 0, 0
	for _, id := range ids {
		if a[id] != b[id] {
			t.Fatalf("two replays differ on %s:\n%s\n%s", id, a[id], b[id])
		}
		var as struct {
			Score       float64 `json:"score"`
			Model       string  `json:"model"`
			Probability float64 `json:"probability"`
			SelectedBy  string  `json:"selected_by"`
			Findings    []struct {
				Detector string  `json:"detector"`
				Points   float64 `json:"points"`
				Reason   string  `json:"reason"`
			} `json:"findings"`
		}
		if err := json.Unmarshal([]byte(a[id]), &as); err != nil {
			t.Fatal(err)
		}
		if as.Model == "" {
			continue
		}
		scored++
		var sum float64
		model := ""
		for _, f := range as.Findings {
			sum += f.Points
			if f.Detector == "model" {
				model = f.Reason
			}
		}
		if math.Abs(sum-as.Score) > 0.02*float64(len(as.Findings))+0.01 {
			t.Errorf("%s: points add up to %.2f, score %.2f", id, sum, as.Score)
		}
		if !strings.HasPrefix(model, "learned model: P(hit) ") || as.Probability <= 0 || as.Probability >= 1 {
			t.Errorf("%s: model finding %q, probability %g", id, model, as.Probability)
		}
		if regexp.MustCompile(`: \d[\d,.]* hits in \d[\d,.]* inspections \(\+[\d.]+ log-odds\)`).MatchString(model) {
			entity++
		}
		// When the rule score raised P(hit), the findings that made it share
		// its part: a profile's finding is worth points, not 0.
		if strings.Contains(model, "the rule score ") {
			for _, f := range as.Findings {
				if f.Detector == "profiles" {
					ruleRaised++
					if f.Points >= 1 {
						profilePointed++
					}
				}
			}
		}
	}
	t.Logf("profile findings where the rule score raised P(hit): %d, %d of them worth a point or more", ruleRaised, profilePointed)
	if ruleRaised < 20 || profilePointed < ruleRaised*9/10 {
		t.Errorf("profile findings where the rule score raised P(hit): %d, of which %d worth a point or more; want at least 20, nearly all worth points", ruleRaised, profilePointed)
	}
	if scored < 500 {
		t.Errorf("only %d of %d assessments scored by the model", scored, len(ids))
	}
	if entity == 0 {
		t.Error("no model explanation names an entity's hits and inspections")
	}
}

// A checkpoint keeps the model, its training window and the entity history:
// a replay stopped halfway, saved, restored and continued assesses the
// second half exactly as an uninterrupted replay does. (It stops between two
// micro-batches: a batch cut in two is two batches.)
func TestModelCheckpoint(t *testing.T) {
	decls, outcomes, _ := modelStream(t, 5000)
	whole, ids, _ := replayModel(t, decls, outcomes)

	half := 10 * engine.BatchSize
	lines := strings.SplitAfter(string(decls), "\n")
	first := []byte(strings.Join(lines[:half], ""))
	second := []byte(strings.Join(lines[half:], ""))
	last, err := declaration.DecodeDeclaration([]byte(strings.TrimSpace(lines[half-1])))
	if err != nil {
		t.Fatal(err)
	}
	var early, late strings.Builder
	for _, l := range strings.SplitAfter(string(outcomes), "\n") {
		if l == "" {
			continue
		}
		o, err := declaration.DecodeOutcome([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if o.InspectedAt.After(last.LodgedAt) {
			late.WriteString(l)
		} else {
			early.WriteString(l)
		}
	}
	cfg := modelConfig(t)
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Replay(e, ReplayOptions{Input: bytes.NewReader(first), InputName: "d", Outcomes: strings.NewReader(early.String()), OutcomesName: "o",
		Output: io.Discard, Errors: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if e.Model() == nil {
		t.Fatal("no model after the first half")
	}
	dir := t.TempDir() + "/state"
	if err := e.SaveState(dir, nil); err != nil {
		t.Fatal(err)
	}
	e2, restored, why, err := engine.NewFromState(cfg, dir)
	if err != nil || !restored {
		t.Fatalf("not restored: %s %v", why, err)
	}
	if e2.Model() == nil || e2.Model().Name != e.Model().Name {
		t.Fatalf("model not restored: %v", e2.Model())
	}
	var out bytes.Buffer
	if _, err := Replay(e2, ReplayOptions{Input: bytes.NewReader(second), InputName: "d", Outcomes: strings.NewReader(late.String()), OutcomesName: "o",
		Output: &out, Errors: io.Discard}); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(assessedAt.ReplaceAllString(out.String(), "")), "\n")
	if len(got) != 5000-half {
		t.Fatalf("%d assessments in the second half", len(got))
	}
	for i, l := range got {
		if want := whole[ids[half+i]]; l != want {
			t.Fatalf("after the restart, %s differs:\n%s\n%s", ids[half+i], want, l)
		}
	}
}
