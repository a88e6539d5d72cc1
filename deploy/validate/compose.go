package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of the Compose specification the check reads.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string         `json:"image"`
	Hostname    string         `json:"hostname"`
	Command     any            `json:"command"`
	Environment any            `json:"environment"`
	Ports       []string       `json:"ports"`
	Volumes     []any          `json:"volumes"`
	DependsOn   any            `json:"depends_on"`
	Healthcheck map[string]any `json:"healthcheck"`
	ReadOnly    bool           `json:"read_only"`
	CapDrop     []string       `json:"cap_drop"`
	SecurityOpt []string       `json:"security_opt"`
	StopGrace   string         `json:"stop_grace_period"`
	Restart     string         `json:"restart"`
	User        string         `json:"user"`
}

// env returns a service's environment, from the map or the list form.
func (s composeService) env() map[string]string {
	out := map[string]string{}
	switch e := s.Environment.(type) {
	case map[string]any:
		for k, v := range e {
			out[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = v
		}
	}
	return out
}

func (s composeService) args() []string {
	switch c := s.Command.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		var out []string
		for _, a := range c {
			out = append(out, fmt.Sprint(a))
		}
		return out
	}
	return nil
}

type mount struct {
	source, target string
	bind, readOnly bool
}

func (s composeService) mounts() []mount {
	var out []mount
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			m := mount{source: parts[0], target: parts[len(parts)-1]}
			if len(parts) >= 3 {
				m.target = parts[1]
				m.readOnly = strings.Contains(parts[2], "ro")
			}
			m.bind = strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/")
			out = append(out, m)
		case map[string]any:
			out = append(out, mount{source: fmt.Sprint(v["source"]), target: fmt.Sprint(v["target"]),
				bind: v["type"] == "bind", readOnly: v["read_only"] == true})
		}
	}
	return out
}

// hostPath maps a path inside a service's container to the file mounted
// there from the compose directory, if any.
func hostPath(dir string, s composeService, p string) string {
	for _, m := range s.mounts() {
		if !m.bind {
			continue
		}
		if p == m.target {
			return filepath.Join(dir, m.source)
		}
		if strings.HasPrefix(p, strings.TrimRight(m.target, "/")+"/") {
			return filepath.Join(dir, m.source, strings.TrimPrefix(p, strings.TrimRight(m.target, "/")+"/"))
		}
	}
	return ""
}

