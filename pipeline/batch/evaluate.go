package batch

import (
	"fmt"
	"math"
	"sort"
	"strings"

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
	From, N     int // evaluated declarations: Scores[From:], N of them
	Hits        int
	Revenue     float64
	NoTruth     int      // assessed declarations with no truth record (counted clean)
	Repeated    int      // assessments of an id assessed earlier in the evaluated part: left out
	Evaluated   []Scored // the evaluated assessments, each id once, ranked by score (rank)
	BaseRate    float64
	Rows        []EvalRow
	ChannelRows []EvalRow
}

// EvalRates are the inspection rates of the evaluation table, in percent.
var EvalRates = []float64{1, 2, 5, 10}

// Evaluate ranks the declarations after the warm-up fraction by score and
// reports, for each inspection rate, what inspecting exactly that share would
// have found. Ties in score are broken by a hash of the declaration id: as
// arbitrary as a coin, but the same on every run.
func Evaluate(scores []Scored, truth map[string]*declaration.Outcome, warmup float64) *Evaluation {
	ev := &Evaluation{From: int(math.Round(warmup * float64(len(scores))))}
	s := append([]Scored(nil), scores[ev.From:]...)
	// A declaration id assessed more than once (a resubmission, or a line
	// repeated in the file) counts once, at its first assessment: the one
	// made before the engine learned from it (a repeat is assessed against
	// state that holds the declaration itself, and is not learned again).
	// Otherwise its hit and revenue would count twice.
	// An id first assessed in the warm-up is left out too: its repeat was
	// scored against state that may hold its own outcome.
	seen := make(map[uint64]struct{}, len(scores))
	for _, x := range scores[:ev.From] {
		seen[xxhash.Sum64String(x.ID)] = struct{}{}
	}
	kept := s[:0]
	for _, x := range s {
		h := xxhash.Sum64String(x.ID)
		if _, again := seen[h]; !again {
			seen[h] = struct{}{}
			kept = append(kept, x)
		}
	}
	ev.Repeated = len(s) - len(kept)
	s = kept
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

// last is the position of the evaluated part's last declaration (1-based).
func (ev *Evaluation) last() int { return ev.From + ev.N + ev.Repeated }

// repeatedNote says how many repeated ids an evaluation left out ("" for none).
func repeatedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d repeated ids (each counted once, at its first assessment)", n)
}

// Table renders the evaluation for a terminal.
func (ev *Evaluation) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "evaluation on declarations %d-%d (%d, after a warm-up of %d): %d hits (base rate %.2f%%), revenue %s",
		ev.From+1, ev.last(), ev.N, ev.From, ev.Hits, 100*ev.BaseRate, fmtInt(ev.Revenue))
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
