package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/riskmon/riskmon/config"
)

// An input without a single valid declaration is a user error naming the
// input (exit 1), not a summary of zeros: for replay as for train.
func TestNoValidDeclaration(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	empty := write("empty.jsonl", "")
	blank := write("blank.jsonl", "\n  \n\n")
	garbage := write("garbage.jsonl", "not json\n{\"id\":\"X1\"}\n[1,2]\n")
	one := write("one.jsonl", "{}\n")
	outcomes := write("outcomes.jsonl", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--input", empty}, empty + " holds no declaration: it is empty"},
		{[]string{"replay", "--input", blank, "--output", filepath.Join(dir, "a.jsonl")}, blank + " holds no declaration: it is empty"},
		{[]string{"replay", "--input", garbage}, garbage + " holds no valid declaration: all 3 lines are invalid"},
		{[]string{"replay", "--input", one}, one + " holds no valid declaration: its only line is invalid"},
		{[]string{"train", "--input", empty, "--outcomes", outcomes, "--output", filepath.Join(dir, "m")}, empty + " holds no declaration: it is empty"},
		{[]string{"train", "--input", garbage, "--outcomes", outcomes, "--output", filepath.Join(dir, "m")}, garbage + " holds no valid declaration: all 3 lines are invalid"},
	} {
		code, out, errOut := capture(t, c.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		last := lines[len(lines)-1]
		if code != 1 || last != "riskmon "+c.args[0]+": "+c.want {
			t.Errorf("%v: exit %d, last line of stderr %q, want %q", c.args, code, last, c.want)
		}
		if out != "" || strings.Contains(errOut, "declarations read") || strings.Contains("\n"+errOut, "\ntrain: ") {
			t.Errorf("%v: a summary of nothing:\n%s%s", c.args, out, errOut)
		}
		if c.args[2] == garbage && !strings.Contains(errOut, garbage+" line 3: ") {
			t.Errorf("%v: the invalid lines are not reported:\n%s", c.args, errOut)
		}
	}
	// Standard input is named as such.
	f, _ := os.Open(empty)
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	code, _, errOut := capture(t, "replay", "--input", "-")
	os.Stdin = old
	if code != 1 || strings.TrimSpace(errOut) != "riskmon replay: standard input holds no declaration: it is empty" {
		t.Errorf("stdin: exit %d, %q", code, errOut)
	}
}

// riskmon --version (and riskmon version) prints one line: the version, the
// commit and the Go version, and exits 0.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		code, out, errOut := capture(t, arg)
		if code != 0 || errOut != "" || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "riskmon ") ||
			!strings.Contains(out, ", commit ") || !strings.Contains(out, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) {
			t.Errorf("riskmon %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/riskmon/riskmon", Version: "v0.0.0-20260101120000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-01-01T12:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "riskmon v0.0.0-20260101120000-0123456789ab+dirty, commit 0123456789abcdef0123456789abcdef01234567 (2026-01-01T12:00:00Z, with uncommitted changes), go1.26.8 " +
		runtime.GOOS + "/" + runtime.GOARCH
	if got := versionLine(info, true); got != want {
		t.Errorf("version line\n got %s\nwant %s", got, want)
	}
	version = "v1.2.3"
	defer func() { version = "" }()
	info.Settings[3].Value = "false"
	if got := versionLine(info, true); !strings.HasPrefix(got, "riskmon v1.2.3, commit 0123456789abcdef0123456789abcdef01234567 (2026-01-01T12:00:00Z), ") {
		t.Errorf("version set at build time: %s", got)
	}
	if got := versionLine(nil, false); !strings.HasPrefix(got, "riskmon v1.2.3, commit unknown") {
		t.Errorf("no build information: %s", got)
	}
}

// --log-format console writes no colour codes when stderr is not a terminal.
func TestConsoleLogWithoutTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stderr
	os.Stderr = f
	log := newLogger(config.Stream{LogFormat: "console", LogLevel: "info"})
	log.Warn().Str("component", "consumer").Msg("something to see")
	os.Stderr = old
	b, _ := os.ReadFile(f.Name())
	if !strings.Contains(string(b), "WRN something to see") || strings.Contains(string(b), "\x1b[") {
		t.Errorf("console log to a file: %q", b)
	}
}
