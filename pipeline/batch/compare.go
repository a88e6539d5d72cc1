package batch

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// Compare pushes the same history through two configurations (two engines)
// and lines the results up declaration by declaration: what an analyst
// needs before switching a candidate configuration on.

// CompareOptions are the inputs of a comparison. The declarations (and the
// outcomes) are opened once per configuration, so the two replays can run
// side by side.
type CompareOptions struct {
	OpenInput    func() (io.ReadCloser, error)
	InputName    string
	OpenOutcomes func() (io.ReadCloser, error) // nil: no outcomes
	OutcomesName string
	// Errors receives the invalid lines, once (the base replay's report:
	// both replays read the same lines).
	Errors io.Writer
	// Truth, when not nil, gives the evaluation and the hits among fired.
	Truth map[string]*declaration.Outcome
	// ClosedLoop makes each configuration's inspections follow its own
	// channels (see ReplayOptions.ClosedLoop); it needs Truth.
	ClosedLoop   bool
	InspectDelay time.Duration
	Window       Window // the part of the stream evaluated
	// Workers assesses each micro-batch of each replay on this many
	// goroutines (ReplayOptions.Workers; 0: one per core).
	Workers int
	// Sequential runs the replays one after the other; by default they run
	// at the same time. Each engine sees its declarations in file order
	// either way, so the result is the same.
	Sequential bool
	// Read, when not nil, wraps each opened input (for progress).
	Read func(io.Reader) io.Reader
}

// Side is one configuration's run: what the summary and the report show.
type Side struct {
	Label     string // "base", "candidate" or "replay"
	Ruleset   string
	Source    string // the configuration file, or "built-in configuration"
	Detectors []string
	Profiles  map[string]bool // detectors of kind profile, by name
	Stats     *ReplayStats
	Eval      *Evaluation // with truth
	// Fired counts, per detector and per profile rule, the declarations
	// with a finding of it; Hits counts the true hits among them (with
	// truth).
	DetectorFiring, ProfileFiring map[string]*Firing
}

// Firing is how often a detector or a profile fired, and how often rightly.
type Firing struct{ Fired, Hits int }

// NewSide describes a finished replay of e (whose Scores were kept, with
// their findings for the firing counts).
func NewSide(label string, e *engine.Engine, st *ReplayStats, truth map[string]*declaration.Outcome, w Window) *Side {
	c := e.Config()
	s := &Side{Label: label, Ruleset: c.Ruleset, Source: c.Source, Detectors: e.Detectors(), Profiles: map[string]bool{}, Stats: st,
		DetectorFiring: map[string]*Firing{}, ProfileFiring: map[string]*Firing{}}
	if s.Source == "" {
		s.Source = "built-in configuration"
	}
	for _, d := range c.Detectors {
		if d.Kind == "profile" {
			s.Profiles[d.Name] = true
		}
	}
	if truth != nil && len(st.Scores) > 0 {
		s.Eval = Evaluate(st.Scores, truth, w)
	}
	for i := range st.Scores {
		sc := &st.Scores[i]
		hit := false
		if o := truth[sc.ID]; o != nil {
			hit = o.Hit
		}
		dets, profs := fired(sc.Findings, s.Profiles)
		for _, d := range dets {
			f := firing(s.DetectorFiring, d)
			f.Fired++
			if hit {
				f.Hits++
			}
		}
		for _, p := range profs {
			f := firing(s.ProfileFiring, p)
			f.Fired++
			if hit {
				f.Hits++
			}
		}
	}
	return s
}

func firing(m map[string]*Firing, k string) *Firing {
	f := m[k]
	if f == nil {
		f = &Firing{}
		m[k] = f
	}
	return f
}

