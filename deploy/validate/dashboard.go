package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The Grafana dashboard is written here, in code, and committed as JSON
// (deploy/grafana/riskmon.json): `go run . dashboard -write` regenerates it,
// and `go run . dashboard` fails when the committed file is stale.

// sel is the selector every panel applies: the scrape job and the instances
// chosen in the dashboard's variables.
const sel = `job=~"$job", instance=~"$instance"`

type target struct {
	Expr, Legend string
	Instant      bool
}

type panel struct {
	Title, Description, Type, Unit string
	W, H                           int
	Targets                        []target
	Min, Max                       *float64
	Stack                          bool
}

type row struct {
	Title  string
	Panels []panel
}

func q(expr, legend string) target { return target{Expr: expr, Legend: legend} }

func f(v float64) *float64 { return &v }

// hitRate is hits over inspections of a counter with a result label, by the
// given labels, over the window chosen in the dashboard.
func hitRate(metric, by, extra string) string {
	m := fmt.Sprintf(`%s{%s%s}`, metric, sel, extra)
	hit := strings.Replace(m, "}", `, result="hit"}`, 1)
	// "or ... * 0": inspections without a single hit are a 0 % hit rate, not
	// a missing one (the hit series does not exist before the first hit).
	return fmt.Sprintf(`(sum by (%s) (increase(%s[$window])) or 0 * sum by (%s) (increase(%s[$window]))) / sum by (%s) (increase(%s[$window]))`,
		by, hit, by, m, by, m)
}

