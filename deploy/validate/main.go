// Command validate checks riskmon's deployment files: the Kubernetes
// manifests (rendered with kustomize and checked against the Kubernetes API
// types and the CRDs' schemas), the compose file, the alerting rules and
// their tests, and the Grafana dashboard. deploy/check runs it; it is its own
// Go module so that riskmon's go.mod gains no Kubernetes dependencies.
//
//	go run . kube -riskmon BIN -crds DIR[,DIR] ../kubernetes/base ../kubernetes/overlays/example
//	go run . compose -riskmon BIN ../compose/compose.yaml
//	go run . rules ../prometheus/riskmon.rules.yml
//	go run . dashboard [-write]
//	go run . panel-rules > panels.rules.yml   (then promtool check rules)
//	go run . sync-prometheusrule
//	go run . live -prometheus URL -wait 75s  (deploy/grafana/check-live)
//
// Each subcommand prints what it checked and exits 1 with every problem.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// deployDir is deploy/, found from the working directory (deploy/validate).
var deployDir = func() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "deploy", "validate", "go.mod")); err == nil {
			return filepath.Join(d, "deploy")
		}
	}
	return filepath.Join(wd, "..")
}()

// problems collects what is wrong, to report all of it at once.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) exit(what string) {
	if len(p) == 0 {
		fmt.Printf("%s: ok\n", what)
		return
	}
	for _, s := range p {
		fmt.Fprintf(os.Stderr, "%s: %s\n", what, s)
	}
	fmt.Fprintf(os.Stderr, "%s: %d problem(s)\n", what, len(p))
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate kube|compose|rules|dashboard|panel-rules|live|sync-prometheusrule [flags] [args]")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	riskmon := fs.String("riskmon", "", "riskmon binary: its `run --help` gives the flags and environment variables, `validate` checks configurations")
	crds := fs.String("crds", "", "comma-separated directories of CRD YAML files (KEDA, Prometheus Operator)")
	prom := fs.String("prometheus", "http://127.0.0.1:9090", "live: the Prometheus that scrapes the running riskmon")
	wait := fs.Duration("wait", 60*time.Second, "live: how long to wait for every panel to have data")
	absent := fs.String("absent-ok", "riskmon_config_reloads_total", "live: metrics the running riskmon may not export (comma-separated; a reload counter exists only after a reload)")
	write := fs.Bool("write", false, "dashboard: write deploy/grafana/riskmon.json instead of comparing")
	fs.Parse(args)
	switch cmd {
	case "kube":
		var p problems
		schemas := loadCRDs(strings.Split(*crds, ","), &p)
		flags := riskmonFlags(*riskmon)
		for _, dir := range fs.Args() {
			checkKustomization(dir, *riskmon, flags, schemas, &p)
		}
		p.exit("kube")
	case "compose":
		var p problems
		flags := riskmonFlags(*riskmon)
		for _, f := range fs.Args() {
			checkCompose(f, flags, &p)
		}
		p.exit("compose")
	case "rules":
		var p problems
		for _, f := range fs.Args() {
			checkRules(f, &p)
		}
		p.exit("rules")
	case "dashboard":
		var p problems
		checkDashboard(*write, &p)
		p.exit("dashboard")
	case "panel-rules":
		var p problems
		b := panelRules(&p)
		if len(p) > 0 {
			p.exit("panel-rules")
		}
		os.Stdout.Write(b)
	case "live":
		var p problems
		absentOK := map[string]bool{}
		for _, m := range strings.Split(*absent, ",") {
			absentOK[m] = m != ""
		}
		checkLive(*prom, *wait, absentOK, &p)
		p.exit("live")
	case "sync-prometheusrule":
		var p problems
		syncPrometheusRule(&p)
		p.exit("sync-prometheusrule")
	default:
		fmt.Fprintf(os.Stderr, "validate: unknown subcommand %q\n", cmd)
		os.Exit(2)
	}
}

// flagInfo is what `riskmon run --help` says about the stream flags.
type flagInfo struct {
	flags map[string]string // flag name -> default ("none" when unset)
	env   map[string]string // RISKMON_* -> flag name
}

var (
	helpFlagRe    = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9.-]*)(?: \w+)?\n\s+(.*)`)
	helpEnvRe     = regexp.MustCompile(`env (RISKMON_[A-Z0-9_]+)\)$`)
	helpDefaultRe = regexp.MustCompile(`default ([^,)]*)`)
)

// riskmonFlags runs `riskmon run --help` and reads every flag that has an
// environment variable.
func riskmonFlags(bin string) flagInfo {
	fi := flagInfo{flags: map[string]string{}, env: map[string]string{}}
	if bin == "" {
		fmt.Fprintln(os.Stderr, "validate: -riskmon BIN is needed")
		os.Exit(2)
	}
	out, _ := exec.Command(bin, "run", "--help").CombinedOutput() // --help exits non-zero with some flag packages
	for _, m := range helpFlagRe.FindAllStringSubmatch(string(out), -1) {
		env := helpEnvRe.FindStringSubmatch(m[2])
		if env == nil {
			continue
		}
		fi.flags[m[1]], fi.env[env[1]] = "none", m[1]
		if d := helpDefaultRe.FindStringSubmatch(m[2]); d != nil {
			fi.flags[m[1]] = d[1]
		}
	}
	if len(fi.env) < 10 {
		fmt.Fprintf(os.Stderr, "validate: read only %d flags with environment variables from `%s run --help`:\n%s", len(fi.env), bin, out)
		os.Exit(2)
	}
	// `-config` has no environment variable but is a flag.
	fi.flags["config"] = "none"
	return fi
}

// riskmonValidate runs `riskmon validate --config` on a configuration's
// content and returns its ruleset id.
func riskmonValidate(bin, name string, content []byte, p *problems) string {
	f, err := os.CreateTemp("", "riskmon-*.yml")
	if err != nil {
		p.add("%v", err)
		return ""
	}
	defer os.Remove(f.Name())
	f.Write(content)
	f.Close()
	out, err := exec.Command(bin, "validate", "--config", f.Name()).CombinedOutput()
	if err != nil {
		p.add("%s: riskmon validate refuses it:\n%s", name, strings.ReplaceAll(string(out), f.Name(), name))
		return ""
	}
	if m := regexp.MustCompile(`ruleset (\S+),`).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

// builtinRuleset is the ruleset id of riskmon's built-in configuration.
func builtinRuleset(bin string) string {
	out, _ := exec.Command(bin, "validate").CombinedOutput()
	if m := regexp.MustCompile(`ruleset (\S+),`).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func readFile(path string, p *problems) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		p.add("%v", err)
	}
	return bytes.TrimPrefix(b, []byte("\ufeff"))
}