// fired lists, once each, the detectors with a finding and the profile rules
// that matched, as the engine's outcome monitoring attributes them (the AEO
// note is no detector's finding).
func fired(fs []declaration.Finding, profiles map[string]bool) (dets, profs []string) {
	for i := range fs {
		f := &fs[i]
		if f.Detector == "aeo" && f.Points == 0 {
			continue
		}
		if profiles[f.Detector] && f.Rule != "" && !contains(profs, f.Rule) {
			profs = append(profs, f.Rule)
		}
		if !contains(dets, f.Detector) {
			dets = append(dets, f.Detector)
		}
	}
	return dets, profs
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// Comparison is the result of Compare.
type Comparison struct {
	Base, Candidate *Side
	// Transitions counts declarations by base channel (first index) and
	// candidate channel (second).
	Transitions [3][3]int
	// Changed holds the declarations whose channel differs, the largest
	// score change first.
	Changed []Change
	// Known says what is known of the changed declarations' results:
	// from the truth when given, else from the outcomes given (only the
	// inspected ones); Lighter and Stricter count, among the declarations
	// moved to a lighter and to a stricter channel, the known hits (and
	// their revenue) and the known clean ones. KnownFrom is "truth",
	// "outcomes" or "" (nothing known).
	KnownFrom         string
	Lighter, Stricter KnownMoves
	Elapsed           time.Duration
}

// KnownMoves are the known results among declarations that changed
// channel one way.
type KnownMoves struct {
	Hits, Clean int
	Revenue     float64
}

// Change is a declaration that changes channel, with the findings that made
// the difference.
type Change struct {
	Base, Candidate Scored
	// Added are findings only the candidate has, Removed only the base;
	// Moved are findings of both whose points differ.
	Added, Removed []declaration.Finding
	Moved          []Moved
}

// Moved is a finding (detector and rule) present in both runs with
// different points.
type Moved struct {
	Detector, Rule        string
	BasePoints, CandPoint float64
}

// ScoreChange is the candidate's score minus the base's.
func (c *Change) ScoreChange() float64 { return c.Candidate.Score - c.Base.Score }

// movedMin is the smallest change in a finding's points worth listing.
const movedMin = 0.5

// Compare replays the same history through base and candidate and lines the
// results up. Both engines must be new (or in the state the comparison
// should start from).
func Compare(base, cand *engine.Engine, o CompareOptions) (*Comparison, error) {
	start := time.Now()
	// Replay raises the GC target for its run and restores it at its end;
	// with two at a time, the outer call restores the original.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	if o.ClosedLoop && o.Truth == nil {
		return nil, fmt.Errorf("a closed loop needs truth")
	}
	run := func(e *engine.Engine, errs io.Writer) (*ReplayStats, error) {
		in, err := o.OpenInput()
		if err != nil {
			return nil, err
		}
		defer in.Close()
		var r io.Reader = in
		if o.Read != nil {
			r = o.Read(in)
		}
		opts := ReplayOptions{Input: r, InputName: o.InputName, Output: io.Discard, Errors: errs, KeepScores: true, KeepFindings: true, Workers: o.Workers}
		if o.ClosedLoop {
			opts.ClosedLoop, opts.InspectDelay = o.Truth, o.InspectDelay
		}
		if o.OpenOutcomes != nil {
			oc, err := o.OpenOutcomes()
			if err != nil {
				return nil, err
			}
			defer oc.Close()
			opts.Outcomes, opts.OutcomesName = oc, o.OutcomesName
		}
		return Replay(e, opts)
	}
	errs := o.Errors
	if errs == nil {
		errs = io.Discard
	}
	var bst, cst *ReplayStats
	var berr, cerr error
	if o.Sequential {
		bst, berr = run(base, errs)
		if berr == nil {
			cst, cerr = run(cand, io.Discard)
		}
	} else {
		var wg sync.WaitGroup
		wg.Go(func() { bst, berr = run(base, errs) })
		cst, cerr = run(cand, io.Discard)
		wg.Wait()
	}
	if berr != nil {
		return nil, fmt.Errorf("base: %w", berr)
	}
	if cerr != nil {
		return nil, fmt.Errorf("candidate: %w", cerr)
	}
	if len(bst.Scores) != len(cst.Scores) {
		return nil, fmt.Errorf("the two replays assessed %d and %d declarations", len(bst.Scores), len(cst.Scores))
	}
	c := &Comparison{Base: NewSide("base", base, bst, o.Truth, o.Window), Candidate: NewSide("candidate", cand, cst, o.Truth, o.Window)}
	for i := range bst.Scores {
		b, k := bst.Scores[i], cst.Scores[i]
		if b.ID != k.ID {
			return nil, fmt.Errorf("the two replays differ at declaration %d: %s and %s", i+1, b.ID, k.ID)
		}
		c.Transitions[b.Channel][k.Channel]++
		if b.Channel != k.Channel {
			c.Changed = append(c.Changed, diff(b, k))
		}
	}
	sort.SliceStable(c.Changed, func(i, j int) bool {
		return math.Abs(c.Changed[i].ScoreChange()) > math.Abs(c.Changed[j].ScoreChange())
	})
	known, from, err := knownResults(o)
	if err != nil {
		return nil, err
	}
	c.KnownFrom = from
	for _, x := range c.Changed {
		k := known[x.Base.ID]
		if k == nil {
			continue
		}
		m := &c.Stricter
		if x.Candidate.Channel < x.Base.Channel {
			m = &c.Lighter
		}
		if k.Hit {
			m.Hits++
			m.Revenue += k.Revenue
		} else {
			m.Clean++
		}
	}
	c.Elapsed = time.Since(start)
	return c, nil
}

