package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riskmon/riskmon/declaration"
)

// maxLine is the width every line of the demo's output stays under.
const maxLine = 100

// isTerminal reports whether f is a character device: a terminal, not a file
// or a pipe. (golang.org/x/term is not among the module's requirements.)
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// liveSummary is the demo's view of the stream. The stream's OnAssessed hook
// and the feed update it; every second it is rendered either as a dashboard
// redrawn in place (stdout is a terminal) or as one plain table row (stdout
// is a file or a pipe, as in CI).
type liveSummary struct {
	mu        sync.Mutex
	start     time.Time
	total     tally
	inRiskmon []time.Duration // fetched to acknowledged, since the last frame
	lodged    []time.Duration // lodged_at to assessed_at, since the last frame
	reds      []pick          // latest reds selected by score, profile or override, newest last
	randoms   []pick          // latest random compliance picks, newest last
	logs      []string        // latest log lines (dashboard only), newest last
}

// tally holds the demo's counters; the same struct serves for the totals
// since the start and for the last second (a difference of two totals).
type tally struct {
	produced, assessed int
	channels           [3]int
	// reds by selected_by: "score", "profile", "random", anything else
	redScore, redProfile, redRandom, redOther int
	randomPicks                               int // random compliance picks, any channel
	modelScored                               int // assessments scored by the learned model
}

func (t tally) minus(u tally) tally {
	t.produced -= u.produced
	t.assessed -= u.assessed
	for i := range t.channels {
		t.channels[i] -= u.channels[i]
	}
	t.redScore -= u.redScore
	t.redProfile -= u.redProfile
	t.redRandom -= u.redRandom
	t.redOther -= u.redOther
	t.randomPicks -= u.randomPicks
	t.modelScored -= u.modelScored
	return t
}

// pick is one declaration shown in the dashboard's lists.
type pick struct {
	at                 time.Time
	id, importer       string
	score              float64
	channel            declaration.Channel
	selectedBy, reason string
}

// frame is everything one rendering shows: a pure value, so that the
// renderers are pure functions of it.
type frame struct {
	now            time.Time
	uptime         time.Duration
	total, last    tally
	p50, p99       time.Duration // fetched to acknowledged, last second
	lodP50, lodP99 time.Duration // lodged_at to assessed_at, last second
	reds, randoms  []pick
	logs           []string
}

// demoInfo is the demo's fixed header.
type demoInfo struct {
	broker, metrics, topic, ruleset string
	rate                            int
	seed                            uint64
}

const keepPicks = 4

func newLiveSummary() *liveSummary { return &liveSummary{start: time.Now()} }

func (l *liveSummary) add(a *declaration.Assessment, _ *declaration.Declaration, lat time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := &l.total
	t.assessed++
	t.channels[a.Channel]++
	if a.Model != "" {
		t.modelScored++
	}
	if a.SelectedBy == "random" {
		t.randomPicks++
	}
	l.inRiskmon = append(l.inRiskmon, lat)
	if !a.LodgedAt.IsZero() && !a.AssessedAt.IsZero() {
		l.lodged = append(l.lodged, a.AssessedAt.Sub(a.LodgedAt))
	}
	p := pick{at: a.AssessedAt, id: a.DeclarationID, importer: a.ImporterID, score: a.Score, channel: a.Channel, selectedBy: a.SelectedBy}
	if len(a.Findings) > 0 {
		p.reason = a.Findings[0].Detector + ": " + a.Findings[0].Reason
	}
	switch {
	case a.SelectedBy == "random":
		if a.Channel == declaration.Red {
			t.redRandom++
		}
		l.randoms = appendPick(l.randoms, p)
	case a.Channel != declaration.Red:
	case a.SelectedBy == "score":
		t.redScore++
		l.reds = appendPick(l.reds, p)
	case a.SelectedBy == "profile":
		t.redProfile++
		l.reds = appendPick(l.reds, p)
	default:
		t.redOther++
		l.reds = appendPick(l.reds, p)
	}
}

