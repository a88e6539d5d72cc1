package pipeline

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
)

// fixed is a test detector that reports the findings it is given, and
// records what it was asked to do and in which order.
type fixed struct {
	name     string
	findings map[string][]detectors.Finding // by declaration id
	log      *[]string
	seen     map[string]bool
}

func (f *fixed) Name() string { return f.name }
func (f *fixed) Score(d *declaration.Declaration, out []detectors.Finding) []detectors.Finding {
	*f.log = append(*f.log, fmt.Sprintf("score %s %s seen=%v", f.name, d.ID, f.seen[d.ID]))
	return append(out, f.findings[d.ID]...)
}
func (f *fixed) Learn(d *declaration.Declaration, _ *declaration.Assessment) {
	*f.log = append(*f.log, "learn "+f.name+" "+d.ID)
	f.seen[d.ID] = true
}
func (f *fixed) LearnOutcome(o *declaration.Outcome) {
	*f.log = append(*f.log, "outcome "+o.DeclarationID)
}

func testEngine(t *testing.T, yml string, dets ...detectors.Detector) *Engine {
	t.Helper()
	c, err := config.Parse([]byte(yml), "test")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(c)
	if err != nil {
		t.Fatal(err)
	}
	rs := e.rs.Load()
	rs.dets = dets
	rs.learners = nil
	rs.cals = nil
	for range dets {
		rs.cals = append(rs.cals, newCalibrator(0.001, 0, true))
	}
	for _, d := range dets {
		if l, ok := d.(detectors.OutcomeLearner); ok {
			rs.learners = append(rs.learners, l)
		}
	}
	return e
}

func finding(name string, weight, strength float64) detectors.Finding {
	f := detectors.Finding{Weight: weight}
	f.Detector, f.Score, f.Reason = name, strength, name+" fired"
	return f
}

func simpleDecl(id string) *declaration.Declaration {
	return &declaration.Declaration{ID: id, LodgedAt: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Importer: declaration.Importer{ID: "I1"},
		Items: []declaration.Item{{Line: 1, HSCode: "851713", Origin: "CN", GrossMassKg: 1, CustomsValue: 1}}}
}

const noRandom = "name: t\nrandom: {rate: 0}\nscoring: {yellow: 40, red: 70, aeo_factor: 0.5}\n"

// Findings combine by noisy-OR; each finding's points are its share of the
// score; the reported points add up to the score.
func TestScoring(t *testing.T) {
	var log []string
	a := &fixed{name: "a", log: &log, seen: map[string]bool{}, findings: map[string][]detectors.Finding{
		"D1": {finding("a", 50, 1), finding("b", 60, 0.5)},
		"D2": {finding("a", 100, 0.2)},
		"D3": {finding("a", 90, 1), finding("b", 90, 1)},
		"D4": {itemFinding("a", 60, 0.5, 1), itemFinding("a", 60, 1, 3), itemFinding("a", 60, 0.2, 2)},
	}}
	e := testEngine(t, noRandom, a)
	f := func(id string, aeo bool, wantScore float64, wantChannel declaration.Channel) *declaration.Assessment {
		t.Helper()
		d := simpleDecl(id)
		d.Importer.AEO = aeo
		as := e.Assess(d)
		if math.Abs(as.Score-wantScore) > 1e-9 || as.Channel != wantChannel || as.SelectedBy != "score" {
			t.Errorf("%s: score %.4f channel %v by %s, want %.4f %v", id, as.Score, as.Channel, as.SelectedBy, wantScore, wantChannel)
		}
		var sum float64
		for _, fd := range as.Findings {
			sum += fd.Points
		}
		if math.Abs(sum-as.Score) > 1e-9 {
			t.Errorf("%s: points add up to %.4f, score %.4f", id, sum, as.Score)
		}
		return as
	}
	as := f("D1", false, 100*(1-0.5*0.7), declaration.Yellow) // 65
	if as.Findings[0].Points < as.Findings[1].Points {
		t.Errorf("findings not sorted by points: %+v", as.Findings)
	}
	if got := as.Findings[0].Points; math.Abs(got-65*50.0/80) > 1e-9 {
		t.Errorf("share of the 50-point finding: %.4f", got)
	}
	f("D2", false, 20, declaration.Green)
	f("D3", false, 99, declaration.Red)
	as = f("D3", true, 49.5, declaration.Yellow)
	if last := as.Findings[len(as.Findings)-1]; last.Detector != "aeo" || !strings.Contains(last.Reason, "from 99 to 49.5") {
		t.Errorf("AEO finding: %+v", last)
	}
	f("NONE", false, 0, declaration.Green)
	// One detector on three items of a declaration: one piece of evidence.
	as = f("D4", false, 60, declaration.Yellow)
	if len(as.Findings) != 1 || as.Findings[0].ItemLine != 3 || !strings.HasSuffix(as.Findings[0].Reason, "(also on items 1, 2)") {
		t.Errorf("collapsed findings: %+v", as.Findings)
	}
}