func dashboardRows() []row {
	rate := func(metric, extra string) string {
		return fmt.Sprintf(`rate(%s{%s%s}[$__rate_interval])`, metric, sel, extra)
	}
	quantile := func(p, metric string) string {
		return fmt.Sprintf(`histogram_quantile(%s, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))`, p, metric, sel)
	}
	return []row{
		{"Flow", []panel{
			{Title: "Throughput", Type: "timeseries", Unit: "ops", W: 8, H: 8,
				Description: "Declarations and outcomes consumed, assessments and dead letters produced, per second.",
				Targets: []target{
					q(`sum(`+rate("riskmon_declarations_consumed_total", "")+`)`, "declarations consumed"),
					q(`sum(`+rate("riskmon_assessments_total", "")+`)`, "assessments produced"),
					q(`sum(`+rate("riskmon_outcomes_consumed_total", "")+`)`, "outcomes consumed"),
					q(`sum(`+rate("riskmon_dead_letters_total", "")+`) or vector(0)`, "dead letters"),
				}},
			{Title: "Consumer lag by partition", Type: "timeseries", Unit: "short", W: 8, H: 8,
				Description: "Messages of each partition the consumer group has not committed (its end offset minus the group's committed offset), measured every 5 s by every instance, so a partition nobody reads shows too (RiskmonPartitionStalled).",
				Targets:     []target{q(`max by (topic, partition) (riskmon_group_lag_messages{`+sel+`})`, "{{topic}}/{{partition}}")}},
			{Title: "Lodged to assessed", Type: "timeseries", Unit: "s", W: 8, H: 8,
				Description: "Time from a declaration's lodged_at to its assessment: the delay a trader sees, including the clearance system's. Target: p99 under 2 s (RiskmonAssessmentLatencyHigh).",
				Targets: []target{
					q(quantile("0.5", "riskmon_lodged_to_assessed_seconds"), "p50"),
					q(quantile("0.99", "riskmon_lodged_to_assessed_seconds"), "p99"),
				}},
			{Title: "Processing time", Type: "timeseries", Unit: "s", W: 8, H: 8,
				Description: "From fetching a declaration to the broker's acknowledgement of its assessment: riskmon's own share of the delay.",
				Targets: []target{
					q(quantile("0.5", "riskmon_processing_seconds"), "p50"),
					q(quantile("0.99", "riskmon_processing_seconds"), "p99"),
				}},
			{Title: "Detector time p99", Type: "timeseries", Unit: "s", W: 8, H: 8,
				Description: "Score and learn time per detector and declaration (sampled 1 in 16).",
				Targets:     []target{q(`histogram_quantile(0.99, sum by (detector, le) (`+rate("riskmon_detector_seconds_bucket", "")+`))`, "{{detector}}")}},
			{Title: "Instances ready", Type: "timeseries", Unit: "short", W: 8, H: 8, Min: f(0),
				Description: "riskmon_ready per instance (1: consuming and producing) and Prometheus' own view of the scrape.",
				Targets: []target{
					q(`riskmon_ready{`+sel+`}`, "ready {{instance}}"),
					q(`up{`+sel+`}`, "up {{instance}}"),
				}},
		}},
		{"Selection", []panel{
			{Title: "Channel shares against targets", Type: "timeseries", Unit: "percentunit", W: 12, H: 8, Min: f(0),
				Description: "Share of assessments per channel over the rate window, the share riskmon reports over its own recent window, and the configured target (absent with fixed thresholds).",
				Targets: []target{
					q(`sum by (channel) (`+rate("riskmon_assessments_total", "")+`) / ignoring (channel) group_left sum(`+rate("riskmon_assessments_total", "")+`)`, "{{channel}}"),
					q(`avg by (channel) (riskmon_channel_share{`+sel+`})`, "{{channel}} realised (riskmon)"),
					q(`avg by (channel) (riskmon_channel_target_share{`+sel+`})`, "{{channel}} target"),
				}},
			{Title: "Channel score thresholds", Type: "timeseries", Unit: "short", W: 12, H: 8, Min: f(0), Max: f(100),
				Description: "The score from which a declaration goes yellow or red; with inspection-rate targets it moves to hold the shares.",
				Targets:     []target{q(`avg by (channel) (riskmon_channel_threshold{`+sel+`})`, "{{channel}}")}},
			{Title: "Red and yellow by what selected them", Type: "timeseries", Unit: "ops", W: 12, H: 8, Stack: true,
				Description: "Declarations sent to red or yellow per second, by selected_by: the score, a profile forcing the channel, or the random compliance sample.",
				Targets:     []target{q(`sum by (channel, selected_by) (`+rate("riskmon_assessments_total", `, channel!="green"`)+`)`, "{{channel}} by {{selected_by}}")}},
			{Title: "Findings by detector", Type: "timeseries", Unit: "ops", W: 12, H: 8,
				Description: "Findings per second in produced assessments, by detector.",
				Targets:     []target{q(`sum by (detector) (`+rate("riskmon_findings_total", "")+`)`, "{{detector}}")}},
		}},
		{"Outcomes", []panel{
			{Title: "Hit rate by channel and selection, with the random baseline", Type: "timeseries", Unit: "percentunit", W: 12, H: 9, Min: f(0),
				Description: "Inspections that found an irregularity, over the window chosen above. The random compliance sample is unbiased: its hit rate is the flow's non-compliance, the baseline every targeted selection must beat.",
				Targets: []target{
					q(hitRate("riskmon_inspections_total", "channel, selected_by", ""), "{{channel}} by {{selected_by}}"),
					q(hitRate("riskmon_inspections_total", "job", `, selected_by="random"`), "random baseline"),
				}},
			{Title: "Revenue found by channel and selection", Type: "timeseries", Unit: "short", W: 12, H: 9, Stack: true,
				Description: "Revenue recovered by inspections over the window chosen above.",
				Targets:     []target{q(`sum by (channel, selected_by) (increase(riskmon_inspection_revenue_total{`+sel+`}[$window]))`, "{{channel}} by {{selected_by}}")}},
			{Title: "Hit rate by profile", Type: "bargauge", Unit: "percentunit", W: 8, H: 9, Min: f(0), Max: f(1),
				Description: "For each analysts' risk profile, the share of its inspections that hit, over the window chosen above. A profile far below the random baseline wastes inspections.",
				Targets:     []target{{Expr: hitRate("riskmon_profile_inspections_total", "profile", ""), Legend: "{{profile}}", Instant: true}}},
			{Title: "Hit rate by detector", Type: "bargauge", Unit: "percentunit", W: 8, H: 9, Min: f(0), Max: f(1),
				Description: "For each detector, the share of inspected declarations it flagged that hit, over the window chosen above.",
				Targets:     []target{{Expr: hitRate("riskmon_detector_inspections_total", "detector", ""), Legend: "{{detector}}", Instant: true}}},
			{Title: "Outcomes matched and unmatched", Type: "timeseries", Unit: "ops", W: 8, H: 9,
				Description: "Outcomes per second, and those that matched no declaration assessed here (only their importer learns).",
				Targets: []target{
					q(`sum(`+rate("riskmon_outcomes_consumed_total", "")+`)`, "consumed"),
					q(`sum(`+rate("riskmon_outcomes_unmatched_total", "")+`)`, "unmatched"),
					q(`sum(`+rate("riskmon_model_labels_total", "")+`)`, "matched to features (training rows)"),
				}},
		}},
		{"Errors", []panel{
			{Title: "Dead letters by reason", Type: "timeseries", Unit: "ops", W: 12, H: 8, Stack: true,
				Description: "Invalid messages sent to the dead-letter topic, by source topic and field path.",
				Targets:     []target{q(`sum by (source, reason) (`+rate("riskmon_dead_letters_total", "")+`)`, "{{source}}: {{reason}}")}},
			{Title: "Produce and commit errors", Type: "timeseries", Unit: "ops", W: 12, H: 8,
				Description: "Failed produce attempts (retried until acknowledged) and failed offset commits (retried next round).",
				Targets: []target{
					q(`sum by (instance) (`+rate("riskmon_produce_errors_total", "")+`)`, "produce {{instance}}"),
					q(`sum by (instance) (`+rate("riskmon_commit_errors_total", "")+`)`, "commit {{instance}}"),
				}},
		}},
		{"State, configuration and model", []panel{
			{Title: "State store", Type: "timeseries", Unit: "bytes", W: 8, H: 8,
				Description: "Bytes of the per-entity records (capped by state.capacity_mb), of the records of declarations awaiting their outcomes (capped by state.pending_mb), and the process' resident memory.",
				Targets: []target{
					q(`riskmon_state_bytes{`+sel+`}`, "entities {{instance}}"),
					q(`riskmon_pending_bytes{`+sel+`}`, "declarations {{instance}}"),
					q(`process_resident_memory_bytes{`+sel+`}`, "resident {{instance}}"),
				}},
			{Title: "Shared statistics and evictions", Type: "timeseries", Unit: "short", W: 8, H: 8,
				Description: "Shared statistics held (capped by state.shared_entries), per-entity records held, and both evicted per second.",
				Targets: []target{
					q(`riskmon_shared_statistics_entries{`+sel+`}`, "shared {{instance}}"),
					q(`riskmon_state_entries{`+sel+`}`, "entity records {{instance}}"),
					q(rate("riskmon_shared_statistics_evictions_total", ""), "shared evicted/s {{instance}}"),
					q(rate("riskmon_state_evictions_total", ""), "entities evicted/s {{instance}}"),
				}},
			{Title: "State handover (changelog)", Type: "timeseries", Unit: "short", W: 8, H: 8, Min: f(0),
				Description: "State records produced to the changelog and pending topics per second (what a new owner of a partition restores), and records restored from them when this instance was given a partition (after a rebalance, a failover or a restart; a restart from a checkpoint reads only what was written after it).",
				Targets: []target{
					q(rate("riskmon_changelog_records_total", ""), "produced/s {{instance}}"),
					q(`sum by (instance) (increase(riskmon_changelog_restored_records_total{`+sel+`}[$__rate_interval]))`, "restored {{instance}}"),
				}},
			{Title: "Configuration reloads", Type: "timeseries", Unit: "short", W: 8, H: 8, Min: f(0),
				Description: "SIGHUP reloads by result in the rate window, and whether the last one succeeded (0: refused, the old ruleset runs).",
				Targets: []target{
					q(`sum by (result) (increase(riskmon_config_reloads_total{`+sel+`}[$__rate_interval]))`, "{{result}}"),
					q(`min(riskmon_config_last_reload_successful{`+sel+`})`, "last reload successful"),
				}},
			{Title: "Ruleset and model", Type: "table", W: 12, H: 8,
				Description: "The active ruleset of each instance (all should agree) and its current risk model: whether it scores (active) and where it came from.",
				Targets: []target{
					{Expr: `riskmon_ruleset_info{` + sel + `} == 1`, Legend: "{{instance}} {{ruleset}}", Instant: true},
					{Expr: `riskmon_model_info{` + sel + `} == 1`, Legend: "{{instance}} {{model}}", Instant: true},
				}},
			{Title: "Model quality", Type: "timeseries", Unit: "short", W: 12, H: 8,
				Description: "Validation ROC AUC of the model and of the rule score alone on the most recent held-out labels, the model's weight in the blend, and trainings by result (inactive: no better than the rule score).",
				Targets: []target{
					q(`avg by (scorer) (riskmon_model_validation_auc{`+sel+`})`, "AUC {{scorer}}"),
					q(`avg(riskmon_model_blend_weight{`+sel+`})`, "blend weight"),
					q(`sum by (result) (increase(riskmon_model_trainings_total{`+sel+`}[$__rate_interval]))`, "trainings {{result}}"),
				}},
		}},
	}
}