func appendPick(ps []pick, p pick) []pick {
	if len(ps) == keepPicks {
		ps = append(ps[:0], ps[1:]...)
	}
	return append(ps, p)
}

func (l *liveSummary) produced(declarations int) {
	l.mu.Lock()
	l.total.produced += declarations
	l.mu.Unlock()
}

// Write keeps the latest log lines for the dashboard, which would otherwise
// wipe them from the terminal at its next redraw.
func (l *liveSummary) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logs = append(l.logs, strings.Split(strings.TrimRight(string(b), "\n"), "\n")...)
	if n := len(l.logs); n > 3 {
		l.logs = append(l.logs[:0], l.logs[n-3:]...)
	}
	return len(b), nil
}

// snapshot takes the frame to show and starts the next second.
func (l *liveSummary) snapshot(prev tally) frame {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := frame{now: time.Now(), uptime: time.Since(l.start), total: l.total, last: l.total.minus(prev),
		reds: slices.Clone(l.reds), randoms: slices.Clone(l.randoms), logs: slices.Clone(l.logs)}
	f.p50, f.p99 = percentiles(l.inRiskmon)
	f.lodP50, f.lodP99 = percentiles(l.lodged)
	l.inRiskmon, l.lodged = l.inRiskmon[:0], l.lodged[:0]
	return f
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// print renders a frame every second until ctx ends: a dashboard redrawn in
// place on a terminal, else one table row per second under a header.
func (l *liveSummary) print(ctx context.Context, w io.Writer, tty bool, info demoInfo) {
	if !tty {
		fmt.Fprintln(w, tableHeader())
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev tally
	first := true
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
		}
		f := l.snapshot(prev)
		prev = f.total
		if tty {
			// Cursor home, each line cleared to its end, then everything
			// below the frame cleared: a redraw in place, without flicker.
			var b strings.Builder
			if first {
				b.WriteString("\x1b[2J") // the whole screen, once
				first = false
			}
			b.WriteString("\x1b[H")
			for _, line := range renderDashboard(f, info) {
				b.WriteString(line + "\x1b[K\n")
			}
			b.WriteString("\x1b[J")
			io.WriteString(w, b.String())
		} else {
			fmt.Fprintln(w, renderRow(f))
		}
	}
}

// introLines are printed once when the demo starts.
func introLines(info demoInfo) []string {
	return fitLines([]string{
		fmt.Sprintf("riskmon demo: embedded broker %s, synthetic feed of %d declarations/s (seed %d)", info.broker, info.rate, info.seed),
		"metrics: http://" + info.metrics + "/metrics",
		fmt.Sprintf("assessments: kcat -b %s -t %s -C -o beginning", info.broker, info.topic),
	})
}

// The plain table: one row a second, for output to a file or a pipe. The
// last-second columns come first, then the totals since the start.
const (
	tableLegend = "p99: lodged-to-assessed ms; lag: not yet assessed; model: scored by the learned model"
	tableHead1  = "         |      last second       |                      since start"
	tableHead2  = "time     | assessed  p99 ms   lag |   assessed   red %  red by score  profile  random    model"
	tableRow    = "%-8s | %8d %7s %5d | %10d %6.1f  %12d %8d %7d %8d"
)

func tableHeader() string { return tableLegend + "\n" + tableHead1 + "\n" + tableHead2 }

// renderRow is one second of the plain output.
func renderRow(f frame) string {
	t := f.total
	return fit(fmt.Sprintf(tableRow, f.now.Format(time.TimeOnly), f.last.assessed, fmtMS(f.lodP99), lag(t),
		t.assessed, pct(t.channels[declaration.Red], t.assessed), t.redScore, t.redProfile, t.redRandom, t.modelScored))
}

func lag(t tally) int { return max(t.produced-t.assessed, 0) }