func itemFinding(name string, weight, strength float64, line int) detectors.Finding {
	f := finding(name, weight, strength)
	f.ItemLine = line
	return f
}

// Every detector scores before any learns, so no detector sees the
// declaration in its own state ("test, then train").
func TestTestThenTrain(t *testing.T) {
	var log []string
	a := &fixed{name: "a", log: &log, seen: map[string]bool{}}
	b := &fixed{name: "b", log: &log, seen: map[string]bool{}}
	e := testEngine(t, noRandom, a, b)
	e.Assess(simpleDecl("D1"))
	want := "score a D1 seen=false|score b D1 seen=false|learn a D1|learn b D1"
	if got := strings.Join(log, "|"); got != want {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestForcedChannelAndRandom(t *testing.T) {
	var log []string
	force := finding("p", 0, 1)
	force.Force, force.HasForce, force.Rule = declaration.Red, true, "R1"
	green := finding("p", 0, 1)
	green.Force, green.HasForce = declaration.Green, true
	a := &fixed{name: "p", log: &log, seen: map[string]bool{}, findings: map[string][]detectors.Finding{
		"F1": {force}, "F2": {green, finding("x", 95, 1)}}}
	e := testEngine(t, noRandom, a)
	if as := e.Assess(simpleDecl("F1")); as.Channel != declaration.Red || as.SelectedBy != "profile" || as.Score != 0 {
		t.Errorf("forced red: %+v", as)
	}
	if as := e.Assess(simpleDecl("F2")); as.Channel != declaration.Green || as.SelectedBy != "profile" || as.Score != 95 {
		t.Errorf("forced green keeps the score: %+v", as)
	}
	// Random selection: about the configured rate, the same ids every run,
	// other ids with another salt, whatever the score.
	sel := func(salt string) map[string]bool {
		e := testEngine(t, "name: t\nrandom: {rate: 0.05, channel: yellow, salt: "+salt+"}\n")
		m := map[string]bool{}
		for i := 0; i < 20000; i++ {
			id := fmt.Sprintf("D%d", i)
			as := e.Assess(simpleDecl(id))
			if as.SelectedBy == "random" {
				if as.Channel != declaration.Yellow {
					t.Fatalf("random channel %v", as.Channel)
				}
				m[id] = true
			}
		}
		return m
	}
	s1, s2, s3 := sel("a"), sel("a"), sel("b")
	if n := len(s1); n < 900 || n > 1100 {
		t.Errorf("random selected %d of 20000 at rate 0.05", n)
	}
	if fmt.Sprint(s1) != fmt.Sprint(s2) {
		t.Error("random selection differs between runs")
	}
	common := 0
	for id := range s1 {
		if s3[id] {
			common++
		}
	}
	if common > len(s1)/5 {
		t.Errorf("another salt selected %d of the same %d ids", common, len(s1))
	}
}

// Outcomes are applied once the stream's event time (the latest lodged_at
// seen) reaches their inspected_at, before the declaration that moved it.
func TestReplayOutcomeTiming(t *testing.T) {
	var log []string
	a := &fixed{name: "a", log: &log, seen: map[string]bool{}}
	e := testEngine(t, noRandom, a)
	decls := ""
	for i, ts := range []string{"2026-03-01T10:00:00Z", "2026-03-03T10:00:00Z", "2026-03-02T10:00:00Z", "2026-03-05T10:00:00Z"} {
		decls += fmt.Sprintf(`{"id":"D%d","lodged_at":%q,"office":"O","importer":{"id":"I"},"currency":"USD","items":[{"line":1,"hs_code":"851713","origin":"CN","gross_mass_kg":1,"customs_value":1}]}`+"\n", i+1, ts)
	}
	outcomes := `{"declaration_id":"X3","inspected_at":"2026-03-04T00:00:00Z","result":"clean"}
{"declaration_id":"X1","inspected_at":"2026-03-02T10:00:00Z","result":"hit"}
not an outcome
{"declaration_id":"X2","inspected_at":"2026-03-03T09:00:00Z","result":"clean"}
{"declaration_id":"X4","inspected_at":"2026-04-01T00:00:00Z","result":"clean"}
`
	var errs bytes.Buffer
	st, err := Replay(e, ReplayOptions{Input: strings.NewReader(decls), InputName: "d", Outcomes: strings.NewReader(outcomes), OutcomesName: "o",
		Output: &bytes.Buffer{}, Errors: &errs})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, l := range log {
		if strings.HasPrefix(l, "outcome") || strings.HasPrefix(l, "score") {
			order = append(order, strings.Fields(l)[len(strings.Fields(l))-2+boolInt(strings.HasPrefix(l, "outcome"))])
		}
	}
	// D3 (03-02) does not move event time back: X1 (03-02 10:00) was already
	// due at D2 (03-03 10:00), along with X2.
	want := "D1 X1 X2 D2 D3 X3 D4"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	if st.OutcomesApplied != 3 || st.OutcomesRead != 4 || st.OutcomesBad != 1 {
		t.Errorf("outcome counts %+v", st)
	}
	if !strings.Contains(errs.String(), "o line 3: not valid JSON") {
		t.Errorf("invalid outcome not reported with its line: %q", errs.String())
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Replay of the spec's examples: every valid line assessed with every field
// of the assessment, every invalid one reported with its line number and the
// spec's reason, and a dead letter with the original bytes.
func TestReplaySpecExamples(t *testing.T) {
	valid, _ := os.ReadFile("../declaration/testdata/declarations-valid.jsonl")
	invalid, _ := os.ReadFile("../declaration/testdata/declarations-invalid.jsonl")
	reasons, _ := os.ReadFile("../declaration/testdata/declarations-invalid.reasons")
	input := append(append(append([]byte{}, valid...), '\n'), invalid...) // a blank line between: skipped
	e, err := NewEngine(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	var out, errs, dl bytes.Buffer
	st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(input), InputName: "in.jsonl", Output: &out, Errors: &errs, DeadLetters: &dl})
	if err != nil {
		t.Fatal(err)
	}
	nValid := bytes.Count(valid, []byte("\n"))
	nInvalid := bytes.Count(invalid, []byte("\n"))
	if st.Assessed != nValid || st.Invalid != nInvalid {
		t.Fatalf("assessed %d invalid %d, want %d and %d", st.Assessed, st.Invalid, nValid, nInvalid)
	}
	assessment := regexp.MustCompile(`^\{"schema":"assessment/v1","declaration_id":"GT26IM00012[345]","importer_id":"IMP-\d+","lodged_at":"[^"]+","assessed_at":"[^"]+","score":[0-9.]+,"channel":"(green|yellow|red)","selected_by":"(score|profile|random)","ruleset":"default@[0-9a-f]{8}","findings":\[.*\]\}$`)
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !assessment.MatchString(l) {
			t.Errorf("assessment line does not match the spec: %s", l)
		}
	}
	errLines := strings.Split(strings.TrimSpace(errs.String()), "\n")
	for i, want := range strings.Split(strings.TrimSpace(string(reasons)), "\n") {
		n, reason, _ := strings.Cut(want, ": ")
		var line int
		fmt.Sscanf(n, "line %d", &line)
		prefix := fmt.Sprintf("in.jsonl line %d: %s", line+nValid+1, reason)
		if i >= len(errLines) || !strings.HasPrefix(errLines[i], prefix) {
			t.Errorf("error line %d: got %q, want prefix %q", i, errLines[min(i, len(errLines)-1)], prefix)
		}
	}
	dls := strings.Split(strings.TrimSpace(dl.String()), "\n")
	if len(dls) != nInvalid || !strings.Contains(dls[12], `"original":"not json"`) || !strings.Contains(dls[0], `"line":5,`) {
		t.Errorf("dead letters: %d\n%s", len(dls), dl.String())
	}
}

// Two replays of the same input give the same bytes but for assessed_at.
func TestReplayDeterministic(t *testing.T) {
	_, raw := genDecls(t, 3000, 11)
	run := func() string {
		e, err := NewEngine(config.Default())
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := Replay(e, ReplayOptions{Input: bytes.NewReader(raw), InputName: "x", Output: &out, Errors: &bytes.Buffer{}}); err != nil {
			t.Fatal(err)
		}
		return regexp.MustCompile(`"assessed_at":"[^"]+"`).ReplaceAllString(out.String(), "")
	}
	a, b := run(), run()
	if a != b {
		t.Fatal("two replays differ")
	}
	if n := strings.Count(a, "\n"); n != 3000 {
		t.Fatalf("%d assessments for 3000 declarations", n)
	}
	if !strings.Contains(a, `"detector":"unit_value"`) {
		t.Error("no unit_value finding in 3000 generated declarations")
	}
}

func TestReplayTooLarge(t *testing.T) {
	e := testEngine(t, "name: t\nengine: {max_message_bytes: 2048}\n")
	big := `{"id":"BIG","pad":"` + strings.Repeat("x", 5000) + `"}`
	var errs bytes.Buffer
	st, err := Replay(e, ReplayOptions{Input: strings.NewReader("\n" + big + "\n"), InputName: "f", Output: &bytes.Buffer{}, Errors: &errs})
	if err != nil {
		t.Fatal(err)
	}
	if st.Invalid != 1 || !strings.Contains(errs.String(), "f line 2: message of 5021 bytes is larger than the 2048-byte limit") {
		t.Errorf("too large: %+v %q", st, errs.String())
	}
}

// Exactly k % is selected even when scores tie; precision, recall and revenue
// are computed on the evaluated part only.
func TestEvaluate(t *testing.T) {
	var scores []Scored
	truth := map[string]*declaration.Outcome{}
	for i := 0; i < 400; i++ {
		id := fmt.Sprintf("D%03d", i)
		s := 0.0
		if i >= 200 && i < 210 {
			s = 90 // ten high scores in the evaluated half, six of them hits
		}
		scores = append(scores, Scored{ID: id, Score: s})
		hit := (i >= 200 && i < 206) || i == 300 || i == 10
		truth[id] = &declaration.Outcome{DeclarationID: id, Hit: hit}
		if hit {
			truth[id].Revenue = 100
		}
	}
	ev := Evaluate(scores, truth, 0.5)
	if ev.N != 200 || ev.Hits != 7 || ev.Revenue != 700 {
		t.Fatalf("evaluated %d, hits %d, revenue %g", ev.N, ev.Hits, ev.Revenue)
	}
	r := ev.Rows[2] // 5 % of 200 = 10: exactly the ten high scores
	if r.Selected != 10 || r.Hits != 6 || math.Abs(r.Precision-0.6) > 1e-9 || math.Abs(r.Recall-6.0/7) > 1e-9 || math.Abs(r.RevenueShare-600.0/700) > 1e-9 {
		t.Errorf("5%% row: %+v", r)
	}
	if ev.Rows[0].Selected != 2 || ev.Rows[3].Selected != 20 {
		t.Errorf("1%% and 10%% sizes: %d %d", ev.Rows[0].Selected, ev.Rows[3].Selected)
	}
	if !strings.Contains(ev.Table(), "5%") {
		t.Error("table lacks the 5% row")
	}
}

// Assess is safe for concurrent use across importers: four goroutines, each
// with its own importers, share the peer statistics (run under -race), and
// every declaration gets a complete assessment.
func TestConcurrentAssess(t *testing.T) {
	decls, _ := genDecls(t, 4000, 13)
	e, err := NewEngine(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	const workers = 4
	var wg sync.WaitGroup
	counts := make([]int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for _, d := range decls {
				if int(xxhash.Sum64String(d.Importer.ID)%workers) != w {
					continue
				}
				a := e.Assess(d)
				if a.DeclarationID != d.ID || a.Score < 0 || a.Score > 100 || a.Ruleset == "" {
					t.Errorf("bad assessment %+v", a)
				}
				counts[w]++
			}
		}(w)
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	if total != len(decls) {
		t.Fatalf("%d assessed of %d", total, len(decls))
	}
	if entries, _ := e.Store().Stats(); entries == 0 {
		t.Fatal("no state learned")
	}
}

// The calibrator's tail counts agree with counting by hand, and its mapping
// rises with strength: rare strong findings near 1, common weak ones low.
func TestCalibrator(t *testing.T) {
	c := newCalibrator(0.001, 0, false)
	var raw []float64
	for i := 0; i < 10000; i++ {
		s := 0.0
		switch {
		case i%2 == 0:
			s = 0.1 // half the declarations: a weak finding
		case i%1000 == 1:
			s = 0.9 // one in a thousand: a strong one
		}
		raw = append(raw, s)
		c.observe(s)
	}
	for _, s := range []float64{0.05, 0.1, 0.5, 0.9} {
		var above uint64
		for _, r := range raw {
			if calBin(r) >= calBin(s) {
				above++
			}
		}
		if got := c.n.Load() - c.below(calBin(s)); got != above {
			t.Errorf("tail count at %.2f: %d, want %d", s, got, above)
		}
	}
	weak, strong := c.calibrate(0.1), c.calibrate(0.9)
	if weak > 0.11 || strong < 0.9 || strong > 1 {
		t.Errorf("calibrated weak %.3f strong %.3f", weak, strong)
	}
}
