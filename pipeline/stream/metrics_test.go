package stream

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/pipeline/batch"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/synth"
)

// The metrics follow Prometheus naming conventions: promlint (what promtool
// check metrics runs) finds nothing to say about them.
func TestMetricsLint(t *testing.T) {
	// A model trained on a stream where a third was inspected, so that the
	// model's metrics are there too.
	cfg, err := config.Parse([]byte(strings.Replace(string(config.DefaultYAML()), "min_labels: 500 ", "min_labels: 200 ", 1)), "test")
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var d, o bytes.Buffer
	if err := synth.Write(synth.Options{Count: 3000, Seed: 3, InspectRate: 0.3}, synth.Writers{Declarations: &d, Outcomes: &o}); err != nil {
		t.Fatal(err)
	}
	if _, err := batch.Replay(e, batch.ReplayOptions{Input: &d, InputName: "d", Outcomes: &o, OutcomesName: "o", Output: io.Discard, Errors: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if e.Model() == nil {
		t.Fatal("no model trained")
	}
	m := NewMetrics(e)
	m.ModelTrainings.WithLabelValues("active").Inc()
	m.Assessments.WithLabelValues("red", "score").Inc()
	m.Findings.WithLabelValues("unit_value").Inc()
	m.DeadLetters.WithLabelValues("declarations", "items[].gross_mass_kg").Inc()
	m.DetectorSeconds.WithLabelValues("unit_value").Observe(0.00001)
	m.Lag.WithLabelValues("declarations", "0").Set(3)
	m.GroupLag.WithLabelValues("declarations", "0").Set(3)
	m.GroupCommitted.WithLabelValues("declarations", "0").Set(97)
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
		"riskmon_group_lag_messages", "riskmon_group_committed_offset",
		"riskmon_state_entries", "riskmon_ruleset_info", "riskmon_ready", "riskmon_model_info", "riskmon_model_last_training_timestamp_seconds",
		"riskmon_model_training_duration_seconds", "riskmon_model_training_labels", "riskmon_model_validation_auc", "riskmon_model_validation_log_loss",
		"riskmon_model_blend_weight", "riskmon_model_labels_total", "riskmon_model_outcomes_unmatched_total", "riskmon_model_trainings_total"} {
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
