package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"sigs.k8s.io/yaml"
)

const runbookBase = "https://github.com/riskmon/riskmon/blob/main/deploy/RUNBOOK.md#"

// outcomeMetrics are the outcome-monitoring metrics the dashboard and the
// alerts were written against. They are known even if pipeline/stream does
// not define them (they were added there at the same time as deploy/).
var outcomeMetrics = []string{
	"riskmon_inspections_total", "riskmon_inspection_revenue_total", "riskmon_profile_inspections_total",
	"riskmon_detector_inspections_total", "riskmon_outcomes_unmatched_total", "riskmon_channel_threshold",
	"riskmon_channel_share", "riskmon_channel_target_share",
}

// knownMetrics are the riskmon_* names riskmon defines: every string literal
// naming one in pipeline/stream (its Prometheus metrics), and outcomeMetrics.
func knownMetrics(p *problems) map[string]bool {
	known := map[string]bool{}
	for _, m := range outcomeMetrics {
		known[m] = true
	}
	files, _ := filepath.Glob(filepath.Join(deployDir, "..", "pipeline", "stream", "*.go"))
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`"(riskmon_[a-z0-9_]+)"`).FindAllSubmatch(b, -1) {
			known[string(m[1])] = true
			n++
		}
	}
	if n == 0 {
		p.add("found no metric names in pipeline/stream/*.go")
	}
	return known
}

var metricRe = regexp.MustCompile(`(^|[^a-zA-Z0-9_:])(riskmon_[a-zA-Z0-9_]+)`)

// checkMetricNames reports riskmon_* names in a PromQL expression that
// riskmon does not export.
func checkMetricNames(where, expr string, known map[string]bool, p *problems) {
	for _, m := range metricRe.FindAllStringSubmatch(expr, -1) {
		name := m[2]
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			p.add("%s: metric %s is not one riskmon exports", where, name)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval"`
		Rules    []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

type testFile struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name  string `json:"name"`
		Evals []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

func runbookAnchors(p *problems) map[string]bool {
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(readFile(filepath.Join(deployDir, "RUNBOOK.md"), p)), "\n") {
		if strings.HasPrefix(line, "#") {
			anchors[githubAnchor(strings.TrimLeft(line, "#"))] = true
		}
	}
	return anchors
}

// checkRules checks what promtool does not: every alert has a severity, a
// summary, a description and a runbook_url whose anchor is a heading of
// deploy/RUNBOOK.md; every expression names only metrics riskmon exports;
// and the unit tests beside the file (NAME.test.yml, NAME.*.test.yml) have
// a firing and a silent case for every alert.
func checkRules(path string, p *problems) {
	var rf ruleFile
	if err := yaml.UnmarshalStrict(readFile(path, p), &rf); err != nil {
		p.add("%s: %v", path, err)
		return
	}
	known := knownMetrics(p)
	anchors := runbookAnchors(p)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("%s: group %s: %s%s", filepath.Base(path), g.Name, r.Alert, r.Record)
			checkMetricNames(where, r.Expr, known, p)
			if r.Alert == "" {
				continue
			}
			if alerts[r.Alert] {
				p.add("%s: alert defined twice", where)
			}
			alerts[r.Alert] = true
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				p.add("%s: severity %q is not critical, warning or info", where, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					p.add("%s: no %s annotation", where, a)
				}
			}
			u := r.Annotations["runbook_url"]
			if anchor, ok := strings.CutPrefix(u, runbookBase); !ok {
				p.add("%s: runbook_url %q is not %s<anchor>", where, u, runbookBase)
			} else if !anchors[anchor] {
				p.add("%s: runbook_url anchor #%s is no heading of deploy/RUNBOOK.md", where, anchor)
			}
		}
	}
	if len(alerts) == 0 {
		p.add("%s: no alerts", path)
	}
	// The unit tests.
	base := strings.TrimSuffix(path, ".yml")
	tests, _ := filepath.Glob(base + ".test.yml")
	more, _ := filepath.Glob(base + ".*.test.yml")
	tests = append(tests, more...)
	firing, silent := map[string]int{}, map[string]int{}
	for _, tf := range tests {
		var t testFile
		if err := yaml.Unmarshal(readFile(tf, p), &t); err != nil {
			p.add("%s: %v", tf, err)
			continue
		}
		if !containsStr(t.RuleFiles, filepath.Base(path)) {
			p.add("%s: does not load %s", tf, filepath.Base(path))
		}
		for _, tc := range t.Tests {
			for _, e := range tc.Evals {
				if !alerts[e.Alertname] {
					p.add("%s: test %q evaluates %s, which is no alert of %s", tf, tc.Name, e.Alertname, path)
				}
				if len(e.ExpAlerts) > 0 {
					firing[e.Alertname]++
				} else {
					silent[e.Alertname]++
				}
			}
		}
	}
	for _, a := range sortedKeys(alerts) {
		if firing[a] == 0 {
			p.add("%s: no unit test where it fires", a)
		}
		if silent[a] == 0 {
			p.add("%s: no unit test where it stays silent", a)
		}
	}
	fmt.Printf("rules: %s: %d alerts, each with a runbook section, fired and kept silent in %d test files\n", path, len(alerts), len(tests))
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// syncPrometheusRule writes the rules file's groups into the PrometheusRule
// of the Kubernetes base.
func syncPrometheusRule(p *problems) {
	src := readFile(filepath.Join(deployDir, "prometheus", "riskmon.rules.yml"), p)
	i := bytes.Index(src, []byte("\ngroups:"))
	if i < 0 {
		p.add("riskmon.rules.yml has no top-level groups:")
		return
	}
	var b bytes.Buffer
	b.WriteString("# Generated from deploy/prometheus/riskmon.rules.yml by `go run . sync-prometheusrule`\n")
	b.WriteString("# in deploy/validate: edit that file, not this one. deploy/check fails when they differ.\n")
	b.WriteString("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: riskmon\nspec:\n")
	for _, line := range strings.Split(strings.TrimRight(string(src[i+1:]), "\n"), "\n") {
		if line == "" {
			b.WriteString("\n")
		} else {
			b.WriteString("  " + line + "\n")
		}
	}
	out := filepath.Join(deployDir, "kubernetes", "base", "prometheusrule.yaml")
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		p.add("%v", err)
	}
	fmt.Println("wrote", out)
}

