package batch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/synth"
)

// stream is a small generated history, made once for the package's tests.
var stream = sync.OnceValues(func() (decls, outcomes []byte) {
	var d, o bytes.Buffer
	if err := synth.Write(synth.Options{Count: 6000, Seed: 5, InspectRate: 0.1}, synth.Writers{Declarations: &d, Outcomes: &o}); err != nil {
		panic(err)
	}
	return d.Bytes(), o.Bytes()
})

var streamTruth = sync.OnceValue(func() map[string]*declaration.Outcome {
	var d, tr bytes.Buffer
	if err := synth.Write(synth.Options{Count: 6000, Seed: 5, InspectRate: 0.1}, synth.Writers{Declarations: &d, Truth: &tr}); err != nil {
		panic(err)
	}
	m := map[string]*declaration.Outcome{}
	sc := bufio.NewScanner(&tr)
	for sc.Scan() {
		o, err := declaration.DecodeOutcome(sc.Bytes())
		if err != nil {
			panic(err)
		}
		m[o.DeclarationID] = o
	}
	return m
})

// noUnitValue is the built-in configuration with the unit_value detector
// switched off.
func noUnitValue(t *testing.T) *config.Config {
	t.Helper()
	yml := strings.Replace(string(config.DefaultYAML()), "  - name: unit_value\n", "  - name: unit_value\n    enabled: false\n", 1)
	c, err := config.Parse([]byte(yml), "no-uv.yml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newEngine(t *testing.T, c *config.Config) *engine.Engine {
	t.Helper()
	e, err := engine.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func compareOpts(truth bool) CompareOptions {
	d, o := stream()
	opts := CompareOptions{
		OpenInput:    func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(d)), nil },
		InputName:    "d.jsonl",
		OpenOutcomes: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(o)), nil },
		OutcomesName: "o.jsonl",
		Window:       Window{Warmup: 0.5},
	}
	if truth {
		opts.Truth = streamTruth()
	}
	return opts
}

