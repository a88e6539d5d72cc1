package stream

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/riskmon/riskmon/pipeline/engine"
)

// Metrics are the stream mode's Prometheus metrics. Names follow the
// Prometheus conventions (riskmon_ prefix, base units, _total counters).
type Metrics struct {
	Registry        *prometheus.Registry
	Declarations    prometheus.Counter
	Outcomes        prometheus.Counter
	Assessments     *prometheus.CounterVec // channel, selected_by
	Findings        *prometheus.CounterVec // detector
	DeadLetters     *prometheus.CounterVec // source, reason
	LodgedToAssess  prometheus.Histogram
	InProcess       prometheus.Histogram
	DetectorSeconds *prometheus.HistogramVec // detector
	Lag             *prometheus.GaugeVec     // topic, partition
	CommitErrors    prometheus.Counter
	ProduceErrors   prometheus.Counter
	StateEntries    prometheus.GaugeFunc
	StateBytes      prometheus.GaugeFunc
	SharedEntries   prometheus.GaugeFunc
	SharedDropped   prometheus.CounterFunc
	Ruleset         *prometheus.GaugeVec // name, ruleset
	Ready           prometheus.Gauge
	Reloads         *prometheus.CounterVec // result
	ReloadOK        prometheus.Gauge
}

// NewMetrics registers the metrics (and the Go and process collectors) on a
// new registry; the engine's state sizes are read at scrape time.
func NewMetrics(e *engine.Engine) *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	latency := prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms .. 16 s
	m := &Metrics{
		Registry: r,
		Declarations: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_declarations_consumed_total",
			Help: "Declaration messages consumed, valid or not."}),
		Outcomes: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_outcomes_consumed_total",
			Help: "Inspection outcome messages consumed, valid or not."}),
		Assessments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_assessments_total",
			Help: "Assessments produced, by channel and by what set the channel."}, []string{"channel", "selected_by"}),
		Findings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_findings_total",
			Help: "Findings in produced assessments, by detector."}, []string{"detector"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_dead_letters_total",
			Help: "Invalid input messages sent to the dead-letter topic, by source topic and field."}, []string{"source", "reason"}),
		LodgedToAssess: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "riskmon_lodged_to_assessed_seconds",
			Help: "Time from a declaration's lodged_at to its assessment.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 20)}),
		InProcess: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "riskmon_processing_seconds",
			Help: "Time from fetching a declaration to the broker's acknowledgement of its assessment.", Buckets: latency}),
		DetectorSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "riskmon_detector_seconds",
			Help:    "Time a detector spends on a declaration (score and learn), sampled 1 in 16.",
			Buckets: prometheus.ExponentialBuckets(0.000001, 2, 16)}, []string{"detector"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "riskmon_consumer_lag_messages",
			Help: "Messages behind the partition's high-water mark at the last fetch."}, []string{"topic", "partition"}),
		CommitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_commit_errors_total",
			Help: "Failed offset commits (retried on the next round)."}),
		ProduceErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_produce_errors_total",
			Help: "Failed produce attempts of assessments and dead letters (retried until acknowledged)."}),
		StateEntries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_state_entries",
			Help: "Entries in the per-entity state store."}, func() float64 { n, _ := e.Store().Stats(); return float64(n) }),
		StateBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_state_bytes",
			Help: "Bytes used by the per-entity state store."}, func() float64 { _, b := e.Store().Stats(); return float64(b) }),
		SharedEntries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_shared_statistics_entries",
			Help: "Shared statistics held in memory (peer baselines, route counts, history rates)."}, func() float64 { return float64(e.Shared().Len()) }),
		SharedDropped: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "riskmon_shared_statistics_evictions_total",
			Help: "Shared statistics dropped to stay within state.shared_entries."}, func() float64 { return float64(e.Shared().Dropped()) }),
		Ruleset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "riskmon_ruleset_info",
			Help: "The active detector configuration: 1 for its name and ruleset id."}, []string{"name", "ruleset"}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "riskmon_ready",
			Help: "1 when consuming and producing, 0 otherwise."}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_config_reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: success or failure (the old configuration stays)."}, []string{"result"}),
		ReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "riskmon_config_last_reload_successful",
			Help: "1 if the last configuration reload succeeded (or none was tried), 0 if it failed."}),
	}
	for _, c := range []prometheus.Collector{m.Declarations, m.Outcomes, m.Assessments, m.Findings, m.DeadLetters,
		m.LodgedToAssess, m.InProcess, m.DetectorSeconds, m.Lag, m.CommitErrors, m.ProduceErrors, m.StateEntries,
		m.StateBytes, m.SharedEntries, m.SharedDropped, m.Ruleset, m.Ready, m.Reloads, m.ReloadOK,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	cfg := e.Config()
	m.Ruleset.WithLabelValues(cfg.Name, cfg.Ruleset).Set(1)
	m.ReloadOK.Set(1)
	return m
}
