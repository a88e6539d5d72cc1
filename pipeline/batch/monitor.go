package batch

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// Monitor tallies inspection outcomes by how the engine had assessed their
// declarations: what stream mode's riskmon_inspections_total,
// riskmon_profile_inspections_total and riskmon_detector_inspections_total
// count, for the replay summary. The random compliance sample's hit rate is
// the unbiased estimate of non-compliance in the whole flow; a targeted
// group's hit rate over it is the group's lift.
type Monitor struct {
	Groups              map[Group]*Tally
	Profiles, Detectors map[string]*Tally
	Unmatched, Repeated int
}

// Group is a channel and what selected it.
type Group struct {
	Channel    declaration.Channel
	SelectedBy string
}

// Tally counts inspections, hits and revenue.
type Tally struct {
	Inspected, Hits int
	Revenue         float64
}

func (t *Tally) add(o *declaration.Outcome) {
	t.Inspected++
	if o.Hit {
		t.Hits++
		t.Revenue += max(o.Revenue, 0)
	}
}

// HitRate is hits over inspections (NaN with none).
func (t *Tally) HitRate() float64 {
	if t == nil || t.Inspected == 0 {
		return math.NaN()
	}
	return float64(t.Hits) / float64(t.Inspected)
}

func newMonitor() *Monitor {
	return &Monitor{Groups: map[Group]*Tally{}, Profiles: map[string]*Tally{}, Detectors: map[string]*Tally{}}
}

func tally[K comparable](m map[K]*Tally, k K) *Tally {
	t := m[k]
	if t == nil {
		t = &Tally{}
		m[k] = t
	}
	return t
}

// Observe counts an applied outcome.
func (m *Monitor) Observe(o *declaration.Outcome, at engine.Attribution) {
	switch {
	case at.Repeat:
		m.Repeated++
		return
	case !at.Known:
		m.Unmatched++
		return
	}
	tally(m.Groups, Group{at.Channel, at.SelectedBy}).add(o)
	for _, p := range at.Profiles {
		tally(m.Profiles, p).add(o)
	}
	for _, d := range at.Detectors {
		tally(m.Detectors, d).add(o)
	}
}

// Random is the random compliance sample's tally, all channels together.
func (m *Monitor) Random() *Tally {
	var r Tally
	for g, t := range m.Groups {
		if g.SelectedBy == "random" {
			r.Inspected += t.Inspected
			r.Hits += t.Hits
			r.Revenue += t.Revenue
		}
	}
	return &r
}

// Table is the outcome-monitoring table of the replay summary. With truth
// (an outcome for every declaration) and the assessments, each group also
// shows its size and its true hit rate, beside what the outcomes showed.
func (m *Monitor) Table(scores []Scored, truth map[string]*declaration.Outcome) string {
	var b strings.Builder
	inspected := 0
	for _, t := range m.Groups {
		inspected += t.Inspected
	}
	if inspected == 0 && m.Unmatched == 0 {
		return ""
	}
	random := m.Random().HitRate()
	type truthTally struct{ n, hits int }
	byGroup := map[Group]*truthTally{}
	if truth != nil {
		for _, s := range scores {
			g := Group{s.Channel, s.SelectedBy}
			tt := byGroup[g]
			if tt == nil {
				tt = &truthTally{}
				byGroup[g] = tt
			}
			tt.n++
			if o := truth[s.ID]; o != nil && o.Hit {
				tt.hits++
			}
		}
	}
	fmt.Fprintf(&b, "outcome monitoring: %d outcomes attributed to their assessment; %d not attributed (their declaration was not assessed here or is no longer remembered); %d repeated\n",
		inspected, m.Unmatched, m.Repeated)
	if truth != nil {
		b.WriteString("  channel  selected_by  inspected   hits  hit rate   lift    revenue | assessed  true hit rate\n")
	} else {
		b.WriteString("  channel  selected_by  inspected   hits  hit rate   lift    revenue\n")
	}
	var groups []Group
	seen := map[Group]bool{}
	for g := range m.Groups {
		groups, seen[g] = append(groups, g), true
	}
	for g := range byGroup {
		if !seen[g] {
			groups = append(groups, g)
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].Channel != groups[j].Channel {
			return groups[i].Channel > groups[j].Channel
		}
		return groups[i].SelectedBy < groups[j].SelectedBy
	})
	for _, g := range groups {
		t := m.Groups[g]
		if t == nil {
			t = &Tally{}
		}
		fmt.Fprintf(&b, "  %-7s  %-11s  %9d  %5d  %s  %s  %9.0f", g.Channel, g.SelectedBy, t.Inspected, t.Hits,
			fmtRate(t.HitRate()), fmtLift(t.HitRate(), random), t.Revenue)
		if tt := byGroup[g]; tt != nil {
			fmt.Fprintf(&b, " | %8d  %s", tt.n, fmtRate(float64(tt.hits)/float64(tt.n)))
		}
		b.WriteString("\n")
	}
	if r := m.Random(); r.Inspected > 0 {
		fmt.Fprintf(&b, "  random compliance sample: %d hits in %d inspections (%s): the estimate of non-compliance in the whole flow\n",
			r.Hits, r.Inspected, strings.TrimSpace(fmtRate(r.HitRate())))
	}
	list := func(title string, ts map[string]*Tally) {
		if len(ts) == 0 {
			return
		}
		names := make([]string, 0, len(ts))
		for n := range ts {
			names = append(names, n)
		}
		sort.Strings(names)
		items := make([]string, len(names))
		for i, n := range names {
			t := ts[n]
			items[i] = fmt.Sprintf("%s %d/%d (%s, lift %s)", n, t.Hits, t.Inspected, strings.TrimSpace(fmtRate(t.HitRate())),
				strings.TrimSpace(fmtLift(t.HitRate(), random)))
		}
		fmt.Fprintf(&b, "  %s: %s\n", title, strings.Join(items, ", "))
	}
	list("hits/inspections by profile", m.Profiles)
	list("hits/inspections by detector", m.Detectors)
	return b.String()
}

func fmtRate(r float64) string {
	if math.IsNaN(r) {
		return "       -"
	}
	return fmt.Sprintf("%7.1f%%", 100*r)
}

func fmtLift(r, random float64) string {
	if math.IsNaN(r) || math.IsNaN(random) || random == 0 {
		return "     -"
	}
	return fmt.Sprintf("%5.1fx", r/random)
}
