package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
)

func assessment(id string, ch declaration.Channel, by string, score float64, model string) *declaration.Assessment {
	now := time.Now()
	return &declaration.Assessment{DeclarationID: id, ImporterID: "IMP-" + id, LodgedAt: now.Add(-3 * time.Millisecond), AssessedAt: now,
		Score: score, Channel: ch, SelectedBy: by, Model: model,
		Findings: []declaration.Finding{{Detector: "unit_value", Reason: "reason of " + id, Points: score}}}
}

// The live summary counts score- and profile-selected reds apart from random
// compliance picks, counts model-scored assessments, and lists the latest
// picks of each kind under their own heading.
func TestLiveSummarySeparatesRandomReds(t *testing.T) {
	l := newLiveSummary()
	l.produced(9)
	l.add(assessment("S1", declaration.Red, "score", 80, ""), nil, time.Millisecond)
	l.add(assessment("S2", declaration.Red, "score", 75, "gbdt-1"), nil, time.Millisecond)
	l.add(assessment("P1", declaration.Red, "profile", 20, ""), nil, time.Millisecond)
	l.add(assessment("R1", declaration.Red, "random", 3, "gbdt-1"), nil, time.Millisecond)
	l.add(assessment("R2", declaration.Red, "random", 90, ""), nil, time.Millisecond)
	l.add(assessment("RY", declaration.Yellow, "random", 5, ""), nil, time.Millisecond)
	l.add(assessment("Y1", declaration.Yellow, "score", 40, ""), nil, time.Millisecond)
	l.add(assessment("G1", declaration.Green, "score", 1, "gbdt-1"), nil, time.Millisecond)
	f := l.snapshot(tally{})
	tt := f.total
	if tt.assessed != 8 || tt.redScore != 2 || tt.redProfile != 1 || tt.redRandom != 2 || tt.randomPicks != 3 || tt.modelScored != 3 ||
		tt.channels != [3]int{1, 2, 5} || lag(tt) != 1 {
		t.Fatalf("tally %+v", tt)
	}
	if f.lodP50 != 3*time.Millisecond {
		t.Errorf("lodged-to-assessed p50 %v, want 3ms", f.lodP50)
	}
	row := renderRow(f)
	if !strings.HasSuffix(row, "2        1       2        3") {
		t.Errorf("row does not end with reds by score, profile, random and the model count:\n%s\n%s", tableHeader(), row)
	}
	lines := renderDashboard(f, demoInfo{broker: "127.0.0.1:9092", metrics: "127.0.0.1:9740", topic: "assessments", ruleset: "default@1", rate: 500, seed: 1})
	text := strings.Join(lines, "\n")
	reds, randoms, ok := strings.Cut(text, "latest random compliance picks")
	if !ok || !strings.Contains(reds, "latest reds selected by score or profile") {
		t.Fatalf("no separate lists:\n%s", text)
	}
	for _, id := range []string{"S1", "S2", "P1"} {
		if !strings.Contains(reds, id+" ") || strings.Contains(randoms, id+" ") {
			t.Errorf("%s is not listed among the score and profile reds only:\n%s", id, text)
		}
	}
	for _, id := range []string{"R1", "R2", "RY"} {
		if strings.Contains(reds, id+" ") || !strings.Contains(randoms, id+" ") {
			t.Errorf("%s is not listed among the random picks only:\n%s", id, text)
		}
	}
	for _, want := range []string{"last second", "since start", "red, selected by score                   2            2",
		"red, selected by a profile               1            1", "red, random compliance pick              2            2",
		"scored by the learned model              3            3", "lag now: 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, text)
		}
	}
	// The next second counts only what happened in it.
	l.add(assessment("S3", declaration.Red, "score", 80, ""), nil, time.Millisecond)
	g := l.snapshot(f.total)
	if g.last.assessed != 1 || g.last.redScore != 1 || g.total.redScore != 3 || g.last.modelScored != 0 {
		t.Errorf("last second %+v, total %+v", g.last, g.total)
	}
}

