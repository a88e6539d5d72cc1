package batch

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/declaration"
)

// EvalRow is the result of inspecting the top-scored share of declarations.
type EvalRow struct {
	Label        string
	Selected     int
	Hits         int
	Precision    float64
	Recall       float64
	RevenueShare float64
	Lift         float64 // precision / base rate
}

// Evaluation compares assessments with ground truth.
type Evaluation struct {
	Window      Window
	N           int       // evaluated declarations, each id once
	Before      int       // assessments before the window (the warm-up), left out
	After       int       // assessments lodged at or after Window.To, left out
	First, Last time.Time // the earliest and the latest lodgement of the whole stream
	Hits        int
	Revenue     float64
	NoTruth     int      // assessed declarations with no truth record (counted clean)
	Repeated    int      // assessments in the window of an id assessed earlier: left out
	Evaluated   []Scored // the evaluated assessments, each id once, ranked by score (rank)
	BaseRate    float64
	Rows        []EvalRow
	ChannelRows []EvalRow
}

// Window is the part of a replayed stream an evaluation counts. Its start
// is the end of the warm-up: a share of the stream, in file order, or, when
// From is set, the declarations lodged from From on. To, when set, ends it:
// the declarations lodged from To on are left out (a quarter, the month
// since a configuration changed).
type Window struct {
	Warmup   float64 // share of the stream, from its start, left out (when From is not set)
	From, To time.Time
}

// Dated says whether the window has a lodgement date for a bound.
func (w Window) Dated() bool { return !w.From.IsZero() || !w.To.IsZero() }

// in says whether the assessment at position i falls in the window, and if
// not, whether it comes before it; warmEnd is the position where the
// warm-up share of the stream ends.
func (w Window) in(x *Scored, i, warmEnd int) (in, before bool) {
	if w.From.IsZero() {
		before = i < warmEnd
	} else {
		before = x.LodgedAt.Before(w.From)
	}
	if before {
		return false, true
	}
	return w.To.IsZero() || x.LodgedAt.Before(w.To), false
}

// String says what the window counts, for tables and reports.
func (w Window) String() string {
	start := fmt.Sprintf("after the warm-up (%.0f %% of the stream)", 100*w.Warmup)
	if !w.From.IsZero() {
		start = "lodged from " + fmtWhen(w.From)
	}
	switch {
	case w.To.IsZero():
		return start
	case w.From.IsZero():
		return start + " and lodged before " + fmtWhen(w.To)
	}
	return start + " to before " + fmtWhen(w.To)
}

// fmtWhen writes a window's bound, as a date when it is midnight UTC.
func fmtWhen(t time.Time) string {
	if t.Equal(t.UTC().Truncate(24 * time.Hour)) {
		return t.UTC().Format(time.DateOnly) + " UTC"
	}
	return t.Format(time.RFC3339Nano)
}

// EvalRates are the inspection rates of the evaluation table, in percent.
var EvalRates = []float64{1, 2, 5, 10}