// knownResults is what is known of the declarations' results: the truth
// when given, else the outcomes given (the last one of each declaration;
// invalid lines were reported by the replays and are skipped here).
func knownResults(o CompareOptions) (map[string]*declaration.Outcome, string, error) {
	if o.Truth != nil {
		return o.Truth, "truth", nil
	}
	if o.OpenOutcomes == nil {
		return nil, "", nil
	}
	in, err := o.OpenOutcomes()
	if err != nil {
		return nil, "", err
	}
	defer in.Close()
	list, err := readOutcomes(ReplayOptions{Outcomes: in, OutcomesName: o.OutcomesName, Errors: io.Discard}, &ReplayStats{})
	if err != nil {
		return nil, "", err
	}
	m := make(map[string]*declaration.Outcome, len(list))
	for _, oc := range list {
		m[oc.DeclarationID] = oc
	}
	return m, "outcomes", nil
}

// diff finds the findings that differ between two assessments of one
// declaration. Findings are keyed by detector and rule: the engine keeps one
// per detector and rule.
func diff(b, k Scored) Change {
	ch := Change{Base: b, Candidate: k}
	key := func(f *declaration.Finding) string { return f.Detector + "\x00" + f.Rule }
	bm := map[string]*declaration.Finding{}
	for i := range b.Findings {
		bm[key(&b.Findings[i])] = &b.Findings[i]
	}
	km := map[string]bool{}
	for i := range k.Findings {
		f := &k.Findings[i]
		km[key(f)] = true
		if bf := bm[key(f)]; bf == nil {
			ch.Added = append(ch.Added, *f)
		} else if math.Abs(bf.Points-f.Points) >= movedMin {
			ch.Moved = append(ch.Moved, Moved{Detector: f.Detector, Rule: f.Rule, BasePoints: bf.Points, CandPoint: f.Points})
		}
	}
	for i := range b.Findings {
		if !km[key(&b.Findings[i])] {
			ch.Removed = append(ch.Removed, b.Findings[i])
		}
	}
	return ch
}

// Summary renders the comparison for a terminal: top is how many changed
// declarations to list.
func (c *Comparison) Summary(top int) string {
	var b strings.Builder
	bs, cs := c.Base.Stats, c.Candidate.Stats
	n := bs.Assessed
	fmt.Fprintf(&b, "compare: %d declarations read, %d assessed, %d invalid, through both configurations in %.2fs\n",
		bs.Lines, n, bs.Invalid, c.Elapsed.Seconds())
	fmt.Fprintf(&b, "  base       %s (%s)\n  candidate  %s (%s)\n", c.Base.Ruleset, c.Base.Source, c.Candidate.Ruleset, c.Candidate.Source)
	if bs.OutcomesRead+bs.OutcomesBad > 0 {
		fmt.Fprintf(&b, "outcomes: base %d applied, candidate %d applied (of %d read)\n", bs.OutcomesApplied, cs.OutcomesApplied, bs.OutcomesRead)
	}
	b.WriteString("\n                           base      candidate     change\n")
	for ch := declaration.Channel(0); ch <= declaration.Red; ch++ {
		fmt.Fprintf(&b, "  %-18s %8d %5.1f%%  %8d %5.1f%%  %+8d\n", ch, bs.Channels[ch], pct(bs.Channels[ch], n),
			cs.Channels[ch], pct(cs.Channels[ch], n), cs.Channels[ch]-bs.Channels[ch])
	}
	for _, by := range []string{"score", "profile", "random"} {
		fmt.Fprintf(&b, "  %-18s %8d %5.1f%%  %8d %5.1f%%  %+8d\n", "selected by "+by, bs.SelectedBy[by], pct(bs.SelectedBy[by], n),
			cs.SelectedBy[by], pct(cs.SelectedBy[by], n), cs.SelectedBy[by]-bs.SelectedBy[by])
	}
	fmt.Fprintf(&b, "  %-18s %8s %6s  %8s\n", "thresholds at end", fmt.Sprintf("%.1f/%.1f", bs.Rates.Yellow, bs.Rates.Red), "",
		fmt.Sprintf("%.1f/%.1f", cs.Rates.Yellow, cs.Rates.Red))

	b.WriteString("\nchannel transitions (rows: base channel, columns: candidate channel)\n")
	b.WriteString(c.TransitionTable())
	up, down := 0, 0
	for _, x := range c.Changed {
		if x.Candidate.Channel > x.Base.Channel {
			up++
		} else {
			down++
		}
	}
	fmt.Fprintf(&b, "changed channel: %d declarations (%.2f%%): %d to a stricter channel, %d to a lighter one\n",
		len(c.Changed), pct(len(c.Changed), n), up, down)
	if c.KnownFrom != "" {
		of := "the truth"
		if c.KnownFrom == "outcomes" {
			of = "the outcomes given (inspected declarations only)"
		}
		fmt.Fprintf(&b, "  known from %s: to a lighter channel %d hits (revenue %s) and %d clean; to a stricter one %d hits (revenue %s) and %d clean\n",
			of, c.Lighter.Hits, fmtInt(c.Lighter.Revenue), c.Lighter.Clean, c.Stricter.Hits, fmtInt(c.Stricter.Revenue), c.Stricter.Clean)
	}

	if c.Base.Eval != nil {
		b.WriteString("\n")
		b.WriteString(c.EvaluationTable())
	} else if bs.Monitor != nil {
		b.WriteString("\n")
		b.WriteString(c.OutcomeTable())
	}
	b.WriteString("\n")
	b.WriteString(c.FiringTable())
	if top > 0 && len(c.Changed) > 0 {
		fmt.Fprintf(&b, "\nlargest score changes among the declarations that change channel (%d of %d):\n", min(top, len(c.Changed)), len(c.Changed))
		for _, x := range c.Changed[:min(top, len(c.Changed))] {
			b.WriteString(x.Line())
		}
	}
	return b.String()
}