// Every line the demo prints stays under 100 characters, whatever the
// figures, identifiers, reasons and addresses.
func TestLiveLinesUnder100(t *testing.T) {
	long := strings.Repeat("x", 64)
	l := newLiveSummary()
	for i := 0; i < 10; i++ {
		for _, by := range []string{"score", "profile", "random", "override"} {
			a := assessment(long, declaration.Red, by, 100, "gbdt")
			a.ImporterID = long
			a.Findings[0].Reason = strings.Repeat("é long reason ", 30)
			l.add(a, nil, time.Hour)
		}
	}
	l.Write([]byte(strings.Repeat("log line ", 40) + "\n"))
	f := l.snapshot(tally{})
	big := 1_999_999_999
	f.total = tally{produced: big, assessed: big, channels: [3]int{big, big, big}, redScore: big, redProfile: big, redRandom: big, redOther: big, randomPicks: big, modelScored: big}
	f.last = tally{produced: 99_999_999, assessed: 99_999_999}
	f.p99, f.lodP99, f.uptime = 1000*time.Hour, 1000*time.Hour, 10000*time.Hour
	info := demoInfo{broker: "[2001:db8::1234:5678:9abc]:65535", metrics: "[2001:db8::1234:5678:9abc]:65535", topic: strings.Repeat("t", 200),
		ruleset: "a-long-configuration-name@0123456789", rate: 1_000_000, seed: 1 << 63}
	var all []string
	all = append(all, renderDashboard(f, info)...)
	all = append(all, introLines(info)...)
	all = append(all, strings.Split(tableHeader(), "\n")...)
	all = append(all, renderRow(f))
	for _, line := range all {
		if n := utf8.RuneCountInString(line); n >= 100 {
			t.Errorf("%d characters: %s", n, line)
		}
	}
	// The figures of a long run still fit their columns, uncut.
	f.total = tally{produced: 999_999_999, assessed: 999_999_999, channels: [3]int{0, 0, 9_999_999}, redScore: 999_999_999, redProfile: 99_999_999,
		redRandom: 9_999_999, modelScored: 99_999_999}
	f.last.assessed, f.lodP99 = 99_999, 99999*time.Millisecond
	if row := renderRow(f); strings.HasSuffix(row, "...") || !strings.HasSuffix(row, "999999999 99999999 9999999 99999999") {
		t.Errorf("row cut or misaligned:\n%s\n%s", tableHeader(), row)
	}
}

// On a terminal the summary redraws in place (cursor home, clear to end);
// elsewhere it prints plain rows without escape sequences.
func TestLivePrintModes(t *testing.T) {
	for _, tty := range []bool{true, false} {
		l := newLiveSummary()
		l.add(assessment("S1", declaration.Red, "score", 80, ""), nil, time.Millisecond)
		var buf testkit.SyncBuffer
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		l.print(ctx, &buf, tty, demoInfo{broker: "b:1", metrics: "m:2", topic: "assessments", ruleset: "r", rate: 1, seed: 1})
		cancel()
		out := buf.String()
		if tty {
			if strings.Count(out, "\x1b[H") < 2 || !strings.Contains(out, "\x1b[J") || !strings.Contains(out, "last second") {
				t.Errorf("terminal: not redrawn in place:\n%q", out)
			}
			continue
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if strings.Contains(out, "\x1b") || len(lines) < 4 || !strings.HasPrefix(lines[2], "time ") {
			t.Errorf("not a terminal: want a header and a plain row a second:\n%s", out)
		}
	}
}

// riskmon demo with its output in a file, as in CI: it says at once where its
// broker is, prints a plain row a second, every line under 100 characters,
// and its declarations carry the time they were produced as lodged_at. Given
// an instance's configuration, it writes nothing into the state_dir and
// pending_dir that name.
func TestDemoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo")
	}
	stateDir, pendingDir := t.TempDir(), t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "instance.yml")
	yml := strings.Replace(string(config.DefaultYAML()), "\nstate:\n", "\nstate:\n  pending_dir: "+pendingDir+"\n", 1) + "\nstream:\n  state_dir: " + stateDir + "\n"
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "demo", "--duration", "5s", "--rate", "200", "--embedded-broker", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "RISKMON_TEST_MAIN=1")
	var stderr testkit.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("no first line; stderr:\n%s", stderr.String())
	}
	first := sc.Text()
	broker, ok := strings.CutPrefix(first, "riskmon demo: embedded broker ")
	broker, _, _ = strings.Cut(broker, ",")
	if !ok {
		t.Fatalf("first line: %q", first)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "assessments", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("assessment %d: %v\n%s", i, err, stderr.String())
		}
		var a struct {
			LodgedAt   time.Time `json:"lodged_at"`
			AssessedAt time.Time `json:"assessed_at"`
		}
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatalf("assessment %s: %v", m.Value, err)
		}
		// Stamped when produced: seconds at most before its assessment,
		// not the generator's timeline (2026-01-05 onwards).
		if d := a.AssessedAt.Sub(a.LodgedAt); d < 0 || d > 5*time.Second {
			t.Fatalf("lodged_at %v, assessed_at %v: not stamped when produced", a.LodgedAt, a.AssessedAt)
		}
	}
	lines := []string{first}
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, stderr.String())
	}
	for _, dir := range []string{stateDir, pendingDir} {
		if files, _ := os.ReadDir(dir); len(files) > 0 {
			t.Errorf("the demo wrote %d files into %s, an instance's directory", len(files), dir)
		}
	}
	out := strings.Join(lines, "\n")
	rows := 0
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n >= 100 {
			t.Errorf("%d characters: %s", n, l)
		}
		if len(l) > 8 && l[2] == ':' && l[5] == ':' {
			rows++
		}
	}
	if strings.Contains(out, "\x1b") || rows < 3 || !strings.Contains(out, "kcat -b "+broker) {
		t.Errorf("%d rows; output:\n%s", rows, out)
	}
}