// Evaluate ranks the declarations of the window by score and reports, for
// each inspection rate, what inspecting exactly that share would have found.
// Ties in score are broken by a hash of the declaration id: as arbitrary as
// a coin, but the same on every run.
func Evaluate(scores []Scored, truth map[string]*declaration.Outcome, w Window) *Evaluation {
	ev := &Evaluation{Window: w}
	// A declaration id assessed more than once (a resubmission, or a line
	// repeated in the file) counts once, at its first assessment: the one
	// made before the engine learned from it (a repeat is assessed against
	// state that holds the declaration itself, and is not learned again).
	// Otherwise its hit and revenue would count twice.
	// An id first assessed before the window is left out too: its repeat
	// was scored against state that may hold its own outcome.
	seen := make(map[uint64]struct{}, len(scores))
	var s []Scored
	warmEnd := int(math.Round(w.Warmup * float64(len(scores))))
	for i := range scores {
		x := &scores[i]
		if i == 0 || x.LodgedAt.Before(ev.First) {
			ev.First = x.LodgedAt
		}
		if x.LodgedAt.After(ev.Last) {
			ev.Last = x.LodgedAt
		}
		h := xxhash.Sum64String(x.ID)
		_, again := seen[h]
		seen[h] = struct{}{}
		switch in, before := w.in(x, i, warmEnd); {
		case before:
			ev.Before++
		case !in:
			ev.After++
		case again:
			ev.Repeated++
		default:
			s = append(s, *x)
		}
	}
	ev.N = len(s)
	ev.Evaluated = s // ranked below, in place
	hit := func(id string) (bool, float64) {
		o := truth[id]
		if o == nil {
			return false, 0
		}
		return o.Hit, o.Revenue
	}
	for _, x := range s {
		if truth[x.ID] == nil {
			ev.NoTruth++
		}
		h, r := hit(x.ID)
		if h {
			ev.Hits++
		}
		ev.Revenue += r
	}
	if ev.N == 0 {
		return ev
	}
	ev.BaseRate = float64(ev.Hits) / float64(ev.N)
	row := func(label string, sel []Scored) EvalRow {
		r := EvalRow{Label: label, Selected: len(sel)}
		var rev float64
		for _, x := range sel {
			h, rv := hit(x.ID)
			if h {
				r.Hits++
			}
			rev += rv
		}
		if r.Selected > 0 {
			r.Precision = float64(r.Hits) / float64(r.Selected)
		}
		if ev.Hits > 0 {
			r.Recall = float64(r.Hits) / float64(ev.Hits)
		}
		if ev.Revenue > 0 {
			r.RevenueShare = rev / ev.Revenue
		}
		if ev.BaseRate > 0 {
			r.Lift = r.Precision / ev.BaseRate
		}
		return r
	}
	for _, ch := range []declaration.Channel{declaration.Red, declaration.Yellow} {
		var sel []Scored
		for _, x := range s {
			if x.Channel >= ch {
				sel = append(sel, x)
			}
		}
		ev.ChannelRows = append(ev.ChannelRows, row(ch.String()+"+", sel))
	}
	rank(s)
	for _, rate := range EvalRates {
		k := int(math.Round(rate / 100 * float64(ev.N)))
		ev.Rows = append(ev.Rows, row(fmt.Sprintf("%g%%", rate), s[:k]))
	}
	return ev
}

// Scope says which declarations the evaluation counted.
func (ev *Evaluation) Scope() string {
	if !ev.Window.Dated() {
		return fmt.Sprintf("declarations %d-%d (%d, after a warm-up of %d)", ev.Before+1, ev.Before+ev.N+ev.Repeated, ev.N, ev.Before)
	}
	scope := fmt.Sprintf("declarations %s (%d; left out: %d before, %d after)", ev.Window, ev.N, ev.Before, ev.After)
	if ev.N == 0 {
		// A mistyped year says so, rather than giving an empty table.
		scope += fmt.Sprintf(": none in it, the stream's declarations were lodged from %s to %s", ev.First.Format(time.RFC3339), ev.Last.Format(time.RFC3339))
	}
	return scope
}

// repeatedNote says how many repeated ids an evaluation left out ("" for none).
func repeatedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d repeated ids (each counted once, at its first assessment)", n)
}

// Table renders the evaluation for a terminal.
func (ev *Evaluation) Table() string {
	if ev.N == 0 { // nothing to rank: the scope says why, with no empty table
		return "evaluation on " + ev.Scope() + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "evaluation on %s: %d hits (base rate %.2f%%), revenue %s", ev.Scope(), ev.Hits, 100*ev.BaseRate, fmtInt(ev.Revenue))
	if ev.NoTruth > 0 {
		fmt.Fprintf(&b, ", %d without truth (counted clean)", ev.NoTruth)
	}
	b.WriteString(repeatedNote(ev.Repeated))
	b.WriteString("\ninspect   selected      hits  precision  recall  revenue  lift\n")
	for _, rows := range [][]EvalRow{ev.Rows, ev.ChannelRows} {
		for _, r := range rows {
			fmt.Fprintf(&b, "%-8s %9d %9d  %9.3f  %6.3f  %7.3f  %4.1f\n", r.Label, r.Selected, r.Hits, r.Precision, r.Recall, r.RevenueShare, r.Lift)
		}
	}
	return b.String()
}

// rank orders scored declarations as an inspector working down the list
// would take them: highest score first, ties broken by a hash of the id (so
// exactly k % is selected, the same on every run), then by the id.
func rank(s []Scored) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Score != s[j].Score {
			return s[i].Score > s[j].Score
		}
		hi, hj := xxhash.Sum64String(s[i].ID), xxhash.Sum64String(s[j].ID)
		if hi != hj {
			return hi < hj
		}
		return s[i].ID < s[j].ID
	})
}