// TransitionTable renders the channel transition matrix.
func (c *Comparison) TransitionTable() string {
	var b strings.Builder
	b.WriteString("  base \\ candidate     green    yellow       red     total\n")
	for i := range 3 {
		tot := 0
		fmt.Fprintf(&b, "  %-17s", declaration.Channel(i))
		for j := range 3 {
			fmt.Fprintf(&b, " %9d", c.Transitions[i][j])
			tot += c.Transitions[i][j]
		}
		fmt.Fprintf(&b, " %9d\n", tot)
	}
	fmt.Fprintf(&b, "  %-17s", "total")
	all := 0
	for j := range 3 {
		tot := 0
		for i := range 3 {
			tot += c.Transitions[i][j]
		}
		all += tot
		fmt.Fprintf(&b, " %9d", tot)
	}
	fmt.Fprintf(&b, " %9d\n", all)
	return b.String()
}

// EvaluationTable puts the two evaluations side by side.
func (c *Comparison) EvaluationTable() string {
	var b strings.Builder
	be, ce := c.Base.Eval, c.Candidate.Eval
	if be.N == 0 { // both replays read one stream: one window, empty for both
		return "evaluation on " + be.Scope() + "\n"
	}
	fmt.Fprintf(&b, "evaluation on %s: %d hits (base rate %.2f%%), revenue %s%s\n",
		be.Scope(), be.Hits, 100*be.BaseRate, fmtInt(be.Revenue), repeatedNote(be.Repeated))
	b.WriteString("          ---------------- base ----------------   ------------- candidate --------------   --- change ---\n")
	b.WriteString("inspect   selected  hits  prec  recall  rev  lift   selected  hits  prec  recall  rev  lift   prec     rev\n")
	rows := func(br, cr []EvalRow) {
		for i := range br {
			x, y := br[i], cr[i]
			fmt.Fprintf(&b, "%-8s %9d %5d %5.3f %6.3f %5.3f %4.1f  %9d %5d %5.3f %6.3f %5.3f %4.1f  %+5.3f  %+6.3f\n",
				x.Label, x.Selected, x.Hits, x.Precision, x.Recall, x.RevenueShare, x.Lift,
				y.Selected, y.Hits, y.Precision, y.Recall, y.RevenueShare, y.Lift,
				y.Precision-x.Precision, y.RevenueShare-x.RevenueShare)
		}
	}
	rows(be.Rows, ce.Rows)
	rows(be.ChannelRows, ce.ChannelRows)
	return b.String()
}

