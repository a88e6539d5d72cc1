package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// capture runs a command line with stdout and stderr redirected to files.
func capture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	so, _ := os.Create(filepath.Join(dir, "out"))
	se, _ := os.Create(filepath.Join(dir, "err"))
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = so, se
	code = run(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	so.Close()
	se.Close()
	o, _ := os.ReadFile(so.Name())
	e, _ := os.ReadFile(se.Name())
	return code, string(o), string(e)
}

// validate exits 1 on every bad config in config/testdata with every problem
// naming its line and key, and 0 on every good one.
func TestValidateTestdata(t *testing.T) {
	files, _ := filepath.Glob("../../config/testdata/*.yml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		code, out, errOut := capture(t, "validate", "--config", f)
		if strings.HasSuffix(f, ".good.yml") {
			if code != 0 || !strings.Contains(out, ": ok, ruleset ") {
				t.Errorf("%s: exit %d, %q %q", f, code, out, errOut)
			}
			continue
		}
		b, _ := os.ReadFile(f)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", f, code)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if want, ok := strings.CutPrefix(l, "# want: "); ok && !strings.Contains(errOut, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", f, want, errOut)
			}
		}
		if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
			t.Errorf("%s: stack trace on a user error", f)
		}
	}
}

// A file that leaves detectors out has none (not the built-in eight):
// validate says so, and is silent when detectors are enabled.
func TestValidateWarnsWithoutDetectors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(f, []byte("name: brokers-only\nstream:\n  brokers: [\"k1:9092\"]\n"), 0o644)
	if code, out, _ := capture(t, "validate", "--config", f); code != 0 || !strings.Contains(out, "warning: no detector is enabled") {
		t.Errorf("exit %d, %q", code, out)
	}
	if _, out, _ := capture(t, "validate"); strings.Contains(out, "warning") {
		t.Errorf("the built-in configuration warned: %q", out)
	}
}

func TestUserErrors(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		code, _, errOut := capture(t, args...)
		if code != 1 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line containing %q", args, code, errOut, want)
		}
	}
	f(`unknown command "frobnicate"`, "frobnicate")
	f("--input is required", "replay")
	f("no such file or directory", "replay", "--input", "/nonexistent/file.jsonl")
	f("--count must be >= 1", "gen")
	f("flag provided but not defined: -bogus", "gen", "--bogus")
	f("--eval-warmup must be in [0, 1)", "replay", "--input", "x", "--eval-warmup", "1")
	f(`--eval-from: "2025-02-30" is neither a date (2006-01-02) nor a time (RFC 3339`, "replay", "--input", "x", "--eval-from", "2025-02-30")
	f("--eval-warmup and --eval-from both say where the evaluation starts", "compare", "--input", "x", "--candidate", "c.yml", "--eval-from", "2025-03-01", "--eval-warmup", "0.2")
	f("--eval-from 2025-03-01 is not before --eval-to 2025-03-01T00:00:00Z", "replay", "--input", "x", "--eval-from", "2025-03-01", "--eval-to", "2025-03-01T00:00:00Z")
	f("--output is required (train needs --input, --outcomes and --output)", "train", "--input", "x", "--outcomes", "y")
	if code, out, _ := capture(t, "replay", "--help"); code != 0 || !strings.Contains(out, "usage: riskmon replay") {
		t.Errorf("--help exits %d, stdout %q", code, out)
	}
	// A bad flag is one line on stderr; the usage is for --help only, and
	// never lands in what a redirected stdout holds.
	if _, out, _ := capture(t, "replay", "--input", "x", "--bogus"); out != "" {
		t.Errorf("a bad flag writes %q on stdout", out)
	}
}

