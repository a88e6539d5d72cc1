package batch

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// recorder is a test detector that logs what it was asked to do, in order.
type recorder struct {
	log *[]string
}

func (r *recorder) Name() string { return "a" }
func (r *recorder) Score(d *declaration.Declaration, out []detectors.Finding) []detectors.Finding {
	*r.log = append(*r.log, "score a "+d.ID+" x")
	return out
}
func (r *recorder) Learn(*declaration.Declaration, *declaration.Assessment) {}
func (r *recorder) Pending(_ *declaration.Declaration, _ *declaration.Assessment, b []byte) []byte {
	return b
}
func (r *recorder) LearnOutcome(o *declaration.Outcome, _ []byte) {
	*r.log = append(*r.log, "outcome "+o.DeclarationID)
}

const noRandom = "name: t\nrandom: {rate: 0}\nscoring: {yellow: 40, red: 70, aeo_factor: 0.5}\n"

func testEngine(t *testing.T, yml string, dets ...detectors.Detector) *engine.Engine {
	t.Helper()
	c, err := config.Parse([]byte(yml), "test")
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.NewWithDetectors(c, dets...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Outcomes are applied once the stream's event time (the latest lodged_at
// seen) reaches their inspected_at: one declaration at a time, before the
// declaration that moved it; in micro-batches, before the batch whose first
// declaration moved it; at the end, those due by the last event time.
func TestReplayOutcomeTiming(t *testing.T) {
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
	for _, c := range []struct {
		batch int
		want  string
	}{
		// D3 (03-02) does not move event time back: X1 (03-02 10:00) was
		// already due at D2 (03-03 10:00), along with X2.
		{1, "D1 X1 X2 D2 D3 X3 D4"},
		{2, "D1 D2 X1 X2 D3 D4 X3"},
		{4, "D1 D2 D3 D4 X1 X2 X3"},
	} {
		var log []string
		e := testEngine(t, noRandom, &recorder{log: &log})
		var errs, dl bytes.Buffer
		st, err := Replay(e, ReplayOptions{Input: strings.NewReader(decls), InputName: "d", Outcomes: strings.NewReader(outcomes), OutcomesName: "o",
			Output: &bytes.Buffer{}, Errors: &errs, DeadLetters: &dl, Batch: c.batch})
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, l := range log {
			if strings.HasPrefix(l, "outcome") || strings.HasPrefix(l, "score") {
				order = append(order, strings.Fields(l)[len(strings.Fields(l))-2+boolInt(strings.HasPrefix(l, "outcome"))])
			}
		}
		if got := strings.Join(order, " "); got != c.want {
			t.Errorf("batch %d: order %q, want %q", c.batch, got, c.want)
		}
		if st.OutcomesApplied != 3 || st.OutcomesRead != 4 || st.OutcomesBad != 1 {
			t.Errorf("batch %d: outcome counts %+v", c.batch, st)
		}
		if !strings.Contains(errs.String(), "o line 3: not valid JSON") {
			t.Errorf("invalid outcome not reported with its line: %q", errs.String())
		}
		// The spec: invalid outcomes follow the declarations' dead-letter rule.
		if got := dl.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `"source":"o","line":3,`) || !strings.Contains(got, `not valid JSON`) {
			t.Errorf("dead letters: %q", got)
		}
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
	valid, _ := os.ReadFile("../../declaration/testdata/declarations-valid.jsonl")
	invalid, _ := os.ReadFile("../../declaration/testdata/declarations-invalid.jsonl")
	reasons, _ := os.ReadFile("../../declaration/testdata/declarations-invalid.reasons")
	input := append(append(append([]byte{}, valid...), '\n'), invalid...) // a blank line between: skipped
	e, err := engine.New(config.Default())
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
	_, raw := testkit.GenDecls(t, 3000, 11)
	run := func() string {
		e, err := engine.New(config.Default())
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
	ev := Evaluate(scores, truth, Window{Warmup: 0.5})
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
	// The ten high-scored declarations again at the end (resubmitted),
	// scored 1: each id counts once, at its first assessment, and not at
	// all when that was in the warm-up (its repeat was scored against state
	// that may hold its outcome). 410 assessments, a warm-up of 205:
	// D205-D209 count at 90, D200-D204 not at all.
	again := append([]Scored(nil), scores...)
	for i := 200; i < 210; i++ {
		again = append(again, Scored{ID: fmt.Sprintf("D%03d", i), Score: 1})
	}
	ev = Evaluate(again, truth, Window{Warmup: 0.5})
	if ev.N != 195 || ev.Repeated != 10 || ev.Hits != 2 || ev.Revenue != 200 {
		t.Errorf("with 10 repeated ids (5 first assessed in the warm-up): evaluated %d, repeated %d, hits %d, revenue %g; want 195, 10, 2, 200", ev.N, ev.Repeated, ev.Hits, ev.Revenue)
	}
	for _, x := range ev.Evaluated {
		if n, _ := strconv.Atoi(x.ID[1:]); n >= 200 && n < 210 && (n < 205 || x.Score != 90) {
			t.Errorf("%s counted at score %g", x.ID, x.Score)
		}
	}
	if !strings.Contains(ev.Table(), "10 repeated ids (each counted once, at its first assessment)") {
		t.Errorf("table: %s", ev.Table())
	}
	// The report's chart and histograms use the same assessments.
	if len(ev.Evaluated) != 195 {
		t.Errorf("%d assessments kept for the report's charts, want 195", len(ev.Evaluated))
	}
}

// An evaluation of a period counts the declarations lodged in it, each id
// once, and leaves out what came before it (the warm-up), what came after
// it, and the repeats of ids first assessed before it.
func TestEvaluateWindow(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d) }
	var scores []Scored
	truth := map[string]*declaration.Outcome{}
	// 90 days, 10 declarations a day; a hit a day, scored 90, from the
	// declaration numbered 5 of each day.
	for d := 0; d < 90; d++ {
		for k := 0; k < 10; k++ {
			id := fmt.Sprintf("D%02d-%d", d, k)
			hit := k == 5
			s := 10.0
			if hit {
				s = 90
			}
			scores = append(scores, Scored{ID: id, Score: s, LodgedAt: day(d).Add(time.Duration(k) * time.Hour)})
			truth[id] = &declaration.Outcome{DeclarationID: id, Hit: hit, Revenue: map[bool]float64{true: 100}[hit]}
		}
	}
	// Late on April 1st, two declarations are resubmitted: one of March
	// 31st (D30-5, first assessed before the window) and one of April 1st
	// (D31-5).
	scores = append(scores,
		Scored{ID: "D30-5", Score: 1, LodgedAt: day(31).Add(23 * time.Hour)},
		Scored{ID: "D31-5", Score: 1, LodgedAt: day(31).Add(23 * time.Hour)})
	w := Window{From: day(31), To: day(61)} // April
	ev := Evaluate(scores, truth, w)
	if ev.N != 300 || ev.Hits != 30 || ev.Revenue != 3000 || ev.Before != 310 || ev.After != 290 || ev.Repeated != 2 {
		t.Fatalf("April: N %d, hits %d, revenue %g, before %d, after %d, repeated %d; want 300, 30, 3000, 310, 290, 2",
			ev.N, ev.Hits, ev.Revenue, ev.Before, ev.After, ev.Repeated)
	}
	for _, x := range ev.Evaluated {
		if x.LodgedAt.Before(w.From) || !x.LodgedAt.Before(w.To) || x.Score == 1 {
			t.Fatalf("evaluated %s lodged %s at score %g", x.ID, x.LodgedAt, x.Score)
		}
	}
	if r := ev.Rows[3]; r.Selected != 30 || r.Hits != 30 { // 10 % of 300: the 30 hits
		t.Errorf("10%% row: %+v", r)
	}
	want := "declarations lodged from 2025-04-01 UTC to before 2025-05-01 UTC (300; left out: 310 before, 290 after)"
	if ev.Scope() != want || !strings.Contains(ev.Table(), "evaluation on "+want) {
		t.Errorf("scope %q\ntable %s", ev.Scope(), ev.Table())
	}
	// Open on one side.
	if ev := Evaluate(scores, truth, Window{From: day(80)}); ev.N != 100 || ev.Before != 802 || ev.After != 0 {
		t.Errorf("from day 80: N %d, before %d, after %d", ev.N, ev.Before, ev.After)
	}
	if ev := Evaluate(scores, truth, Window{To: day(10).Add(90 * time.Minute)}); ev.N != 102 || ev.Before != 0 || ev.After != 800 ||
		!strings.Contains(ev.Scope(), "lodged before 2025-03-11T01:30:00Z") {
		t.Errorf("to day 10 01:30: N %d, before %d, after %d, scope %q", ev.N, ev.Before, ev.After, ev.Scope())
	}
	// An end with the warm-up share: the first 451 of 902 positions are
	// the warm-up (day 45's first declaration included); both resubmissions
	// come after it, in the window, as repeats.
	ev = Evaluate(scores, truth, Window{Warmup: 0.5, To: day(61)})
	if ev.N != 159 || ev.Before != 451 || ev.After != 290 || ev.Repeated != 2 ||
		ev.Scope() != "declarations after the warm-up (50 % of the stream) and lodged before 2025-05-01 UTC (159; left out: 451 before, 290 after)" {
		t.Errorf("warm-up and an end: N %d, before %d, after %d, repeated %d, scope %q", ev.N, ev.Before, ev.After, ev.Repeated, ev.Scope())
	}
	// An empty window says what the stream spans.
	if ev := Evaluate(scores, truth, Window{From: day(200)}); ev.N != 0 ||
		!strings.HasSuffix(ev.Scope(), ": none in it, the stream's declarations were lodged from 2025-03-01T00:00:00Z to 2025-05-29T09:00:00Z") {
		t.Errorf("a window after the stream: N %d, scope %q", ev.N, ev.Scope())
	} else if tab := ev.Table(); strings.Count(tab, "\n") != 1 || strings.Contains(tab, "inspect") {
		t.Errorf("an empty window prints a table:\n%s", tab)
	}
	// A bound with a fraction of a second keeps it.
	if got := (Window{From: day(1).Add(500 * time.Millisecond)}).String(); got != "lodged from 2025-03-02T00:00:00.5Z" {
		t.Errorf("fractional bound: %q", got)
	}
}

// The summary warns when the learned model's scores stopped reaching a
// fixed red threshold: red then holds random picks and profiles only.
func TestSummaryWarnsWhenRedStopsSelecting(t *testing.T) {
	st := func(scored, red int, targets bool) string {
		s := &ReplayStats{Lines: 3000, Assessed: 3000, SelectedBy: map[string]int{}, Fired: map[string]int{}, Monitor: newMonitor(),
			ModelScored: scored, ModelRedByScore: red}
		s.Rates.Red, s.Rates.Yellow, s.Rates.Targets = 70, 40, targets
		return s.Summary("default@x", nil)
	}
	const warn = "warning: of the 2000 assessments the learned model scored, 1 reached red by score"
	if got := st(2000, 1, false); !strings.Contains(got, warn) {
		t.Errorf("no warning at 1 in 2,000:\n%s", got)
	}
	for _, c := range []struct {
		scored, red int
		targets     bool
	}{{2000, 2, false}, {999, 0, false}, {2000, 0, true}} {
		if got := st(c.scored, c.red, c.targets); strings.Contains(got, "warning:") {
			t.Errorf("%+v: warns:\n%s", c, got)
		}
	}
}

// The summary's per-detector count is of declarations: one that several
// profiles match counts once, as the report and compare count it.
func TestFiredCountsDeclarations(t *testing.T) {
	_, raw := testkit.GenDecls(t, 20000, 3)
	e, err := engine.New(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(raw), InputName: "d", Output: &out, Errors: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	decls, findings := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if n := strings.Count(l, `{"detector":"profiles"`); n > 0 {
			decls++
			findings += n
		}
	}
	if findings == decls {
		t.Fatalf("no declaration with two profile findings in the stream (%d): the test shows nothing", decls)
	}
	if st.Fired["profiles"] != decls {
		t.Errorf("profiles fired on %d declarations (%d findings), the summary counts %d", decls, findings, st.Fired["profiles"])
	}
}
