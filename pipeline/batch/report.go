package batch

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/riskmon/riskmon/declaration"
)

// The HTML report of replay and compare: one self-contained file an analyst
// can mail or archive. It makes no network reference at all (no scripts,
// fonts, style sheets or images from elsewhere): the charts are inline SVG
// drawn here, the style is inline. It opens the same offline, in ten years,
// and behind an air gap.

// Report is what the HTML report shows.
type Report struct {
	Title string // "riskmon replay" or "riskmon compare"
	Input string // the declarations file
	Sides []*Side
	// Comparison, for compare: the transition matrix and the changed
	// declarations.
	Comparison *Comparison
	// Truth (an outcome for every declaration) gives the precision curves
	// and the score distributions; without it, Outcomes (the inspections
	// given) give the score distributions among the inspected.
	Truth, Outcomes map[string]*declaration.Outcome
	Window          Window
	TopChanged      int // changed declarations listed (default 25)
}

// Colours of the charts: one per series, and the channels'.
const (
	colGreen   = "#2e7d32"
	colYellow  = "#e0a800"
	colRed     = "#c62828"
	colBlue    = "#1f5fa8"
	colOrange  = "#e8710a"
	colGrey    = "#9e9e9e"
	chartW     = 520
	chartH     = 260
	marginL    = 52
	marginR    = 16
	marginT    = 28
	marginB    = 44
	curveStep  = 0.5 // percent, between points of the precision curve
	curveMax   = 20  // percent
	scoreBins  = 20
	timeBucket = 40
)

const reportCSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#212121;background:#fff}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
p.meta{color:#555;margin:2px 0}
.cols{display:grid;grid-template-columns:repeat(var(--n),minmax(0,1fr));gap:28px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #eee}
th{background:#f5f5f5;font-weight:600}
td.l,th.l{text-align:left}
.up{color:#c62828}.down{color:#2e7d32}
.chip{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
svg{background:#fff;max-width:100%;height:auto}
svg text{font-size:11px;fill:#424242}
.note{color:#666;font-size:12px}
`

// WriteReport writes the report as one HTML page.
func WriteReport(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	b := &htmlWriter{w: bw}
	title := r.Title
	if title == "" {
		title = "riskmon report"
	}
	b.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
	b.raw("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">")
	b.f("<title>%s</title><style>%s</style></head><body>\n", esc(title+" · "+r.Input), reportCSS)
	b.f("<h1>%s</h1>\n", esc(title))
	b.f("<p class=\"meta\">input: %s</p>\n", esc(r.Input))
	for _, s := range r.Sides {
		st := s.Stats
		b.f("<p class=\"meta\">%s: ruleset <b>%s</b> (%s): %d declarations read, %d assessed, %d invalid</p>\n",
			esc(s.Label), esc(s.Ruleset), esc(s.Source), st.Lines, st.Assessed, st.Invalid)
	}
	if c := r.Comparison; c != nil {
		writeTransitions(b, c, r.TopChanged)
	}
	cols := func(heading string, note string, f func(s *Side)) {
		b.f("<h2>%s</h2>\n", esc(heading))
		if note != "" {
			b.f("<p class=\"note\">%s</p>\n", esc(note))
		}
		b.f("<div class=\"cols\" style=\"--n:%d\">\n", len(r.Sides))
		for _, s := range r.Sides {
			b.raw("<div>")
			if len(r.Sides) > 1 {
				b.f("<h3>%s: %s</h3>", esc(s.Label), esc(s.Ruleset))
			}
			f(s)
			b.raw("</div>\n")
		}
		b.raw("</div>\n")
	}
	cols("Channels", "", func(s *Side) { writeChannels(b, s) })
	if r.Truth != nil {
		cols("Precision and revenue against inspection rate",
			fmt.Sprintf("Declarations %s, ranked by score; inspecting the top k %% finds this share of the hits' revenue, with this precision.", r.Window),
			func(s *Side) {
				if s.Eval == nil {
					return
				}
				b.raw(precisionChart(curve(s.Eval.Evaluated, r.Truth)))
				writeEvaluation(b, s.Eval)
			})
	}
	// The sides share their charts' scales, so that the eye compares them.
	if labels, what := scoreLabels(r); labels != nil {
		hs := make([]hist, len(r.Sides))
		top := 0.0
		for i, s := range r.Sides {
			scores := s.Stats.Scores
			if r.Truth != nil && s.Eval != nil {
				scores = s.Eval.Evaluated
			}
			hs[i] = histogram(scores, labels)
			top = max(top, hs[i].top())
		}
		i := 0
		cols("Score distributions", what, func(s *Side) { b.raw(scoreChart(hs[i], niceMax(top))); i++ })
	}
	shares := make([][2]series, len(r.Sides))
	top := 0.0
	for i, s := range r.Sides {
		var t float64
		shares[i], t = channelShares(s.Stats.Scores)
		top = max(top, t)
	}
	i := 0
	cols("Channel shares over time", "Yellow and red shares (random compliance picks included) in equal slices of the stream, in input order.",
		func(s *Side) { b.raw(timeChart(shares[i], s.Stats.Scores, niceMax(top))); i++ })
	cols("Outcome monitoring", "Inspection outcomes given, attributed to how this configuration had assessed their declarations. The random compliance sample's hit rate estimates non-compliance in the whole flow; lift is a group's hit rate over it.",
		func(s *Side) { writeMonitor(b, s.Stats.Monitor) })
	note := "Declarations with a finding of each detector or profile, over the whole stream"
	if r.Truth != nil {
		note += "; true hits among them."
	} else {
		note += "; inspections and hits among them from the outcomes given."
	}
	cols("Detectors and profiles", note, func(s *Side) { writeFiring(b, s, r.Truth != nil) })
	b.raw("</body></html>\n")
	if b.err != nil {
		return b.err
	}
	return bw.Flush()
}

type htmlWriter struct {
	w   io.Writer
	err error
}

func (h *htmlWriter) raw(s string) {
	if h.err == nil {
		_, h.err = io.WriteString(h.w, s)
	}
}

func (h *htmlWriter) f(format string, args ...any) { h.raw(fmt.Sprintf(format, args...)) }

func esc(s string) string { return html.EscapeString(s) }

func chColour(ch declaration.Channel) string {
	return [...]string{colGreen, colYellow, colRed}[ch]
}

func writeChannels(b *htmlWriter, s *Side) {
	st := s.Stats
	b.raw("<table><tr><th class=\"l\">channel</th><th>declarations</th><th>share</th></tr>")
	for ch := declaration.Channel(0); ch <= declaration.Red; ch++ {
		b.f("<tr><td class=\"l\"><span class=\"chip\" style=\"background:%s\"></span>%s</td><td>%d</td><td>%.1f %%</td></tr>",
			chColour(ch), ch, st.Channels[ch], pct(st.Channels[ch], st.Assessed))
	}
	for _, by := range []string{"score", "profile", "random"} {
		b.f("<tr><td class=\"l\">selected by %s</td><td>%d</td><td>%.1f %%</td></tr>", by, st.SelectedBy[by], pct(st.SelectedBy[by], st.Assessed))
	}
	b.raw("</table>")
	r := st.Rates
	if r.Targets {
		b.f("<p class=\"note\">thresholds at the end: yellow %.2f, red %.2f, following inspection-rate targets red %.1f %%, yellow %.1f %%</p>",
			r.Yellow, r.Red, 100*r.TargetRed, 100*r.TargetYel)
	} else {
		b.f("<p class=\"note\">thresholds at the end: yellow %.2f, red %.2f (fixed)</p>", r.Yellow, r.Red)
	}
}

func writeEvaluation(b *htmlWriter, ev *Evaluation) {
	b.f("<p class=\"note\">%s: %d hits (base rate %.2f %%), revenue %s%s</p>", esc(ev.Scope()), ev.Hits, 100*ev.BaseRate, fmtInt(ev.Revenue), repeatedNote(ev.Repeated))
	b.raw("<table><tr><th class=\"l\">inspect</th><th>selected</th><th>hits</th><th>precision</th><th>recall</th><th>revenue</th><th>lift</th></tr>")
	for _, rows := range [][]EvalRow{ev.Rows, ev.ChannelRows} {
		for _, x := range rows {
			b.f("<tr><td class=\"l\">%s</td><td>%d</td><td>%d</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.1f</td></tr>",
				esc(x.Label), x.Selected, x.Hits, x.Precision, x.Recall, x.RevenueShare, x.Lift)
		}
	}
	b.raw("</table>")
}

func writeMonitor(b *htmlWriter, m *Monitor) {
	if m == nil || (len(m.Groups) == 0 && m.Unmatched == 0) {
		b.raw("<p class=\"note\">no outcomes</p>")
		return
	}
	random := m.Random().HitRate()
	var groups []Group
	for g := range m.Groups {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].Channel != groups[j].Channel {
			return groups[i].Channel > groups[j].Channel
		}
		return groups[i].SelectedBy < groups[j].SelectedBy
	})
	b.raw("<table><tr><th class=\"l\">channel</th><th class=\"l\">selected by</th><th>inspected</th><th>hits</th><th>hit rate</th><th>lift</th><th>revenue</th></tr>")
	for _, g := range groups {
		t := m.Groups[g]
		b.f("<tr><td class=\"l\"><span class=\"chip\" style=\"background:%s\"></span>%s</td><td class=\"l\">%s</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td></tr>",
			chColour(g.Channel), g.Channel, esc(g.SelectedBy), t.Inspected, t.Hits, esc(strings.TrimSpace(fmtRate(t.HitRate()))),
			esc(strings.TrimSpace(fmtLift(t.HitRate(), random))), fmtInt(t.Revenue))
	}
	b.raw("</table>")
	r := m.Random()
	b.f("<p class=\"note\">random compliance sample: %d hits in %d inspections (%s); %d outcomes for declarations not assessed or no longer remembered, %d repeated</p>",
		r.Hits, r.Inspected, esc(strings.TrimSpace(fmtRate(r.HitRate()))), m.Unmatched, m.Repeated)
}

func writeFiring(b *htmlWriter, s *Side, truth bool) {
	m := s.Stats.Monitor
	if m == nil {
		m = newMonitor()
	}
	if truth {
		b.raw("<table><tr><th class=\"l\">detector / profile</th><th>fired</th><th>share</th><th>true hits</th><th>precision</th><th>inspected</th><th>hits</th></tr>")
	} else {
		b.raw("<table><tr><th class=\"l\">detector / profile</th><th>fired</th><th>share</th><th>inspected</th><th>hits</th><th>hit rate</th></tr>")
	}
	row := func(name string, f *Firing, t *Tally) {
		if f == nil {
			f = &Firing{}
		}
		if t == nil {
			t = &Tally{}
		}
		b.f("<tr><td class=\"l\">%s</td><td>%d</td><td>%.1f %%</td>", esc(name), f.Fired, pct(f.Fired, s.Stats.Assessed))
		if truth {
			b.f("<td>%d</td><td>%s</td><td>%d</td><td>%d</td></tr>", f.Hits, strings.TrimSpace(fmtPrec(f)), t.Inspected, t.Hits)
		} else {
			b.f("<td>%d</td><td>%d</td><td>%s</td></tr>", t.Inspected, t.Hits, esc(strings.TrimSpace(fmtRate(t.HitRate()))))
		}
	}
	for _, d := range union(s.Detectors, keys(s.DetectorFiring)) {
		row(d, s.DetectorFiring[d], m.Detectors[d])
	}
	for _, p := range union(keys(s.ProfileFiring), keys(m.Profiles)) {
		row("profile "+p, s.ProfileFiring[p], m.Profiles[p])
	}
	b.raw("</table>")
}

func writeTransitions(b *htmlWriter, c *Comparison, top int) {
	if top <= 0 {
		top = 25
	}
	n := c.Base.Stats.Assessed
	b.raw("<h2>Channel transitions</h2>\n<p class=\"note\">Rows: the base configuration's channel; columns: the candidate's. Off the diagonal: the declarations that change channel.</p>")
	b.raw("<table><tr><th class=\"l\">base \\ candidate</th>")
	for j := range 3 {
		b.f("<th><span class=\"chip\" style=\"background:%s\"></span>%s</th>", chColour(declaration.Channel(j)), declaration.Channel(j))
	}
	b.raw("<th>total</th></tr>")
	for i := range 3 {
		b.f("<tr><td class=\"l\"><span class=\"chip\" style=\"background:%s\"></span>%s</td>", chColour(declaration.Channel(i)), declaration.Channel(i))
		tot := 0
		for j := range 3 {
			v := c.Transitions[i][j]
			tot += v
			style := ""
			switch {
			case i == j:
				style = " style=\"background:#f1f8e9\""
			case v > 0 && j > i:
				style = " class=\"up\""
			case v > 0:
				style = " class=\"down\""
			}
			b.f("<td%s>%d</td>", style, v)
		}
		b.f("<td>%d</td></tr>", tot)
	}
	b.raw("</table>")
	b.f("<p class=\"meta\">%d declarations change channel (%.2f %% of %d).</p>", len(c.Changed), pct(len(c.Changed), n), n)
	if len(c.Changed) == 0 {
		return
	}
	b.f("<h3>Largest score changes among them (%d of %d)</h3>", min(top, len(c.Changed)), len(c.Changed))
	b.raw("<table><tr><th class=\"l\">declaration</th><th class=\"l\">base</th><th class=\"l\">candidate</th><th>score change</th><th class=\"l\">findings that made the difference</th></tr>")
	for _, x := range c.Changed[:min(top, len(c.Changed))] {
		reasons := x.Reasons()
		if len(reasons) == 0 {
			reasons = []string{"same findings (the threshold or the model moved)"}
		}
		for i := range reasons {
			reasons[i] = esc(reasons[i])
		}
		b.f("<tr><td class=\"l\">%s</td><td class=\"l\"><span class=\"chip\" style=\"background:%s\"></span>%s %.1f</td><td class=\"l\"><span class=\"chip\" style=\"background:%s\"></span>%s %.1f</td><td>%+.1f</td><td class=\"l\">%s</td></tr>",
			esc(x.Base.ID), chColour(x.Base.Channel), x.Base.Channel, x.Base.Score, chColour(x.Candidate.Channel), x.Candidate.Channel, x.Candidate.Score,
			x.ScoreChange(), strings.Join(reasons, "<br>"))
	}
	b.raw("</table>")
}

// curvePoint is what inspecting the top Rate % would find.
type curvePoint struct{ Rate, Precision, Revenue float64 }

// curve ranks scores as Evaluate does (score, then a hash of the id) and
// reports precision and revenue share every curveStep percent.
func curve(scores []Scored, truth map[string]*declaration.Outcome) []curvePoint {
	s := append([]Scored(nil), scores...)
	rank(s)
	var total float64
	for _, x := range s {
		if o := truth[x.ID]; o != nil {
			total += o.Revenue
		}
	}
	var out []curvePoint
	hits, rev, k := 0, 0.0, 0
	for rate := curveStep; rate <= curveMax+1e-9; rate += curveStep {
		n := int(math.Round(rate / 100 * float64(len(s))))
		for ; k < n && k < len(s); k++ {
			if o := truth[s[k].ID]; o != nil {
				if o.Hit {
					hits++
				}
				rev += o.Revenue
			}
		}
		p := curvePoint{Rate: rate}
		if n > 0 {
			p.Precision = float64(hits) / float64(n)
		}
		if total > 0 {
			p.Revenue = rev / total
		}
		out = append(out, p)
	}
	return out
}

// series is one line (or set of bars) of a chart.
type series struct {
	name, colour string
	dashed       bool
	x, y         []float64
}

// frame draws the axes, grid and labels of a chart with x in [0, xmax] and
// y in [0, ymax], and returns the coordinate mappers.
func frame(b *strings.Builder, title, xlabel string, xmax, ymax float64, yfmt func(float64) string, xticks []float64, xfmt func(float64) string) (fx, fy func(float64) float64) {
	pw, ph := float64(chartW-marginL-marginR), float64(chartH-marginT-marginB)
	fx = func(x float64) float64 { return marginL + pw*x/xmax }
	fy = func(y float64) float64 { return marginT + ph*(1-y/ymax) }
	fmt.Fprintf(b, "<svg viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"%s\">", chartW, chartH, chartW, chartH, esc(title))
	fmt.Fprintf(b, "<text x=\"%d\" y=\"16\" style=\"font-size:13px;font-weight:600\">%s</text>", marginL, esc(title))
	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		fmt.Fprintf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>", marginL, chartW-marginR, fy(y), fy(y))
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>", marginL-6, fy(y)+4, esc(yfmt(y)))
	}
	for _, x := range xticks {
		fmt.Fprintf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#bdbdbd\"/>", fx(x), fx(x), fy(0), fy(0)+4)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>", fx(x), fy(0)+16, esc(xfmt(x)))
	}
	fmt.Fprintf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#616161\"/>", marginL, chartW-marginR, fy(0), fy(0))
	fmt.Fprintf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%.1f\" stroke=\"#616161\"/>", marginL, marginL, marginT, fy(0))
	fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", fx(xmax/2), chartH-6, esc(xlabel))
	return fx, fy
}

func legend(b *strings.Builder, ss []series) {
	x := float64(chartW - marginR)
	for i := len(ss) - 1; i >= 0; i-- {
		s := ss[i]
		w := float64(7*len(s.name) + 26)
		x -= w
		dash := ""
		if s.dashed {
			dash = " stroke-dasharray=\"5 3\""
		}
		fmt.Fprintf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"12\" y2=\"12\" stroke=\"%s\" stroke-width=\"3\"%s/>", x, x+16, s.colour, dash)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"16\">%s</text>", x+20, esc(s.name))
	}
}

func polyline(b *strings.Builder, s series, fx, fy func(float64) float64) {
	var pts []string
	for i := range s.x {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", fx(s.x[i]), fy(s.y[i])))
	}
	dash := ""
	if s.dashed {
		dash = " stroke-dasharray=\"5 3\""
	}
	fmt.Fprintf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"%s\"/>", s.colour, dash, strings.Join(pts, " "))
}

func precisionChart(pts []curvePoint) string {
	var b strings.Builder
	prec := series{name: "precision", colour: colBlue}
	rev := series{name: "revenue share", colour: colOrange, dashed: true}
	for _, p := range pts {
		prec.x, prec.y = append(prec.x, p.Rate), append(prec.y, p.Precision)
		rev.x, rev.y = append(rev.x, p.Rate), append(rev.y, p.Revenue)
	}
	fx, fy := frame(&b, "precision, revenue share", "inspection rate (% of declarations, top by score)", curveMax, 1,
		func(y float64) string { return fmt.Sprintf("%.2f", y) }, []float64{1, 2, 5, 10, 15, 20}, func(x float64) string { return fmt.Sprintf("%g%%", x) })
	for _, s := range []series{prec, rev} {
		polyline(&b, s, fx, fy)
	}
	for _, p := range pts {
		for _, r := range EvalRates {
			if math.Abs(p.Rate-r) < 1e-9 {
				fmt.Fprintf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", fx(p.Rate), fy(p.Precision), colBlue)
				fmt.Fprintf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", fx(p.Rate), fy(p.Revenue), colOrange)
			}
		}
	}
	legend(&b, []series{prec, rev})
	b.WriteString("</svg>")
	return b.String()
}

// scoreLabels picks the labels of the score distributions: truth, else the
// outcomes given.
func scoreLabels(r *Report) (map[string]*declaration.Outcome, string) {
	if r.Truth != nil {
		return r.Truth, fmt.Sprintf("Scores of the hits and of the clean declarations %s (truth), each as a share of its group.", r.Window)
	}
	if len(r.Outcomes) > 0 {
		return r.Outcomes, "Scores of the inspected declarations (the outcomes given): hits and clean, each as a share of its group."
	}
	return nil, ""
}

// hist is the score histogram of hits and of clean declarations, each as
// shares of its group.
type hist struct {
	hits, clean [scoreBins]float64
	nh, nc      int
}

func (h *hist) top() float64 {
	t := 0.0
	for i := range scoreBins {
		t = max(t, h.hits[i], h.clean[i])
	}
	return t
}

func histogram(scores []Scored, labels map[string]*declaration.Outcome) hist {
	var h hist
	hits, clean := &h.hits, &h.clean
	for _, s := range scores {
		o := labels[s.ID]
		if o == nil {
			continue
		}
		bin := min(int(s.Score/(100.0/scoreBins)), scoreBins-1)
		bin = max(bin, 0)
		if o.Hit {
			hits[bin]++
			h.nh++
		} else {
			clean[bin]++
			h.nc++
		}
	}
	for i := range scoreBins {
		if h.nh > 0 {
			hits[i] /= float64(h.nh)
		}
		if h.nc > 0 {
			clean[i] /= float64(h.nc)
		}
	}
	return h
}

func scoreChart(h hist, ymax float64) string {
	hits, clean := h.hits, h.clean
	var b strings.Builder
	fx, fy := frame(&b, fmt.Sprintf("score distribution: %d hits, %d clean", h.nh, h.nc), "score", 100, ymax, fmtPct, []float64{0, 20, 40, 60, 80, 100}, func(x float64) string { return fmt.Sprintf("%g", x) })
	bw := (fx(100.0/scoreBins) - fx(0)) / 2
	for i := range scoreBins {
		x0 := fx(float64(i) * 100 / scoreBins)
		fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", x0+0.5, fy(clean[i]), bw-1, fy(0)-fy(clean[i]), colGrey)
		fmt.Fprintf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", x0+bw, fy(hits[i]), bw-1, fy(0)-fy(hits[i]), colRed)
	}
	legend(&b, []series{{name: "clean", colour: colGrey}, {name: "hits", colour: colRed}})
	b.WriteString("</svg>")
	return b.String()
}

// niceMax rounds a chart's top up to a round share.
func niceMax(v float64) float64 {
	for _, m := range []float64{0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1} {
		if v <= m {
			return m
		}
	}
	return v
}

// fmtPct labels a share axis: 2.5%, 10%.
func fmtPct(y float64) string { return strconv.FormatFloat(100*y, 'g', 3, 64) + "%" }

// channelShares is the yellow and red share in timeBucket equal slices of
// the stream, and the largest.
func channelShares(scores []Scored) (ys [2]series, top float64) {
	n := len(scores)
	buckets := min(timeBucket, n)
	yel := series{name: "yellow", colour: colYellow}
	red := series{name: "red", colour: colRed}
	for i := range buckets {
		lo, hi := i*n/buckets, (i+1)*n/buckets
		var c [3]int
		for _, s := range scores[lo:hi] {
			c[s.Channel]++
		}
		x := (float64(i) + 0.5) / float64(buckets)
		yel.x, yel.y = append(yel.x, x), append(yel.y, float64(c[declaration.Yellow])/float64(hi-lo))
		red.x, red.y = append(red.x, x), append(red.y, float64(c[declaration.Red])/float64(hi-lo))
		top = max(top, yel.y[len(yel.y)-1], red.y[len(red.y)-1])
	}
	return [2]series{yel, red}, top
}

func timeChart(ys [2]series, scores []Scored, ymax float64) string {
	yel, red := ys[0], ys[1]
	n := len(scores)
	var firstDay, lastDay string
	if n > 0 && !scores[0].LodgedAt.IsZero() {
		firstDay, lastDay = scores[0].LodgedAt.Format("2006-01-02"), scores[n-1].LodgedAt.Format("2006-01-02")
	}
	var b strings.Builder
	xlabel := "share of the stream, in input order"
	if firstDay != "" {
		xlabel = fmt.Sprintf("lodged %s to %s, in input order", firstDay, lastDay)
	}
	fx, fy := frame(&b, "channel shares", xlabel, 1, ymax, fmtPct,
		[]float64{0, 0.25, 0.5, 0.75, 1}, func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) })
	if len(yel.x) > 0 {
		polyline(&b, yel, fx, fy)
		polyline(&b, red, fx, fy)
	}
	legend(&b, []series{yel, red})
	b.WriteString("</svg>")
	return b.String()
}