// OutcomeTable puts the two outcome-monitoring tallies side by side: what
// the inspections given (not the truth) say of each configuration.
func (c *Comparison) OutcomeTable() string {
	var b strings.Builder
	bm, cm := c.Base.Stats.Monitor, c.Candidate.Stats.Monitor
	br, cr := bm.Random().HitRate(), cm.Random().HitRate()
	b.WriteString("outcome monitoring (the outcomes given, attributed to each configuration's assessment)\n")
	b.WriteString("  channel  selected_by   ------------ base -------------   ---------- candidate ----------\n")
	b.WriteString("                         inspected  hits  hit rate  lift   inspected  hits  hit rate  lift\n")
	seen := map[Group]bool{}
	var groups []Group
	for _, m := range []*Monitor{bm, cm} {
		for g := range m.Groups {
			if !seen[g] {
				seen[g] = true
				groups = append(groups, g)
			}
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].Channel != groups[j].Channel {
			return groups[i].Channel > groups[j].Channel
		}
		return groups[i].SelectedBy < groups[j].SelectedBy
	})
	get := func(m *Monitor, g Group) *Tally {
		if t := m.Groups[g]; t != nil {
			return t
		}
		return &Tally{}
	}
	for _, g := range groups {
		x, y := get(bm, g), get(cm, g)
		fmt.Fprintf(&b, "  %-7s  %-11s  %9d %5d  %s %s  %9d %5d  %s %s\n", g.Channel, g.SelectedBy,
			x.Inspected, x.Hits, fmtRate(x.HitRate()), fmtLift(x.HitRate(), br),
			y.Inspected, y.Hits, fmtRate(y.HitRate()), fmtLift(y.HitRate(), cr))
	}
	fmt.Fprintf(&b, "  declarations not assessed or no longer remembered: base %d, candidate %d\n", bm.Unmatched, cm.Unmatched)
	return b.String()
}

// FiringTable lists, per detector and per profile, how many declarations
// each configuration flagged with it, and the hits among them: true hits
// with truth, else the hits among the inspected ones.
func (c *Comparison) FiringTable() string {
	var b strings.Builder
	truth := c.Base.Eval != nil
	if truth {
		b.WriteString("firing over all declarations, and true hits among them\n")
		b.WriteString("  detector / profile        --------- base ---------   ------ candidate -------\n")
		b.WriteString("                               fired    hits  precision     fired    hits  precision\n")
	} else {
		b.WriteString("firing over all declarations, and hits among the inspected ones\n")
		b.WriteString("  detector / profile        --------- base ---------   ------ candidate -------\n")
		b.WriteString("                            fired  inspected   hits     fired  inspected   hits\n")
	}
	row := func(name string, bf, cf map[string]*Firing, bt, ct map[string]*Tally) {
		x, y := bf[name], cf[name]
		if x == nil {
			x = &Firing{}
		}
		if y == nil {
			y = &Firing{}
		}
		if truth {
			fmt.Fprintf(&b, "  %-24s %9d %7d  %s   %7d %7d  %s\n", name, x.Fired, x.Hits, fmtPrec(x), y.Fired, y.Hits, fmtPrec(y))
			return
		}
		xt, yt := bt[name], ct[name]
		if xt == nil {
			xt = &Tally{}
		}
		if yt == nil {
			yt = &Tally{}
		}
		fmt.Fprintf(&b, "  %-24s %7d %10d %6d   %7d %10d %6d\n", name, x.Fired, xt.Inspected, xt.Hits, y.Fired, yt.Inspected, yt.Hits)
	}
	bm, cm := c.Base.Stats.Monitor, c.Candidate.Stats.Monitor
	for _, d := range union(c.Base.Detectors, c.Candidate.Detectors, keys(c.Base.DetectorFiring), keys(c.Candidate.DetectorFiring)) {
		row(d, c.Base.DetectorFiring, c.Candidate.DetectorFiring, bm.Detectors, cm.Detectors)
	}
	for _, p := range union(keys(c.Base.ProfileFiring), keys(c.Candidate.ProfileFiring)) {
		row("profile "+p, prefixed(c.Base.ProfileFiring), prefixed(c.Candidate.ProfileFiring), prefixedT(bm.Profiles), prefixedT(cm.Profiles))
	}
	return b.String()
}

