package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/riskmon/riskmon/config"
	_ "github.com/riskmon/riskmon/detectors" // registers the detector kinds
)

func TestDefault(t *testing.T) {
	c := config.Default()
	if c.Name != "default" || len(c.Detectors) < 2 {
		t.Fatalf("default config: %+v", c)
	}
	if !regexp.MustCompile(`^default@[0-9a-f]{8}$`).MatchString(c.Ruleset) {
		t.Errorf("ruleset id %q", c.Ruleset)
	}
	for _, d := range c.Detectors {
		if d.Decoded == nil {
			t.Errorf("detector %s: params not decoded", d.Name)
		}
	}
}

// Every testdata/*.good.yml parses; every testdata/*.bad.yml fails with
// exactly the problems listed in its header comment ("# want: line N: key: msg").
func TestTestdata(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yml")
	if len(files) < 6 {
		t.Fatalf("only %d testdata files", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, perr := config.Parse(b, f)
		if strings.HasSuffix(f, ".good.yml") {
			if perr != nil {
				t.Errorf("%s: %v", f, perr)
			}
			continue
		}
		var want []string
		for _, l := range strings.Split(string(b), "\n") {
			if w, ok := strings.CutPrefix(l, "# want: "); ok {
				want = append(want, w)
			}
		}
		if len(want) == 0 {
			t.Fatalf("%s: no '# want:' lines", f)
		}
		if perr == nil {
			t.Errorf("%s: accepted, want %q", f, want)
			continue
		}
		got := strings.Split(perr.Error(), "\n")
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got:\n  %s\nwant:\n  %s", f, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

// Comments and formatting do not change the ruleset id; content does.
func TestRulesetHash(t *testing.T) {
	a, err := config.Parse([]byte("name: x\ndetectors:\n  - {name: p, kind: unit_value}\n"), "a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := config.Parse([]byte("# comment\nname: x\ndetectors:\n- name: p   # c\n  kind: unit_value\n"), "b")
	c, _ := config.Parse([]byte("name: x\ndetectors:\n  - {name: p, kind: unit_value, weight: 10}\n"), "c")
	if a.Ruleset != b.Ruleset {
		t.Errorf("formatting changed the id: %s vs %s", a.Ruleset, b.Ruleset)
	}
	if a.Ruleset == c.Ruleset {
		t.Errorf("a weight change kept the id %s", a.Ruleset)
	}
	// Quoting is layout; what a quoted string says is not.
	quoted := func(list string) string {
		c, err := config.Parse([]byte("name: x\nlists: {aeo: ["+list+"]}\ndetectors:\n  - {name: p, kind: unit_value}\n"), list)
		if err != nil {
			t.Fatal(err)
		}
		return c.Ruleset
	}
	if q := []string{quoted("IM1"), quoted(`"IM1"`), quoted("'IM1'")}; q[0] != q[1] || q[0] != q[2] || q[0] == quoted("IM2") || quoted("2402") != quoted(`"2402"`) {
		t.Errorf("quoting changed the id (IM1, \"IM1\", 'IM1': %v) or a quoted value did not", q)
	}
	// The stream section is deployment, not meaning: it is left out of the
	// id, wherever it stands, and what follows it still counts.
	d, _ := config.Parse([]byte("stream: {workers: 4, group: g}\nname: x\ndetectors:\n  - {name: p, kind: unit_value}\n"), "d")
	e, _ := config.Parse([]byte("name: x\nstream: {workers: 2}\ndetectors:\n  - {name: p, kind: unit_value}\n"), "e")
	g, _ := config.Parse([]byte("name: x\nstream: {workers: 2}\ndetectors:\n  - {name: p, kind: unit_value, weight: 10}\n"), "g")
	if d == nil || e == nil || g == nil {
		t.Fatal("a configuration with a stream section refused")
	}
	if d.Ruleset != a.Ruleset || e.Ruleset != a.Ruleset {
		t.Errorf("the stream section changed the id: %s, %s vs %s", d.Ruleset, e.Ruleset, a.Ruleset)
	}
	if g.Ruleset != c.Ruleset {
		t.Errorf("a weight after the stream section: id %s, want %s", g.Ruleset, c.Ruleset)
	}
	// Of state.pending_dir the id sees only that the records are on disk.
	dir := func(d string) string {
		c, err := config.Parse([]byte("name: x\nstate: {pending_dir: "+d+"}\ndetectors:\n  - {name: p, kind: unit_value}\n"), d)
		if err != nil {
			t.Fatal(err)
		}
		return c.Ruleset
	}
	if dir("/var/a") != dir("/srv/b") || dir("/var/a") == dir(`""`) || dir("~") == dir("/var/a") {
		t.Errorf("state.pending_dir: ids %s and %s, in memory %s and %s; want the two equal and unlike the others", dir("/var/a"), dir("/srv/b"), dir(`""`), dir("~"))
	}
}

// The configuration loader never panics, and what it accepts has a ruleset id
// and re-parses to the same id.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b, "fuzz")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if c.Ruleset == "" {
			t.Fatal("accepted without a ruleset id")
		}
		c2, err := config.Parse(b, "fuzz")
		if err != nil || c2.Ruleset != c.Ruleset {
			t.Fatalf("second parse: %v, %s vs %s", err, c2.Ruleset, c.Ruleset)
		}
	})
}

// RestartOnly names each start-up-only setting that a reload changed, by its
// key in the file, nested ones included, and nothing else.
func TestRestartOnly(t *testing.T) {
	a := config.Default()
	b := config.Default()
	if got := config.RestartOnly(a, b); len(got) != 0 {
		t.Errorf("unchanged: %v", got)
	}
	b.State.PendingDir = "/var/lib/riskmon"
	b.Stream.Brokers = []string{"k1:9092"}
	b.Stream.TLS.Enabled = true
	b.Scoring.Red++ // applied by a reload
	got := strings.Join(config.RestartOnly(a, b), " ")
	if want := "state.pending_dir stream.brokers stream.tls.enabled"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
