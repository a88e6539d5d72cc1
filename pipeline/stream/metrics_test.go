package stream

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// The metrics follow Prometheus naming conventions: promlint (what promtool
// check metrics runs) finds nothing to say about them.
func TestMetricsLint(t *testing.T) {
	e, err := engine.New(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(e)
	m.Assessments.WithLabelValues("red", "score").Inc()
	m.Findings.WithLabelValues("unit_value").Inc()
	m.DeadLetters.WithLabelValues("declarations", "items[].gross_mass_kg").Inc()
	m.DetectorSeconds.WithLabelValues("unit_value").Observe(0.00001)
	m.Lag.WithLabelValues("declarations", "0").Set(3)
	problems, err := promlint.NewWithMetricFamilies(must(m.Registry.Gather())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	families := must(m.Registry.Gather())
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"riskmon_declarations_consumed_total", "riskmon_assessments_total", "riskmon_dead_letters_total",
		"riskmon_lodged_to_assessed_seconds", "riskmon_processing_seconds", "riskmon_detector_seconds", "riskmon_consumer_lag_messages",
		"riskmon_state_entries", "riskmon_ruleset_info", "riskmon_ready"} {
		if !names[want] {
			t.Errorf("metric %s missing", want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