// A configuration compared with itself changes nothing: the transition
// matrix is diagonal and equals the channel counts.
func TestCompareSame(t *testing.T) {
	c, err := Compare(newEngine(t, config.Default()), newEngine(t, config.Default()), compareOpts(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Changed) != 0 {
		t.Errorf("%d changed declarations, want 0; first %+v", len(c.Changed), c.Changed[0])
	}
	for i := range 3 {
		for j := range 3 {
			want := 0
			if i == j {
				want = c.Base.Stats.Channels[i]
			}
			if c.Transitions[i][j] != want {
				t.Errorf("transitions[%d][%d] = %d, want %d", i, j, c.Transitions[i][j], want)
			}
		}
	}
	if !reflect.DeepEqual(c.Base.Eval, c.Candidate.Eval) {
		t.Error("evaluations differ")
	}
}

// The two replays run at the same time give what they give one after the
// other, and what a plain replay gives.
func TestCompareConcurrentDeterministic(t *testing.T) {
	strip := func(c *Comparison) ([]Scored, []Scored, [3][3]int) {
		return c.Base.Stats.Scores, c.Candidate.Stats.Scores, c.Transitions
	}
	a, err := Compare(newEngine(t, config.Default()), newEngine(t, noUnitValue(t)), compareOpts(false))
	if err != nil {
		t.Fatal(err)
	}
	o := compareOpts(false)
	o.Sequential = true
	b, err := Compare(newEngine(t, config.Default()), newEngine(t, noUnitValue(t)), o)
	if err != nil {
		t.Fatal(err)
	}
	ab, ac, at := strip(a)
	bb, bc, bt := strip(b)
	if !reflect.DeepEqual(ab, bb) || !reflect.DeepEqual(ac, bc) || at != bt {
		t.Fatal("concurrent and sequential comparisons differ")
	}
	d, oc := stream()
	st, err := Replay(newEngine(t, noUnitValue(t)), ReplayOptions{Input: bytes.NewReader(d), InputName: "d", Outcomes: bytes.NewReader(oc),
		OutcomesName: "o", Output: io.Discard, Errors: io.Discard, KeepScores: true, KeepFindings: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Scores, ac) {
		t.Fatal("the candidate's run differs from a plain replay")
	}
}

// Switching a detector off: the matrix accounts for every declaration, its
// off-diagonal cells are the changed declarations, which are ordered by
// score change and name the detector's findings as the difference.
func TestCompareDisabledDetector(t *testing.T) {
	c, err := Compare(newEngine(t, config.Default()), newEngine(t, noUnitValue(t)), compareOpts(true))
	if err != nil {
		t.Fatal(err)
	}
	total, off := 0, 0
	for i := range 3 {
		for j := range 3 {
			total += c.Transitions[i][j]
			if i != j {
				off += c.Transitions[i][j]
			}
		}
		row, col := 0, 0
		for j := range 3 {
			row += c.Transitions[i][j]
			col += c.Transitions[j][i]
		}
		if row != c.Base.Stats.Channels[i] || col != c.Candidate.Stats.Channels[i] {
			t.Errorf("channel %d: row %d col %d, channels %d %d", i, row, col, c.Base.Stats.Channels[i], c.Candidate.Stats.Channels[i])
		}
	}
	if total != 6000 || off != len(c.Changed) || off == 0 {
		t.Fatalf("total %d, off-diagonal %d, changed %d", total, off, len(c.Changed))
	}
	uvRemoved := 0
	for i, x := range c.Changed {
		if x.Base.Channel == x.Candidate.Channel || x.Base.ID != x.Candidate.ID {
			t.Fatalf("change %d: %+v", i, x)
		}
		if i > 0 && math.Abs(x.ScoreChange()) > math.Abs(c.Changed[i-1].ScoreChange()) {
			t.Fatalf("changes not ordered by score change at %d", i)
		}
		for _, f := range x.Removed {
			if f.Detector == "unit_value" {
				uvRemoved++
			}
		}
		for _, f := range x.Added {
			if f.Detector == "unit_value" {
				t.Errorf("%s: unit_value finding added by the candidate that has it off", x.Base.ID)
			}
		}
	}
	// What the truth says of the declarations that moved, each way.
	var lighter, stricter KnownMoves
	for _, x := range c.Changed {
		m := &stricter
		if x.Candidate.Channel < x.Base.Channel {
			m = &lighter
		}
		if o := streamTruth()[x.Base.ID]; o.Hit {
			m.Hits++
			m.Revenue += o.Revenue
		} else {
			m.Clean++
		}
	}
	if c.KnownFrom != "truth" || c.Lighter != lighter || c.Stricter != stricter || lighter.Hits == 0 {
		t.Errorf("known from %q: lighter %+v, stricter %+v; the truth says %+v, %+v (and some hits moved lighter without unit_value)",
			c.KnownFrom, c.Lighter, c.Stricter, lighter, stricter)
	}
	if uvRemoved < len(c.Changed)/2 {
		t.Errorf("unit_value removed in only %d of %d changes", uvRemoved, len(c.Changed))
	}
	if f := c.Candidate.DetectorFiring["unit_value"]; f != nil {
		t.Errorf("the candidate fired unit_value: %+v", f)
	}
	if f := c.Base.DetectorFiring["unit_value"]; f == nil || f.Fired == 0 || f.Hits == 0 || f.Hits > f.Fired {
		t.Errorf("the base's unit_value firing: %+v", f)
	}
	// Firing counts declarations, not findings: once per declaration.
	with := map[string]int{}
	for _, sc := range c.Base.Stats.Scores {
		seen := map[string]bool{}
		for _, f := range sc.Findings {
			if !seen[f.Detector] && (f.Detector != "aeo" || f.Points != 0) {
				seen[f.Detector] = true
				with[f.Detector]++
			}
		}
	}
	for d, n := range with {
		if f := c.Base.DetectorFiring[d]; f == nil || f.Fired != n {
			t.Errorf("%s: firing %+v, %d declarations with its findings", d, f, n)
		}
	}
	s := c.Summary(3)
	for _, want := range []string{"compare: 6000 declarations read, 6000 assessed", "channel transitions", "base \\ candidate",
		"changed channel: ", "known from the truth: to a lighter channel ", "evaluation on declarations 3001-6000", "firing over all declarations", "unit_value", "-unit_value ", "(3 of "} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "\n  GT") != 3 {
		t.Errorf("want 3 changed declarations listed:\n%s", s)
	}
	var buf bytes.Buffer
	if err := c.WriteChanged(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(c.Changed) {
		t.Fatalf("%d lines for %d changes", len(lines), len(c.Changed))
	}
	var first changeJSON
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	x := c.Changed[0]
	if first.ID != x.Base.ID || first.Base.Channel != x.Base.Channel.String() || first.Candidate.Channel != x.Candidate.Channel.String() ||
		math.Abs(first.ScoreChange-x.ScoreChange()) > 0.01 || len(first.Removed) != len(x.Removed) {
		t.Errorf("first line %s for %+v", lines[0], x)
	}
}

// Without truth, the comparison shows what the outcomes given say.
func TestCompareOutcomesOnly(t *testing.T) {
	c, err := Compare(newEngine(t, config.Default()), newEngine(t, noUnitValue(t)), compareOpts(false))
	if err != nil {
		t.Fatal(err)
	}
	if c.Base.Eval != nil {
		t.Fatal("an evaluation without truth")
	}
	// What the outcomes say of the declarations that moved: only the
	// inspected are known.
	_, outc := stream()
	known := readTruthLines(t, outc) // outcome lines, as truth's
	var lighter, stricter KnownMoves
	for _, x := range c.Changed {
		m := &stricter
		if x.Candidate.Channel < x.Base.Channel {
			m = &lighter
		}
		if o := known[x.Base.ID]; o != nil && o.Hit {
			m.Hits++
			m.Revenue += o.Revenue
		} else if o != nil {
			m.Clean++
		}
	}
	if c.KnownFrom != "outcomes" || c.Lighter != lighter || c.Stricter != stricter || lighter.Hits+lighter.Clean+stricter.Hits+stricter.Clean == 0 {
		t.Errorf("known from %q: lighter %+v, stricter %+v; the outcomes say %+v, %+v", c.KnownFrom, c.Lighter, c.Stricter, lighter, stricter)
	}
	s := c.Summary(0)
	for _, want := range []string{"outcome monitoring", "random", "hits among the inspected", "inspected", "known from the outcomes given (inspected declarations only): to a lighter channel "} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "evaluation on") || strings.Contains(s, "largest score changes") {
		t.Errorf("unexpected section:\n%s", s)
	}
	if c.Base.Stats.Monitor.Random().Inspected == 0 {
		t.Error("no random inspection attributed")
	}
}

// diff names what differs between two assessments of a declaration.
func TestDiff(t *testing.T) {
	fd := func(det, rule string, pts float64) declaration.Finding {
		return declaration.Finding{Detector: det, Rule: rule, Points: pts, Reason: det + " reason"}
	}
	f := func(base, cand []declaration.Finding, added, removed, moved string) {
		t.Helper()
		ch := diff(Scored{ID: "x", Findings: base}, Scored{ID: "x", Findings: cand})
		names := func(fs []declaration.Finding) string {
			var s []string
			for _, f := range fs {
				s = append(s, f.Detector+"/"+f.Rule)
			}
			return strings.Join(s, ",")
		}
		var mv []string
		for _, m := range ch.Moved {
			mv = append(mv, m.Detector+"/"+m.Rule)
		}
		if got := names(ch.Added); got != added {
			t.Errorf("added %q, want %q", got, added)
		}
		if got := names(ch.Removed); got != removed {
			t.Errorf("removed %q, want %q", got, removed)
		}
		if got := strings.Join(mv, ","); got != moved {
			t.Errorf("moved %q, want %q", got, moved)
		}
	}
	a, b := fd("unit_value", "", 40), fd("route", "", 10)
	p1, p2 := fd("profiles", "TD-ROUTED", 30), fd("profiles", "WATCH-IMP", 30)
	f(nil, nil, "", "", "")
	f([]declaration.Finding{a, b}, []declaration.Finding{b}, "", "unit_value/", "")
	f([]declaration.Finding{b}, []declaration.Finding{a, b}, "unit_value/", "", "")
	f([]declaration.Finding{p1}, []declaration.Finding{p2}, "profiles/WATCH-IMP", "profiles/TD-ROUTED", "")
	f([]declaration.Finding{b}, []declaration.Finding{fd("route", "", 10.3)}, "", "", "")
	f([]declaration.Finding{b}, []declaration.Finding{fd("route", "", 18)}, "", "", "route/")
}