// checkCompose parses a compose file and checks it against what it runs:
// every mounted file exists, riskmon's environment and flags are riskmon's,
// its metrics port is the one published and scraped, its brokers are the
// ones Kafka advertises, Prometheus loads the rules and Grafana the
// dashboard.
func checkCompose(path string, fi flagInfo, p *problems) {
	var cf composeFile
	if err := yaml.UnmarshalStrict(readFile(path, p), &cf); err != nil {
		p.add("%s: %v", path, err)
		return
	}
	dir := filepath.Dir(path)
	for _, want := range []string{"kafka", "riskmon", "prometheus", "grafana"} {
		if _, ok := cf.Services[want]; !ok {
			p.add("%s: no service %s", path, want)
		}
	}
	mounted := 0
	for _, name := range sortedKeys(cf.Services) {
		s := cf.Services[name]
		for _, m := range s.mounts() {
			if !m.bind {
				if _, ok := cf.Volumes[m.source]; !ok {
					p.add("%s: service %s: volume %s is not declared under volumes:", path, name, m.source)
				}
				continue
			}
			mounted++
			if _, err := os.Stat(filepath.Join(dir, m.source)); err != nil {
				p.add("%s: service %s mounts %s, which does not exist", path, name, m.source)
			}
		}
		for _, port := range s.Ports {
			if !strings.HasPrefix(port, "127.0.0.1:") {
				p.add("%s: service %s publishes %s beyond loopback", path, name, port)
			}
		}
	}
	r := cf.Services["riskmon"]
	env := r.env()
	for k := range env {
		if fi.env[k] == "" && !envOK[k] {
			p.add("%s: riskmon: environment variable %s is not read by riskmon (run --help lists RISKMON_* variables)", path, k)
		}
	}
	args := r.args()
	if len(args) == 0 || args[0] != "run" {
		p.add("%s: riskmon: command must start with run, got %q", path, args)
	}
	for _, a := range args[min(1, len(args)):] {
		if k, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") {
			if _, ok := fi.flags[k]; !ok {
				p.add("%s: riskmon: riskmon run has no flag --%s", path, k)
			}
		}
	}
	if !r.ReadOnly || !contains(r.CapDrop, "ALL") || !contains(r.SecurityOpt, "no-new-privileges:true") {
		p.add("%s: riskmon: want read_only, cap_drop ALL and no-new-privileges", path)
	}
	if r.User == "0" || strings.HasPrefix(r.User, "root") || strings.HasPrefix(r.User, "0:") {
		p.add("%s: riskmon runs as root", path)
	}
	// Metrics: listened on, published, scraped.
	addr := env["RISKMON_METRICS_ADDR"]
	if addr == "" {
		addr = "0.0.0.0:9740" // the image's default
	}
	host, port, _ := net.SplitHostPort(addr)
	if host == "127.0.0.1" || host == "localhost" {
		p.add("%s: riskmon: metrics on %s are unreachable from the other containers", path, addr)
	}
	published := false
	for _, pp := range r.Ports {
		parts := strings.Split(pp, ":")
		published = published || strings.TrimSuffix(parts[len(parts)-1], "/tcp") == port
	}
	if !published {
		p.add("%s: riskmon: metrics port %s is not published (ports: %v)", path, port, r.Ports)
	}
	// State: a subdirectory of a volume.
	if sd := env["RISKMON_STATE_DIR"]; sd != "" {
		ok := false
		for _, m := range r.mounts() {
			ok = ok || (strings.HasPrefix(sd, strings.TrimRight(m.target, "/")+"/") && !m.readOnly)
		}
		if !ok {
			p.add("%s: riskmon: state dir %s is not a subdirectory of a writable volume", path, sd)
		}
	} else {
		p.add("%s: riskmon: no RISKMON_STATE_DIR: a restart forgets what was learned", path)
	}
	// Brokers: advertised by Kafka, reachable by name.
	k := cf.Services["kafka"]
	adv := k.env()["KAFKA_ADVERTISED_LISTENERS"]
	for _, b := range strings.Split(env["RISKMON_BROKERS"], ",") {
		if b == "" {
			p.add("%s: riskmon: no RISKMON_BROKERS: it would start its embedded broker", path)
			continue
		}
		if !strings.Contains(adv, "//"+b) {
			p.add("%s: riskmon: broker %s is not among Kafka's advertised listeners %s", path, b, adv)
		}
		if h, _, _ := net.SplitHostPort(b); h != "kafka" && h != k.Hostname {
			p.add("%s: riskmon: broker host %s is not the kafka service", path, h)
		}
	}
	if len(k.Healthcheck) == 0 {
		p.add("%s: kafka: no healthcheck, so riskmon cannot wait for it", path)
	}
	// Prometheus: scrapes riskmon's port, loads the rules, valid config.
	pr := cf.Services["prometheus"]
	cfgPath := "/etc/prometheus/prometheus.yml"
	for _, a := range pr.args() {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgPath = v
		}
	}
	promCfg := hostPath(dir, pr, cfgPath)
	if promCfg == "" {
		p.add("%s: prometheus: its configuration %s is not mounted", path, cfgPath)
	} else {
		checkPromConfig(dir, path, pr, promCfg, "riskmon:"+port, p)
	}
	// Grafana: the dashboard provider's path holds the dashboard.
	g := cf.Services["grafana"]
	dashboards := 0
	for _, m := range g.mounts() {
		if m.bind && strings.HasSuffix(m.source, ".json") {
			dashboards++
			if !strings.HasSuffix(m.source, "grafana/riskmon.json") {
				p.add("%s: grafana mounts %s, not deploy/grafana/riskmon.json", path, m.source)
			}
		}
	}
	if dashboards == 0 {
		p.add("%s: grafana: the dashboard is not mounted", path)
	}
	var services []string
	for n, s := range cf.Services {
		services = append(services, n+" ("+s.Image+")")
	}
	sort.Strings(services)
	fmt.Printf("compose: %s: %s; %d mounted files; riskmon metrics on %s, brokers %s\n", path, strings.Join(services, ", "), mounted, addr, env["RISKMON_BROKERS"])
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// checkPromConfig checks that Prometheus scrapes riskmon as job "riskmon"
// at target, that every rule file is mounted, and runs `promtool check
// config` on the file with the rule paths mapped to the host.
func checkPromConfig(dir, path string, pr composeService, promCfg, target string, p *problems) {
	var pc struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	b := readFile(promCfg, p)
	if err := yaml.Unmarshal(b, &pc); err != nil {
		p.add("%s: %v", promCfg, err)
		return
	}
	scraped := false
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, t := range st.Targets {
				scraped = scraped || (sc.JobName == "riskmon" && t == target)
			}
		}
	}
	if !scraped {
		p.add("%s: no scrape job \"riskmon\" with target %s", promCfg, target)
	}
	text := string(b)
	rules := 0
	for _, rf := range pc.RuleFiles {
		h := hostPath(dir, pr, rf)
		if h == "" {
			p.add("%s: rule file %s is not mounted into the prometheus service", promCfg, rf)
			continue
		}
		if _, err := os.Stat(h); err != nil {
			p.add("%s: rule file %s: %v", promCfg, rf, err)
			continue
		}
		if strings.HasSuffix(h, "riskmon.rules.yml") {
			rules++
		}
		abs, _ := filepath.Abs(h)
		text = regexp.MustCompile(regexp.QuoteMeta(rf)).ReplaceAllString(text, abs)
	}
	if rules == 0 {
		p.add("%s: does not load deploy/prometheus/riskmon.rules.yml", promCfg)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		f, _ := os.CreateTemp("", "prometheus-*.yml")
		f.WriteString(text)
		f.Close()
		defer os.Remove(f.Name())
		if out, err := exec.Command(promtool, "check", "config", f.Name()).CombinedOutput(); err != nil {
			p.add("%s: promtool check config: %s", promCfg, out)
		}
	} else {
		p.add("promtool not found: cannot check %s", promCfg)
	}
}
