package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// genStream writes a small generated stream for the command tests.
func genStream(t *testing.T, dir string, n int) (decls, outcomes, truth string) {
	t.Helper()
	decls, outcomes, truth = filepath.Join(dir, "d.jsonl"), filepath.Join(dir, "o.jsonl"), filepath.Join(dir, "t.jsonl")
	if code, _, e := capture(t, "gen", "--count", strconv.Itoa(n), "--seed", "4", "--output", decls, "--outcomes", outcomes, "--truth", truth); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	return
}

// noUVConfig writes the built-in configuration with unit_value switched off.
func noUVConfig(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("../../config/default.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "no-uv.yml")
	os.WriteFile(p, []byte(strings.Replace(string(b), "  - name: unit_value\n", "  - name: unit_value\n    enabled: false\n", 1)), 0o644)
	return p
}

// compare end to end: exit 0, the summary on stdout, every changed
// declaration in --changed, the report written; nothing but invalid lines
// on stderr.
func TestCompareCommand(t *testing.T) {
	dir := t.TempDir()
	d, o, tr := genStream(t, dir, 4000)
	cand := noUVConfig(t, dir)
	changed, report := filepath.Join(dir, "changed.jsonl"), filepath.Join(dir, "r.html")
	code, out, e := capture(t, "compare", "--input", d, "--outcomes", o, "--truth", tr, "--candidate", cand, "--changed", changed, "--report", report, "--top", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if e != "" {
		t.Errorf("stderr: %q", e)
	}
	for _, want := range []string{"compare: 4000 declarations read, 4000 assessed, 0 invalid", "base       default@", "candidate  default@",
		"channel transitions", "evaluation on declarations 2001-4000", "firing over all declarations", "(4 of ", "wrote the report to " + report} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`changed channel: (\d+) declarations`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no changed count:\n%s", out)
	}
	f, err := os.Open(changed)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var x struct {
			ID              string
			Base, Candidate struct{ Channel string }
			ScoreChange     float64 `json:"score_change"`
			Added, Removed  []struct{ Detector string }
		}
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if x.ID == "" || x.Base.Channel == x.Candidate.Channel {
			t.Errorf("line %d: %s", n+1, sc.Text())
		}
		n++
	}
	if strconv.Itoa(n) != m[1] || n == 0 {
		t.Errorf("%d lines in --changed, summary says %s", n, m[1])
	}
	// The result does not depend on the number of workers (the first line
	// says how long it took).
	body := func(s string) string {
		s, _, _ = strings.Cut(s, "\nwrote ") // the files written, named
		_, s, _ = strings.Cut(s, "\n")
		return strings.TrimSpace(s)
	}
	if code, one, e := capture(t, "compare", "--input", d, "--outcomes", o, "--truth", tr, "--candidate", cand, "--top", "4", "--workers", "1"); code != 0 || body(one) != body(out) || len(body(out)) < 1000 {
		t.Errorf("--workers 1: exit %d, stderr %q, stdout differs from the default's:\n%s", code, e, one)
	}
	page, _ := os.ReadFile(report)
	if !strings.Contains(string(page), "<h2>Channel transitions</h2>") {
		t.Error("no transition matrix in the report")
	}
	// replay --report writes its report too.
	rr := filepath.Join(dir, "replay.html")
	if code, _, e := capture(t, "replay", "--input", d, "--outcomes", o, "--output", filepath.Join(dir, "a.jsonl"), "--report", rr); code != 0 || !strings.Contains(e, "wrote the report to "+rr) {
		t.Fatalf("replay --report: exit %d: %s", code, e)
	}
	if page, _ := os.ReadFile(rr); !strings.Contains(string(page), "<h2>Outcome monitoring</h2>") {
		t.Error("replay report without the outcome-monitoring table")
	}
}

// A bad configuration, base or candidate, is refused with validate's
// messages, and the usual user errors are one line.
func TestCompareRefuses(t *testing.T) {
	dir := t.TempDir()
	d, _, _ := genStream(t, dir, 50)
	bad := "../../config/testdata/ranges.bad.yml"
	_, _, want := capture(t, "validate", "--config", bad)
	want = strings.TrimPrefix(want, "riskmon validate: ")
	for _, args := range [][]string{{"--candidate", bad}, {"--base", bad, "--candidate", "../../config/default.yml"}} {
		code, _, e := capture(t, append([]string{"compare", "--input", d}, args...)...)
		if code != 1 || strings.TrimPrefix(e, "riskmon compare: ") != want {
			t.Errorf("%v: exit %d, stderr\n%s\nwant\n%s", args, code, e, want)
		}
	}
	f := func(want string, args ...string) {
		t.Helper()
		code, _, e := capture(t, append([]string{"compare"}, args...)...)
		if code != 1 || !strings.Contains(e, want) || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q", args, code, e, want)
		}
	}
	f("--input is required", "--candidate", "x.yml")
	f("--candidate is required", "--input", d)
	f("no such file or directory", "--input", filepath.Join(dir, "none"), "--candidate", "../../config/default.yml")
	f("--closed-loop needs --truth", "--input", d, "--candidate", "../../config/default.yml", "--closed-loop")
	f("--red-rate", "--input", d, "--candidate", "../../config/default.yml", "--red-rate", "2")
	if code, _, _ := capture(t, "compare", "--help"); code != 0 {
		t.Errorf("--help exits %d", code)
	}
}