func fmtPrec(f *Firing) string {
	if f.Fired == 0 {
		return "        -"
	}
	return fmt.Sprintf("%9.3f", float64(f.Hits)/float64(f.Fired))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// union keeps the first list's order, then adds the others' new names.
func union(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func prefixed(m map[string]*Firing) map[string]*Firing {
	out := make(map[string]*Firing, len(m))
	for k, v := range m {
		out["profile "+k] = v
	}
	return out
}

func prefixedT(m map[string]*Tally) map[string]*Tally {
	out := make(map[string]*Tally, len(m))
	for k, v := range m {
		out["profile "+k] = v
	}
	return out
}

// Line is a changed declaration in one line (or a few): its channels and
// scores, then the findings that made the difference.
func (x *Change) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s  %s %.1f -> %s %.1f (%+.1f)", x.Base.ID, x.Base.Channel, x.Base.Score, x.Candidate.Channel, x.Candidate.Score, x.ScoreChange())
	if x.Base.SelectedBy != x.Candidate.SelectedBy {
		fmt.Fprintf(&b, ", selected by %s -> %s", x.Base.SelectedBy, x.Candidate.SelectedBy)
	}
	b.WriteString(":")
	parts := x.Reasons()
	if len(parts) == 0 {
		parts = []string{"same findings (the threshold or the model moved)"}
	}
	b.WriteString(" " + strings.Join(parts, "; "))
	b.WriteString("\n")
	return b.String()
}

// Reasons lists the differences in findings, shortest first in importance
// order: removed, added, then moved.
func (x *Change) Reasons() []string {
	var parts []string
	name := func(d, r string) string {
		if r != "" {
			return d + "/" + r
		}
		return d
	}
	for _, f := range x.Removed {
		parts = append(parts, fmt.Sprintf("-%s %.1f pts (%s)", name(f.Detector, f.Rule), f.Points, clip(f.Reason, 70)))
	}
	for _, f := range x.Added {
		parts = append(parts, fmt.Sprintf("+%s %.1f pts (%s)", name(f.Detector, f.Rule), f.Points, clip(f.Reason, 70)))
	}
	for _, m := range x.Moved {
		parts = append(parts, fmt.Sprintf("%s %.1f -> %.1f pts", name(m.Detector, m.Rule), m.BasePoints, m.CandPoint))
	}
	return parts
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// changeJSON is one line of the --changed file.
type changeJSON struct {
	ID          string        `json:"id"`
	LodgedAt    time.Time     `json:"lodged_at"`
	Base        sideJSON      `json:"base"`
	Candidate   sideJSON      `json:"candidate"`
	ScoreChange float64       `json:"score_change"`
	Added       []findingJSON `json:"added"`
	Removed     []findingJSON `json:"removed"`
	Moved       []movedJSON   `json:"moved"`
}

type sideJSON struct {
	Channel    string        `json:"channel"`
	Score      float64       `json:"score"`
	SelectedBy string        `json:"selected_by"`
	Findings   []findingJSON `json:"findings"`
}

type findingJSON struct {
	Detector string  `json:"detector"`
	Rule     string  `json:"rule,omitempty"`
	ItemLine int     `json:"item_line,omitempty"`
	Points   float64 `json:"points"`
	Reason   string  `json:"reason"`
}

type movedJSON struct {
	Detector       string  `json:"detector"`
	Rule           string  `json:"rule,omitempty"`
	BasePoints     float64 `json:"base_points"`
	CandidatePoint float64 `json:"candidate_points"`
}

func findingsJSON(fs []declaration.Finding) []findingJSON {
	out := make([]findingJSON, 0, len(fs))
	for _, f := range fs {
		out = append(out, findingJSON{Detector: f.Detector, Rule: f.Rule, ItemLine: f.ItemLine, Points: round2(f.Points), Reason: f.Reason})
	}
	return out
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// WriteChanged writes every changed declaration as one JSON line, in the
// order of Changed (the largest score change first).
func (c *Comparison) WriteChanged(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	side := func(s Scored) sideJSON {
		return sideJSON{Channel: s.Channel.String(), Score: round2(s.Score), SelectedBy: s.SelectedBy, Findings: findingsJSON(s.Findings)}
	}
	for _, x := range c.Changed {
		j := changeJSON{ID: x.Base.ID, LodgedAt: x.Base.LodgedAt, Base: side(x.Base), Candidate: side(x.Candidate),
			ScoreChange: round2(x.ScoreChange()), Added: findingsJSON(x.Added), Removed: findingsJSON(x.Removed), Moved: []movedJSON{}}
		for _, m := range x.Moved {
			j.Moved = append(j.Moved, movedJSON{Detector: m.Detector, Rule: m.Rule, BasePoints: round2(m.BasePoints), CandidatePoint: round2(m.CandPoint)})
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	return nil
}
