package engine

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/internal/testkit"
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
func (f *fixed) Pending(_ *declaration.Declaration, _ *declaration.Assessment, b []byte) []byte {
	return b
}
func (f *fixed) LearnOutcome(o *declaration.Outcome, _ []byte) {
	*f.log = append(*f.log, "outcome "+o.DeclarationID)
}

func testEngine(t *testing.T, yml string, dets ...detectors.Detector) *Engine {
	t.Helper()
	c, err := config.Parse([]byte(yml), "test")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewWithDetectors(c, dets...)
	if err != nil {
		t.Fatal(err)
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

// Assess is safe for concurrent use across importers: four goroutines, each
// with its own importers, share the peer statistics (run under -race), and
// every declaration gets a complete assessment.
func TestConcurrentAssess(t *testing.T) {
	decls, _ := testkit.GenDecls(t, 4000, 13)
	e, err := New(config.Default())
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
	if entries, _, _ := e.Store().Stats(); entries == 0 {
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
