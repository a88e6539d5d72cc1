package batch

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// networkRef matches anything in a page that could make a browser reach
// out: a URL scheme, a protocol-relative or absolute reference, an import or
// a url() in a style, a script, a link or an embedded frame.
var networkRef = regexp.MustCompile(`(?i)(\b(https?|ftp|wss?|file|data):|//|\bsrc\s*=|\bhref\s*=|@import|url\s*\(|<script|<link|<iframe|<object|<embed|<img)`)

// checkSelfContained fails the test on any network reference in page.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, m := range networkRef.FindAllStringIndex(page, 5) {
		lo, hi := max(m[0]-60, 0), min(m[1]+60, len(page))
		t.Errorf("network reference %q in the report: …%s…", page[m[0]:m[1]], page[lo:hi])
	}
}

func TestNetworkRefPattern(t *testing.T) {
	for _, bad := range []string{`<img src="x.png">`, `<a href="#top">`, `@import "a.css"`, `background:url(x)`, `//cdn.example/x.js`,
		`<script>`, `<link rel=stylesheet>`, `https:x`} {
		if !networkRef.MatchString(bad) {
			t.Errorf("%q not caught", bad)
		}
	}
	if networkRef.MatchString(`<svg viewBox="0 0 10 10"><text x="1">hits/inspections 1/2</text></svg>`) {
		t.Error("a plain SVG is caught")
	}
}

func writeReport(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteReport(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// compare's report: self-contained, with every section, the two sides side
// by side and the transition matrix.
func TestReportCompare(t *testing.T) {
	c, err := Compare(newEngine(t, config.Default()), newEngine(t, noUnitValue(t)), compareOpts(true))
	if err != nil {
		t.Fatal(err)
	}
	page := writeReport(t, &Report{Title: "riskmon compare", Input: "d.jsonl", Sides: []*Side{c.Base, c.Candidate}, Comparison: c,
		Truth: streamTruth(), Window: Window{Warmup: 0.5}})
	checkSelfContained(t, page)
	for _, want := range []string{"<!DOCTYPE html>", "<h2>Channel transitions</h2>", "base \\ candidate", "findings that made the difference",
		"<h2>Precision and revenue against inspection rate</h2>", "<h2>Score distributions</h2>", "<h2>Channel shares over time</h2>",
		"<h2>Outcome monitoring</h2>", "<h2>Detectors and profiles</h2>", "--n:2", "-unit_value", "random compliance sample", "profile TD-ROUTED"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// three charts a side: precision, scores, channel shares
	if n := strings.Count(page, "<svg "); n != 6 {
		t.Errorf("%d charts, want 6 (3 a side)", n)
	}
	if strings.Count(page, "<svg ") != strings.Count(page, "</svg>") {
		t.Error("unbalanced svg elements")
	}
	// The score distributions count the evaluated hits and clean ones.
	if want := fmt.Sprintf("score distribution: %d hits, %d clean", c.Base.Eval.Hits, c.Base.Eval.N-c.Base.Eval.Hits); !strings.Contains(page, want) {
		t.Errorf("report lacks %q", want)
	}
	if strings.Contains(page, "NaN") || strings.Contains(page, "Inf") {
		t.Error("NaN or Inf in the report")
	}
	if !strings.Contains(page, "<polyline") || !strings.Contains(page, "<rect") {
		t.Error("charts without lines or bars")
	}
}

// replay's report without truth: one side, the score distributions among
// the inspected, no precision curve.
func TestReportReplayOutcomes(t *testing.T) {
	d, o := stream()
	e := newEngine(t, config.Default())
	st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(d), InputName: "d", Outcomes: bytes.NewReader(o), OutcomesName: "o",
		Output: io.Discard, Errors: io.Discard, KeepScores: true, KeepFindings: true})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]*declaration.Outcome{}
	for _, l := range bytes.Split(bytes.TrimSpace(o), []byte("\n")) {
		oc, err := declaration.DecodeOutcome(l)
		if err != nil {
			t.Fatal(err)
		}
		outcomes[oc.DeclarationID] = oc
	}
	page := writeReport(t, &Report{Title: "riskmon replay", Input: "d.jsonl", Sides: []*Side{NewSide("replay", e, st, nil, Window{Warmup: 0.5})}, Outcomes: outcomes})
	checkSelfContained(t, page)
	if strings.Contains(page, "Precision and revenue") || strings.Contains(page, "Channel transitions") {
		t.Error("truth or compare sections in a replay report without truth")
	}
	for _, want := range []string{"Scores of the inspected declarations", "<h2>Outcome monitoring</h2>", "<h2>Detectors and profiles</h2>", "--n:1"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(page, "<svg "); n != 2 {
		t.Errorf("%d charts, want 2", n)
	}
}

// Text from the data (ids, reasons, file names) is escaped: a hostile
// reason cannot inject markup or a reference.
func TestReportEscapes(t *testing.T) {
	evil := `<script src="https://evil.example/x.js"></script>`
	sc := Scored{ID: "GT1" + evil, Channel: declaration.Red, Score: 80, Findings: []declaration.Finding{{Detector: "unit_value", Points: 80, Reason: evil}}}
	base := Scored{ID: sc.ID, Channel: declaration.Green}
	st := &ReplayStats{Lines: 1, Assessed: 1, SelectedBy: map[string]int{}, Monitor: newMonitor(), Scores: []Scored{sc}}
	side := &Side{Label: "candidate", Ruleset: evil, Source: evil, Stats: st, DetectorFiring: map[string]*Firing{}, ProfileFiring: map[string]*Firing{}}
	c := &Comparison{Base: side, Candidate: side, Changed: []Change{diff(base, sc)}}
	page := writeReport(t, &Report{Title: evil, Input: evil, Sides: []*Side{side}, Comparison: c})
	if strings.Contains(page, "<script") || strings.Contains(page, `src="`) {
		t.Error("unescaped text in the report")
	}
	if !strings.Contains(page, "&lt;script") {
		t.Error("the escaped text is missing")
	}
}

func TestCurve(t *testing.T) {
	var scores []Scored
	truth := map[string]*declaration.Outcome{}
	for i := range 200 {
		id := string(rune('a'+i%26)) + string(rune('A'+i/26))
		scores = append(scores, Scored{ID: id, Score: float64(200 - i)})
		if i < 10 { // the 10 best scored are the hits, each worth 1
			truth[id] = &declaration.Outcome{DeclarationID: id, Hit: true, Revenue: 1}
		}
	}
	pts := curve(scores, truth)
	if len(pts) != int(curveMax/curveStep) {
		t.Fatalf("%d points", len(pts))
	}
	// 200 declarations: 2.5 % is the top 5, all hits, half the revenue;
	// 5 % is the top 10; 10 % is the top 20, half of them hits.
	at := func(rate float64) curvePoint {
		for _, p := range pts {
			if p.Rate == rate {
				return p
			}
		}
		t.Fatalf("no point at %g", rate)
		return curvePoint{}
	}
	if p := at(2.5); p.Precision != 1 || p.Revenue != 0.5 {
		t.Errorf("2.5%%: %+v", p)
	}
	if p := at(5); p.Precision != 1 || p.Revenue != 1 {
		t.Errorf("5%%: %+v", p)
	}
	if p := at(10); p.Precision != 0.5 || p.Revenue != 1 {
		t.Errorf("10%%: %+v", p)
	}
}