// train refuses to write a model from fewer labels than model.min_labels,
// and leaves no file behind.
func TestTrainTooFewLabels(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if code, _, e := capture(t, "gen", "--count", "2000", "--output", p("d.jsonl"), "--outcomes", p("o.jsonl")); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	code, _, e := capture(t, "train", "--input", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--output", p("m.model"))
	if code != 1 || !strings.Contains(e, "fewer than model.min_labels (500): too few to train on") {
		t.Errorf("exit %d, stderr %q", code, e)
	}
	if left, _ := os.ReadDir(dir); len(left) != 2 {
		t.Errorf("train left files: %v", left)
	}
}

// A file named as an input and an output, or as two outputs, is refused
// before anything is written: the input is still whole.
func TestSameFileRefused(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if code, _, e := capture(t, "gen", "--count", "50", "--output", p("d.jsonl")); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	before, _ := os.ReadFile(p("d.jsonl"))
	if err := os.Symlink(dir, p("lnk")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"replay", "--input", p("d.jsonl"), "--output", filepath.Join(dir, ".", "d.jsonl")},
		{"replay", "--input", p("d.jsonl"), "--output", p("a.jsonl"), "--dead-letters", p("d.jsonl")},
		{"compare", "--input", p("d.jsonl"), "--candidate", p("d.jsonl"), "--changed", p("d.jsonl")},
		{"train", "--input", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--output", p("d.jsonl")},
		{"gen", "--count", "5", "--output", p("g.jsonl"), "--truth", p("g.jsonl")},
		// Not yet there, through a link to its directory.
		{"gen", "--count", "5", "--output", p("g.jsonl"), "--truth", filepath.Join(dir, "lnk", "g.jsonl")},
	} {
		code, _, e := capture(t, args...)
		if code != 1 || !strings.Contains(e, "name the same file") {
			t.Errorf("%v: exit %d, stderr %q", args, code, e)
		}
	}
	// A device is not a file that writing empties: two outputs may go there.
	if code, _, e := capture(t, "replay", "--input", p("d.jsonl"), "--output", os.DevNull, "--dead-letters", os.DevNull); code != 0 {
		t.Errorf("two outputs to %s: exit %d, %s", os.DevNull, code, e)
	}
	if after, _ := os.ReadFile(p("d.jsonl")); !bytes.Equal(before, after) {
		t.Errorf("the input changed: %d bytes, was %d", len(after), len(before))
	}
	if _, err := os.Stat(p("g.jsonl")); err == nil {
		t.Errorf("gen wrote g.jsonl although refused")
	}
}

// gen then replay with outcomes and truth, end to end through the command
// line: files are written, every declaration is assessed, the summary and the
// evaluation table are printed.
func TestGenReplay(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if code, _, e := capture(t, "gen", "--count", "4000", "--seed", "3", "--output", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--truth", p("t.jsonl")); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	code, _, e := capture(t, "replay", "--input", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--truth", p("t.jsonl"), "--output", p("a.jsonl"))
	if code != 0 {
		t.Fatalf("replay: %s", e)
	}
	for _, want := range []string{"replay: 4000 declarations read, 4000 assessed, 0 invalid", "channels: green", "outcomes: ", "findings by detector: unit_value", "evaluation on declarations 2001-4000", "\n5%"} {
		if !strings.Contains(e, want) {
			t.Errorf("summary lacks %q:\n%s", want, e)
		}
	}
	a, _ := os.ReadFile(p("a.jsonl"))
	if n := bytes.Count(a, []byte("\n")); n != 4000 {
		t.Errorf("%d assessments", n)
	}
	// A period: the declarations lodged from the day of the 3,000th.
	var lodged []time.Time
	for _, l := range bytes.Split(bytes.TrimSpace(a), []byte("\n")) {
		var x struct {
			LodgedAt time.Time `json:"lodged_at"`
		}
		if err := json.Unmarshal(l, &x); err != nil {
			t.Fatal(err)
		}
		lodged = append(lodged, x.LodgedAt)
	}
	from := lodged[2999].UTC().Truncate(24 * time.Hour)
	inPeriod := 0
	for _, l := range lodged {
		if !l.Before(from) {
			inPeriod++
		}
	}
	day := from.Format(time.DateOnly)
	code, _, e = capture(t, "replay", "--input", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--truth", p("t.jsonl"), "--output", p("a.jsonl"), "--eval-from", day)
	want := fmt.Sprintf("evaluation on declarations lodged from %s UTC (%d; left out: %d before, 0 after)", day, inPeriod, 4000-inPeriod)
	if code != 0 || !strings.Contains(e, want) || inPeriod < 1000 || inPeriod == 4000 {
		t.Errorf("--eval-from %s: exit %d, want %q (%d of 4000 lodged from that day) in:\n%s", day, code, want, inPeriod, e)
	}
	// stdin input, stdout output
	in, _ := os.Open(p("d.jsonl"))
	old := os.Stdin
	os.Stdin = in
	code, out, _ := capture(t, "replay", "--input", "-")
	os.Stdin = old
	if code != 0 || strings.Count(out, "\n") != 4000 {
		t.Errorf("stdin replay: exit %d, %d lines", code, strings.Count(out, "\n"))
	}
	_ = io.Discard
}

// Stream settings: a flag wins over the environment, which wins over the
// file; bad values are refused with the key named.
func TestStreamSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.yml")
	os.WriteFile(cfgFile, []byte("name: t\nstream: {group: from-file, assessments_topic: file-assessments, workers: 2}\ndetectors: [{name: uv, kind: unit_value}]\n"), 0o644)
	cfg, err := loadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("RISKMON_GROUP", "from-env")
	t.Setenv("RISKMON_BROKERS", "a:1, b:2")
	fs := newFlags("run", "")
	sf := addStreamFlags(fs)
	if err := fs.Parse([]string{"--brokers", "c:3", "--workers", "4"}); err != nil {
		t.Fatal(err)
	}
	if err := sf.apply(cfg); err != nil {
		t.Fatal(err)
	}
	st := cfg.Stream
	if st.Group != "from-env" || st.AssessmentsTopic != "file-assessments" || st.Workers != 4 ||
		len(st.Brokers) != 1 || st.Brokers[0] != "c:3" || st.DeclarationsTopic != "declarations" {
		t.Errorf("settings: %+v", st)
	}
	fs = newFlags("run", "")
	sf = addStreamFlags(fs)
	fs.Parse([]string{"--workers", "-1"})
	if err := sf.apply(cfg); err == nil || !strings.Contains(err.Error(), "--workers (stream.workers): must be >= 0 (0: one per core), got -1") {
		t.Errorf("workers -1: %v", err)
	}
	// Stream settings do not change the ruleset id.
	a, _ := loadConfig(cfgFile)
	os.WriteFile(cfgFile, []byte("name: t\nstream: {group: other}\ndetectors: [{name: uv, kind: unit_value}]\n"), 0o644)
	b, _ := loadConfig(cfgFile)
	if a.Ruleset != b.Ruleset {
		t.Errorf("ruleset id changed with stream settings: %s vs %s", a.Ruleset, b.Ruleset)
	}
}

// An invalid configuration at start-up is refused with every problem listed.
func TestRunRefusesBadConfig(t *testing.T) {
	code, _, errOut := capture(t, "run", "--config", "../../config/testdata/ranges.bad.yml")
	if code != 1 || !strings.Contains(errOut, "5 problem(s)") || !strings.Contains(errOut, "line 8: scoring.red") || !strings.Contains(errOut, "line 17: detectors[0].params.min_peers") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
}