// dashboardJSON builds the Grafana dashboard (schema 39, Grafana 10 and 11).
func dashboardJSON() ([]byte, error) {
	ds := map[string]any{"type": "prometheus", "uid": "${datasource}"}
	var panels []any
	id, y := 1, 0
	for _, r := range dashboardRows() {
		panels = append(panels, map[string]any{"type": "row", "id": id, "title": r.Title, "collapsed": false,
			"gridPos": map[string]int{"x": 0, "y": y, "w": 24, "h": 1}, "panels": []any{}})
		id++
		y++
		x, rowH := 0, 0
		for _, p := range r.Panels {
			if x+p.W > 24 {
				x, y, rowH = 0, y+rowH, 0
			}
			var targets []any
			for i, t := range p.Targets {
				tm := map[string]any{"refId": string(rune('A' + i)), "expr": t.Expr, "legendFormat": t.Legend, "datasource": ds}
				if t.Instant {
					tm["instant"], tm["range"] = true, false
					if p.Type == "table" {
						tm["format"] = "table"
					}
				} else {
					tm["range"] = true
				}
				targets = append(targets, tm)
			}
			defaults := map[string]any{}
			if p.Unit != "" {
				defaults["unit"] = p.Unit
			}
			if p.Min != nil {
				defaults["min"] = *p.Min
			}
			if p.Max != nil {
				defaults["max"] = *p.Max
			}
			if p.Type == "timeseries" {
				custom := map[string]any{"lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false}
				if p.Stack {
					custom["stacking"] = map[string]any{"mode": "normal", "group": "A"}
					custom["fillOpacity"] = 60
				}
				defaults["custom"] = custom
			}
			pm := map[string]any{"type": p.Type, "id": id, "title": p.Title, "description": p.Description, "datasource": ds,
				"gridPos": map[string]int{"x": x, "y": y, "w": p.W, "h": p.H}, "targets": targets,
				"fieldConfig": map[string]any{"defaults": defaults, "overrides": []any{}}}
			switch p.Type {
			case "timeseries":
				pm["options"] = map[string]any{"legend": map[string]any{"displayMode": "table", "placement": "bottom", "calcs": []string{"lastNotNull", "max"}},
					"tooltip": map[string]any{"mode": "multi", "sort": "desc"}}
			case "bargauge":
				pm["options"] = map[string]any{"orientation": "horizontal", "displayMode": "gradient",
					"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false}}
			case "table":
				pm["transformations"] = []any{map[string]any{"id": "merge", "options": map[string]any{}},
					map[string]any{"id": "organize", "options": map[string]any{"excludeByName": map[string]bool{"Time": true, "Value": true, "__name__": true}}}}
			}
			panels = append(panels, pm)
			id++
			x += p.W
			rowH = max(rowH, p.H)
		}
		y += rowH
	}
	variable := func(name, label, query string, multi bool) map[string]any {
		return map[string]any{"name": name, "label": label, "type": "query", "datasource": ds,
			"query": map[string]any{"query": query, "refId": name}, "definition": query, "refresh": 2,
			"includeAll": multi, "multi": multi, "allValue": ".*", "sort": 1,
			"current": map[string]any{"text": "All", "value": "$__all"}}
	}
	window := map[string]any{"name": "window", "label": "outcome window", "type": "custom",
		"description": "Window of the outcome panels: outcomes arrive days after their declaration, so hit rates need days.",
		"query":       "1d,7d,28d", "current": map[string]any{"text": "7d", "value": "7d"},
		"options": []any{
			map[string]any{"text": "1d", "value": "1d", "selected": false},
			map[string]any{"text": "7d", "value": "7d", "selected": true},
			map[string]any{"text": "28d", "value": "28d", "selected": false},
		}}
	job := variable("job", "job", `label_values(riskmon_ruleset_info, job)`, false)
	job["current"] = map[string]any{"text": "riskmon", "value": "riskmon"}
	d := map[string]any{
		"uid": "riskmon-overview", "title": "riskmon", "tags": []string{"riskmon", "customs", "kafka"},
		"description":   "riskmon: flow, latency, channel selection, inspection outcomes, errors, state and model. Generated by deploy/validate (go run . dashboard -write).",
		"schemaVersion": 39, "version": 1, "editable": true, "graphTooltip": 1, "refresh": "30s",
		"time":       map[string]string{"from": "now-6h", "to": "now"},
		"timepicker": map[string]any{},
		"annotations": map[string]any{"list": []any{map[string]any{
			"name": "Configuration reloads", "enable": true, "iconColor": "orange", "datasource": ds,
			"expr": `changes(riskmon_config_reloads_total{` + sel + `}[2m]) > 0`, "titleFormat": "reload {{result}} on {{instance}}", "step": "1m",
		}}},
		"links": []any{map[string]any{"title": "Runbook", "type": "link", "targetBlank": true,
			"url": "https://github.com/riskmon/riskmon/blob/main/deploy/RUNBOOK.md"}},
		"templating": map[string]any{"list": []any{
			map[string]any{"name": "datasource", "label": "data source", "type": "datasource", "query": "prometheus",
				"current": map[string]any{}, "hide": 0, "refresh": 1},
			job,
			variable("instance", "instance", `label_values(riskmon_ruleset_info{job=~"$job"}, instance)`, true),
			window,
		}},
		"panels": panels,
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
