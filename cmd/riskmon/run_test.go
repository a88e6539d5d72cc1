package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/stream"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/synth"
)

// The test binary doubles as riskmon when RISKMON_TEST_MAIN=1, so tests can
// run it as a separate process and signal it, as an operator would.
func TestMain(m *testing.M) {
	if os.Getenv("RISKMON_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// startRun starts `riskmon run` as a process on its embedded broker, both
// on ports the system picks (no race for a free port with other tests), and
// returns once it has logged where they are.
func startRun(t *testing.T, args ...string) (cmd *exec.Cmd, stderr *testkit.SyncBuffer, broker, metrics string) {
	t.Helper()
	cmd, stderr = startRiskmon(t, append([]string{"run", "--embedded-broker", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, args...)...)
	broker, metrics = waitStarted(t, stderr)
	return cmd, stderr, broker, metrics
}

// waitStarted waits for riskmon's "riskmon started" line and returns its
// broker and metrics addresses.
func waitStarted(t *testing.T, stderr *testkit.SyncBuffer) (broker, metrics string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var e struct {
				Message string   `json:"message"`
				Metrics string   `json:"metrics"`
				Brokers []string `json:"brokers"`
			}
			if json.Unmarshal([]byte(l), &e) == nil && e.Message == "riskmon started" && len(e.Brokers) > 0 {
				u := strings.TrimSuffix(strings.TrimPrefix(e.Metrics, "http://"), "/metrics")
				return e.Brokers[0], u
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("riskmon did not start within 20 s:\n%s", stderr.String())
	return
}

// startRiskmon starts riskmon (this test binary, see TestMain) as a separate
// process; its stderr is collected, and it is killed when the test ends.
func startRiskmon(t *testing.T, args ...string) (*exec.Cmd, *testkit.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RISKMON_TEST_MAIN=1")
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stderr
}

// waitMetrics waits up to 10 s for riskmon's /metrics at base to contain
// want, and returns the body; it fails the test with riskmon's log if not.
func waitMetrics(t *testing.T, base, want string, stderr *testkit.SyncBuffer) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		body := waitHTTP(t, base+"/metrics", 200, 5*time.Second)
		if strings.Contains(body, want) {
			return body
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("metrics never showed %q\n%s", want, stderr.String())
	return ""
}

func waitHTTP(t *testing.T, url string, want int, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within %v (last: %v)", url, want, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// riskmon run as a process, on its embedded broker: it says where the broker
// is, serves health, readiness and metrics, assesses what an independent
// client produces, and on SIGTERM shuts down cleanly with exit status 0.
func TestRunProcess(t *testing.T) {
	cmd, stderr, broker, metrics := startRun(t)
	base := "http://" + metrics
	waitHTTP(t, base+"/healthz", 200, 15*time.Second)
	// Ready on a quiet feed: once the consumer has joined its group, with
	// nothing produced yet. Until then, 503 says which condition fails.
	var notReady []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if !strings.Contains(string(b), "consumer in group riskmon") {
				t.Errorf("/readyz 200 body: %q", b)
			}
			break
		}
		notReady = append(notReady, string(b))
		if resp.StatusCode != 503 || !strings.HasPrefix(string(b), "not ready: ") {
			t.Fatalf("/readyz: %d %q", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle riskmon run is not ready 5 s after it started: %q", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("ready with nothing produced, after %d not-ready answers (%q)", len(notReady), notReady)

	var values []kafka.Message
	synth.Generate(synth.Options{Count: 300, Seed: 3}, func(r synth.Record) error {
		values = append(values, kafka.Message{Key: []byte(r.Decl.Importer.ID), Value: r.Decl.AppendJSON(nil)})
		return nil
	})
	values = append(values, kafka.Message{Value: []byte(`{"id":"BAD"}`)}, kafka.Message{Value: []byte("not json")})
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "declarations", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, Transport: &kafka.Transport{}}
	if err := w.WriteMessages(context.Background(), values...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "assessments", MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 300; i++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %d of 300 assessments: %v", i, err)
		}
		var a map[string]any
		if json.Unmarshal(m.Value, &a) != nil || a["schema"] != "assessment/v1" || string(m.Key) != a["declaration_id"] {
			t.Fatalf("assessment %d: key %s value %s", i, m.Key, m.Value)
		}
	}
	r.Close()
	waitHTTP(t, base+"/readyz", 200, 10*time.Second)
	// The counters are updated as acknowledgements arrive: poll briefly.
	var body string
	for i := 0; i < 50; i++ {
		body = waitHTTP(t, base+"/metrics", 200, 5*time.Second)
		if strings.Contains(body, "riskmon_declarations_consumed_total 302") && strings.Contains(body, `riskmon_dead_letters_total{reason="json",source="declarations"} 1`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"riskmon_declarations_consumed_total 302", `riskmon_dead_letters_total{reason="lodged_at",source="declarations"} 1`,
		`riskmon_dead_letters_total{reason="json",source="declarations"} 1`, "riskmon_assessments_total{", "riskmon_ready 1", "riskmon_ruleset_info{name=\"default\"",
		`riskmon_detector_seconds_count{detector="unit_value"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
		t.Logf("stopped %.2fs after SIGTERM", time.Since(start).Seconds())
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM\n%s", stderr.String())
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"message":"no brokers configured: started the embedded Kafka-protocol broker`) || !strings.Contains(logs, broker) {
		t.Errorf("the log does not say the embedded broker started and where:\n%s", logs)
	}
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(l), &entry) != nil {
			t.Errorf("log line is not JSON: %s", l)
		}
	}
	if n := strings.Count(logs, "\n"); n > 20 {
		t.Errorf("%d log lines for 302 messages: logging per declaration?\n%s", n, logs)
	}
	fmt.Fprint(io.Discard, logs)
}

// SIGHUP reloads the configuration file: a file with problems is refused and
// the running configuration stays, with the failure in the log and the
// metrics; a good one takes over, and the ruleset id in the metrics follows.
func TestReloadProcess(t *testing.T) {
	dir := t.TempDir()
	cfgFile := dir + "/riskmon.yml"
	good := "name: first\ndetectors: [{name: uv, kind: unit_value}]\n"
	os.WriteFile(cfgFile, []byte(good), 0o644)
	cmd, stderr, _, metrics := startRun(t, "--config", cfgFile)
	base := "http://" + metrics
	before := waitHTTP(t, base+"/metrics", 200, 15*time.Second)
	if !strings.Contains(before, `riskmon_ruleset_info{name="first"`) {
		t.Fatalf("ruleset metric missing:\n%s", before)
	}
	metricsAfter := func(want string) string { return waitMetrics(t, base, want, stderr) }
	os.WriteFile(cfgFile, []byte("name: second\nscoring: {red: 10, yellow: 50}\ndetectors: [{name: uv, kind: nope}]\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	// A scrape gathers metrics concurrently, so each is waited for on its
	// own; the ruleset is read from the engine, one series at any moment.
	metricsAfter(`riskmon_config_reloads_total{result="failure"} 1`)
	metricsAfter(`riskmon_config_last_reload_successful 0`)
	if body := metricsAfter(`riskmon_ruleset_info{name="first"`); strings.Contains(body, `name="second"`) {
		t.Errorf("after a bad reload:\n%s", body)
	}
	os.WriteFile(cfgFile, []byte("name: second\ndetectors: [{name: uv, kind: unit_value, weight: 30}]\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	metricsAfter(`riskmon_config_reloads_total{result="success"} 1`)
	metricsAfter("riskmon_config_last_reload_successful 1")
	if body := metricsAfter(`riskmon_ruleset_info{name="second"`); strings.Contains(body, `name="first"`) {
		t.Errorf("after a good reload:\n%s", body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
	logs := stderr.String()
	for _, want := range []string{"configuration reload refused; the running configuration stays", "scoring.red: must be >= scoring.yellow", `unknown detector kind \"nope\"`,
		"configuration reloaded", `"detectors_kept":["uv"],"detectors_fresh":[],"detectors_removed":[],"model_kept":true`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// The three ways to reload: a SIGHUP sent before riskmon has finished
// starting (it is held, not fatal, and applied once started), POST
// /-/reload (refusing a bad file with its problems, 405 for GET), and
// --config.watch picking up a changed file with no signal at all.
func TestReloadTriggers(t *testing.T) {
	dir := t.TempDir()
	cfgFile := dir + "/riskmon.yml"
	write := func(s string) {
		if err := os.WriteFile(cfgFile, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("name: first\ndetectors: [{name: uv, kind: unit_value}]\n")
	// The broker is not up yet: riskmon waits for it before it has started,
	// and a SIGHUP in that window used to end the process.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd, stderr := startRiskmon(t, "run", "--brokers", addr, "--metrics-addr", "127.0.0.1:0", "--config", cfgFile, "--config.watch")
	for i := 0; i < 200 && !strings.Contains(stderr.String(), "cannot reach the brokers"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Stream
	broker, err := stream.StartEmbedded(addr, 1, cfg.DeclarationsTopic, cfg.OutcomesTopic, cfg.AssessmentsTopic, cfg.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	_, metrics := waitStarted(t, stderr)
	base := "http://" + metrics
	metricsShow := func(want string) string { t.Helper(); return waitMetrics(t, base, want, stderr) }
	metricsShow(`riskmon_config_reloads_total{result="success"} 1`)
	if !strings.Contains(stderr.String(), `"trigger":"signal"`) {
		t.Errorf("the early SIGHUP was not applied:\n%s", stderr.String())
	}

	post := func() (int, string) {
		t.Helper()
		resp, err := http.Post(base+"/-/reload", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if resp, err := http.Get(base + "/-/reload"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %v %v, want 405", resp, err)
	}
	write("name: second\nscoring: {red: 10, yellow: 50}\ndetectors: [{name: uv, kind: unit_value}]\n")
	if code, body := post(); code != 500 || !strings.Contains(body, "scoring.red: must be >= scoring.yellow") {
		t.Errorf("POST with a bad file: %d %q", code, body)
	}
	metricsShow(`riskmon_config_reloads_total{result="failure"} 1`)
	// A change of the state's size counts in the ruleset id but can only
	// take effect at a restart: refused.
	write("name: second\nstate: {capacity_mb: 77}\ndetectors: [{name: uv, kind: unit_value, weight: 30}]\n")
	if code, body := post(); code != 500 || !strings.Contains(body, "state.capacity_mb: read at start-up only (the running configuration would no longer say what runs); restart riskmon to change it") {
		t.Errorf("POST changing state.capacity_mb: %d %q", code, body)
	}
	metricsShow(`riskmon_config_reloads_total{result="failure"} 2`)
	// A good file that also changes a stream setting: the reload applies
	// the rest and says which take effect at restart.
	write("name: second\nstream: {workers: 3}\ndetectors: [{name: uv, kind: unit_value, weight: 30}]\n")
	if code, body := post(); code != 200 || !strings.Contains(body, "second@") || !strings.Contains(body, "take effect at the next restart: stream.workers\n") {
		t.Errorf("POST with a good file: %d %q", code, body)
	}
	metricsShow(`riskmon_ruleset_info{name="second"`)

	// No signal, no request: the watcher sees the new content.
	write("name: third\ndetectors: [{name: uv, kind: unit_value, weight: 35}]\n")
	body := metricsShow(`riskmon_ruleset_info{name="third"`)
	if strings.Contains(body, `name="second"`) {
		t.Errorf("old ruleset still listed:\n%s", body)
	}
	logs := stderr.String()
	for _, want := range []string{`"trigger":"http"`, `"trigger":"watch"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs)
	}
}

// The metrics endpoint behind TLS and basic auth, configured as Prometheus
// exporters are (--web.config.file): no credentials, no metrics.
func TestMetricsWebConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	hash, _ := bcrypt.GenerateFromPassword([]byte("scrape-secret"), bcrypt.MinCost)
	webCfg := filepath.Join(dir, "web.yml")
	os.WriteFile(webCfg, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n", certFile, keyFile, hash)), 0o600)
	_, stderr, _, metrics := startRun(t, "--web.config.file", webCfg)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 2 * time.Second}
	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", "https://"+metrics+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var code int
	for i := 0; i < 100 && code == 0; i++ {
		code = get("prometheus", "scrape-secret")
		time.Sleep(100 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("with credentials: %d\n%s", code, stderr.String())
	}
	if c := get("", ""); c != 401 {
		t.Errorf("without credentials: %d, want 401", c)
	}
	if c := get("prometheus", "wrong"); c != 401 {
		t.Errorf("with a wrong password: %d, want 401", c)
	}
	if resp, err := http.Get("http://" + metrics + "/metrics"); err == nil && resp.StatusCode == 200 {
		t.Error("metrics served over plain HTTP")
	}
	if strings.Contains(stderr.String(), "scrape-secret") {
		t.Error("the password appears in the log")
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// Brokers unreachable at start-up: riskmon says so clearly and retries with
// growing pauses instead of exiting (and being restarted in a loop); SIGTERM
// still stops it at once.
func TestRunUnreachableBroker(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	cmd, stderr := startRiskmon(t, "run", "--brokers", dead, "--metrics-addr", "127.0.0.1:0")
	time.Sleep(4 * time.Second)
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("riskmon exited: %v\n%s", err, stderr.String())
	}
	logs := stderr.String()
	retries := strings.Count(logs, "cannot reach the brokers to check the topics")
	if retries < 2 || !strings.Contains(logs, dead) || !strings.Contains(logs, `"retry_in":`) {
		t.Fatalf("%d retry lines in 4 s:\n%s", retries, logs)
	}
	if retries > 6 {
		t.Errorf("%d retries in 4 s: no backoff?", retries)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM while retrying: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	t.Logf("%d attempts in 4 s, then stopped on SIGTERM", retries)
}