// rulesGroups decodes the groups of a rules file, for comparison.
func rulesGroups(p *problems) any {
	var v struct {
		Groups any `json:"groups"`
	}
	if err := yaml.Unmarshal(readFile(filepath.Join(deployDir, "prometheus", "riskmon.rules.yml"), p), &v); err != nil {
		p.add("riskmon.rules.yml: %v", err)
	}
	return v.Groups
}

// dashboardFile is the committed dashboard.
func dashboardFile() string { return filepath.Join(deployDir, "grafana", "riskmon.json") }

type dashboard struct {
	Panels []struct {
		ID          int                      `json:"id"`
		Type        string                   `json:"type"`
		Title       string                   `json:"title"`
		Description string                   `json:"description"`
		GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
		Datasource  any                      `json:"datasource"`
		Targets     []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

// checkDashboard compares the committed dashboard with the one the code
// generates (or writes it), and checks its layout and metric names.
func checkDashboard(write bool, p *problems) {
	gen, err := dashboardJSON()
	if err != nil {
		p.add("%v", err)
		return
	}
	if write {
		os.MkdirAll(filepath.Dir(dashboardFile()), 0o755)
		if err := os.WriteFile(dashboardFile(), gen, 0o644); err != nil {
			p.add("%v", err)
		}
		fmt.Println("wrote", dashboardFile())
		return
	}
	committed := readFile(dashboardFile(), p)
	if !bytes.Equal(committed, gen) {
		p.add("%s differs from what deploy/validate/dashboard.go generates: edit the code and run `go run . dashboard -write`", dashboardFile())
	}
	var d dashboard
	if err := json.Unmarshal(committed, &d); err != nil {
		p.add("%s: %v", dashboardFile(), err)
		return
	}
	known := knownMetrics(p)
	ids := map[int]bool{}
	cells := map[[2]int]int{}
	n := 0
	for _, pn := range d.Panels {
		where := fmt.Sprintf("panel %d %q", pn.ID, pn.Title)
		if ids[pn.ID] {
			p.add("%s: id used twice", where)
		}
		ids[pn.ID] = true
		g := pn.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			p.add("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					p.add("%s overlaps panel %d", where, other)
					x, y = g.X+g.W, g.Y+g.H
				}
				cells[[2]int{x, y}] = pn.ID
			}
		}
		if pn.Type == "row" {
			continue
		}
		n++
		if pn.Datasource == nil || pn.Description == "" || len(pn.Targets) == 0 {
			p.add("%s: needs a datasource, a description and a query", where)
		}
		for _, t := range pn.Targets {
			checkMetricNames(where, t.Expr, known, p)
		}
	}
	fmt.Printf("dashboard: %s: %d panels, layout and metric names checked\n", dashboardFile(), n)
}

// panelVars are the dashboard variables and the values used to parse its
// expressions.
var panelVars = map[string]string{"$__rate_interval": "1m", "$window": "7d", "$job": "riskmon", "$instance": ".*"}

// expandPanelExpr substitutes the dashboard's variables.
func expandPanelExpr(expr string) (string, error) {
	keys := sortedKeys(panelVars)
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		expr = strings.ReplaceAll(expr, k, panelVars[k])
	}
	if i := strings.Index(expr, "$"); i >= 0 {
		return "", fmt.Errorf("unknown variable at %q", expr[i:])
	}
	return expr, nil
}

type panelQuery struct {
	Name, Title, Expr string
}

// panelQueries lists every query of the committed dashboard, variables
// expanded, each named dashboard:panel_<id>_<refId>.
func panelQueries(p *problems) []panelQuery {
	var d dashboard
	if err := json.Unmarshal(readFile(dashboardFile(), p), &d); err != nil {
		p.add("%s: %v", dashboardFile(), err)
		return nil
	}
	var qs []panelQuery
	for _, pn := range d.Panels {
		for _, t := range pn.Targets {
			e, err := expandPanelExpr(t.Expr)
			if err != nil {
				p.add("panel %d %q: %v", pn.ID, pn.Title, err)
				continue
			}
			qs = append(qs, panelQuery{fmt.Sprintf("dashboard:panel_%d_%s", pn.ID, t.RefID), pn.Title, e})
		}
	}
	for i, a := range d.Annotations.List {
		e, err := expandPanelExpr(a.Expr)
		if err != nil {
			p.add("annotation %q: %v", a.Name, err)
			continue
		}
		qs = append(qs, panelQuery{fmt.Sprintf("dashboard:annotation_%d", i), a.Name, e})
	}
	return qs
}

// panelRules wraps every dashboard query into a recording rule, so that
// `promtool check rules` parses each of them.
func panelRules(p *problems) []byte {
	var b bytes.Buffer
	b.WriteString("# Every query of deploy/grafana/riskmon.json as a recording rule, for promtool check rules.\ngroups:\n  - name: dashboard-panels\n    rules:\n")
	for _, q := range panelQueries(p) {
		e, _ := json.Marshal(q.Expr)
		fmt.Fprintf(&b, "      # %s\n      - record: %s\n        expr: %s\n", q.Title, q.Name, e)
	}
	return b.Bytes()
}