// renderDashboard is the frame redrawn in place on a terminal.
func renderDashboard(f frame, info demoInfo) []string {
	t, s := f.total, f.last
	intro := introLines(info)
	lines := []string{
		fmt.Sprintf("riskmon demo   %s   up %s   ruleset %s   (Ctrl-C stops)", f.now.Format(time.TimeOnly), f.uptime.Truncate(time.Second), info.ruleset),
		strings.TrimPrefix(intro[0], "riskmon demo: "),
	}
	lines = append(lines, intro[1:]...)
	row := func(label string, last, total int, extra string) string {
		return fmt.Sprintf("%-30s %11d %12d  %s", label, last, total, extra)
	}
	share := func(c declaration.Channel) string {
		return fmt.Sprintf("%5.1f%% of all assessed", pct(t.channels[c], t.assessed))
	}
	lines = append(lines, "",
		fmt.Sprintf("%-30s %11s %12s", "", "last second", "since start"),
		row("declarations produced", s.produced, t.produced, ""),
		row("assessed", s.assessed, t.assessed, fmt.Sprintf("lag now: %d", lag(t))),
		row("  green (release)", s.channels[declaration.Green], t.channels[declaration.Green], share(declaration.Green)),
		row("  yellow (documentary check)", s.channels[declaration.Yellow], t.channels[declaration.Yellow], share(declaration.Yellow)),
		row("  red (physical inspection)", s.channels[declaration.Red], t.channels[declaration.Red], share(declaration.Red)),
		row("red, selected by score", s.redScore, t.redScore, ""),
		row("red, selected by a profile", s.redProfile, t.redProfile, ""),
		row("red, random compliance pick", s.redRandom, t.redRandom, fmt.Sprintf("random picks, any channel: %d", t.randomPicks)),
	)
	if t.redOther > 0 {
		lines = append(lines, row("red, other selection", s.redOther, t.redOther, ""))
	}
	lines = append(lines,
		row("scored by the learned model", s.modelScored, t.modelScored, ""),
		fmt.Sprintf("%-30s p50 %8s ms  p99 %8s ms  (last second)", "latency, fetched to acked", fmtMS(f.p50), fmtMS(f.p99)),
		fmt.Sprintf("%-30s p50 %8s ms  p99 %8s ms  (last second)", "latency, lodged to assessed", fmtMS(f.lodP50), fmtMS(f.lodP99)),
		"", "latest reds selected by score or profile (top finding):")
	for i := len(f.reds) - 1; i >= 0; i-- {
		p := f.reds[i]
		lines = append(lines, fmt.Sprintf("  %s %s %s score %.0f, by %s: %s", p.at.Local().Format(time.TimeOnly), p.id, p.importer, p.score, p.selectedBy, p.reason))
	}
	lines = append(lines, "", "latest random compliance picks (selected by chance, not by risk):")
	for i := len(f.randoms) - 1; i >= 0; i-- {
		p := f.randoms[i]
		lines = append(lines, fmt.Sprintf("  %s %s %s score %.0f, %s", p.at.Local().Format(time.TimeOnly), p.id, p.importer, p.score, p.channel))
	}
	if len(f.logs) > 0 {
		lines = append(lines, "", "latest log lines:")
		for _, s := range f.logs {
			lines = append(lines, "  "+s)
		}
	}
	return fitLines(lines)
}

func pct(n, of int) float64 { return 100 * float64(n) / float64(max(of, 1)) }

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.1f", ms(d)) }

// fit cuts a line to fewer than maxLine characters, without trailing blanks.
func fit(s string) string {
	s = strings.TrimRight(s, " ")
	if r := []rune(s); len(r) >= maxLine {
		return string(r[:maxLine-4]) + "..."
	}
	return s
}

func fitLines(ls []string) []string {
	for i := range ls {
		ls[i] = fit(ls[i])
	}
	return ls
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
