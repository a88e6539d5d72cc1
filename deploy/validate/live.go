package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// promResult is the part of a Prometheus API answer the live check reads.
type promResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		} `json:"result"`
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Type      string `json:"type"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				State     string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"data"`
}

func promGet(base, path string, params url.Values) (promResult, error) {
	var r promResult
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, err
	}
	if r.Status != "success" {
		return r, fmt.Errorf("%s", r.Error)
	}
	return r, nil
}

// pendingMetric names the first riskmon metric an expression uses that the
// live riskmon does not export (not yet, or not in its configuration, like
// riskmon_channel_target_share with fixed thresholds), if any.
func pendingMetric(expr string, present map[string]bool) string {
	for _, m := range metricRe.FindAllStringSubmatch(expr, -1) {
		if name := m[2]; !present[name] { // as scraped: histograms as _bucket, _sum, _count
			return name
		}
	}
	return ""
}

type liveTarget struct {
	q       panelQuery
	series  int
	sample  string
	err     error
	pending string
}

// checkLive runs every dashboard query against a Prometheus that scrapes a
// running riskmon, until every panel whose metrics riskmon exports today has
// data or the wait is over, and reports each panel. It also reports the
// health of every alerting rule that Prometheus evaluates.
func checkLive(base string, wait time.Duration, absentOK map[string]bool, p *problems) {
	qs := panelQueries(p)
	began := time.Now()
	deadline := began.Add(wait)
	first := map[string]time.Duration{} // when each query first had data
	var results []liveTarget
	for {
		present := map[string]bool{}
		if r, err := promGet(base, "/api/v1/query", url.Values{"query": {`group by (__name__) ({__name__=~"riskmon_.+"})`}}); err == nil {
			for _, res := range r.Data.Result {
				present[res.Metric["__name__"]] = true
			}
		}
		results = results[:0]
		hasData, pendingOnly := map[string]bool{}, map[string]bool{}
		for _, q := range qs {
			lt := liveTarget{q: q, pending: pendingMetric(q.Expr, present)}
			r, err := promGet(base, "/api/v1/query", url.Values{"query": {q.Expr}})
			lt.err = err
			lt.series = len(r.Data.Result)
			if _, ok := first[q.Name]; !ok && lt.series > 0 {
				first[q.Name] = time.Since(began).Round(time.Second)
			}
			if lt.series > 0 {
				res := r.Data.Result[0]
				lt.sample = fmt.Sprintf("%v = %v", res.Metric, res.Value[1])
			}
			id := panelID(q.Name)
			hasData[id] = hasData[id] || (lt.series > 0 && err == nil)
			if _, seen := pendingOnly[id]; !seen {
				pendingOnly[id] = true
			}
			pendingOnly[id] = pendingOnly[id] && lt.pending != ""
			results = append(results, lt)
		}
		missing := 0
		for id := range hasData {
			if !hasData[id] && !pendingOnly[id] && !strings.Contains(id, "annotation") {
				missing++
			}
		}
		for _, lt := range results {
			if lt.pending != "" && !absentOK[lt.pending] {
				missing++ // not exported yet: the model trains after model.min_labels outcomes
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(3 * time.Second)
	}
	// Per panel: non-empty when any of its queries returned data.
	type panelState struct {
		title             string
		withData, queries int
		pending           []string
	}
	var order []string
	panels := map[string]*panelState{}
	for _, lt := range results {
		id := panelID(lt.q.Name)
		ps, ok := panels[id]
		if !ok {
			ps = &panelState{title: lt.q.Title}
			panels[id] = ps
			order = append(order, id)
		}
		ps.queries++
		status := fmt.Sprintf("%d series", lt.series)
		switch {
		case lt.err != nil:
			status = "error: " + lt.err.Error()
			p.add("%s (%s): %v", lt.q.Name, lt.q.Title, lt.err)
		case lt.series > 0:
			ps.withData++
			status += fmt.Sprintf(" after %s, e.g. %s", first[lt.q.Name], lt.sample)
		case lt.pending != "" && !absentOK[lt.pending]:
			p.add("%s (%s): riskmon never exported %s while the check waited", lt.q.Name, lt.q.Title, lt.pending)
			status += " (riskmon exports no " + lt.pending + ")"
		case lt.pending != "":
			ps.pending = append(ps.pending, lt.pending)
			status += " (riskmon exports no " + lt.pending + ")"
		default:
			status += " (no data)"
		}
		if len(status) > 160 {
			status = status[:160] + "…"
		}
		fmt.Printf("  %-34s %s\n", lt.q.Name, status)
	}
	fmt.Println()
	nonEmpty := 0
	for _, id := range order {
		ps := panels[id]
		state := "EMPTY"
		if ps.withData > 0 {
			state = "data"
			nonEmpty++
		}
		note := ""
		if len(ps.pending) > 0 {
			note = " (riskmon exports no " + strings.Join(dedupe(ps.pending), ", ") + ")"
		}
		if state == "EMPTY" && len(ps.pending) == 0 {
			if strings.Contains(id, "annotation") {
				note = " (annotation: shows only when a reload happens)"
			} else {
				p.add("panel %q has no data although riskmon exports its metrics", ps.title)
			}
		}
		fmt.Printf("  %-5s %d/%d queries  %s%s\n", state, ps.withData, ps.queries, ps.title, note)
	}
	fmt.Printf("live: %d of %d panels and annotations return data (queried for %s)\n", nonEmpty, len(order), time.Since(began).Round(time.Second))
	// The alerting rules, evaluated by Prometheus against live metrics.
	r, err := promGet(base, "/api/v1/rules", url.Values{})
	if err != nil {
		p.add("rules API: %v", err)
		return
	}
	n, firing := 0, []string{}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health == "err" {
				p.add("rule %s in group %s fails to evaluate: %s", rule.Name, g.Name, rule.LastError)
			}
			if rule.State == "firing" || rule.State == "pending" {
				firing = append(firing, rule.Name+" "+rule.State)
			}
		}
	}
	if n == 0 {
		p.add("Prometheus loaded no rules")
	}
	fmt.Printf("live: Prometheus evaluates %d rules without error; pending or firing: %v\n", n, firing)
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// panelID is the panel part of a query's name: dashboard:panel_<id>.
func panelID(name string) string {
	if strings.Contains(name, "annotation") {
		return name
	}
	return name[:strings.LastIndex(name, "_")]
}
