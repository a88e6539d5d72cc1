package stream

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/riskmon/riskmon/declaration"
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
	GroupLag        *prometheus.GaugeVec     // topic, partition
	GroupCommitted  *prometheus.GaugeVec     // topic, partition
	CommitErrors    prometheus.Counter
	ProduceErrors   prometheus.Counter
	StateEntries    prometheus.GaugeFunc
	StateBytes      prometheus.GaugeFunc
	StateEvicted    prometheus.CounterFunc
	PendingEntries  prometheus.GaugeFunc
	PendingBytes    prometheus.GaugeFunc
	PendingLost     prometheus.CounterFunc
	SharedEntries   prometheus.GaugeFunc
	SharedDropped   prometheus.CounterFunc
	Ready           prometheus.Gauge
	Reloads         *prometheus.CounterVec // result
	ReloadOK        prometheus.Gauge
	ModelTrainings  *prometheus.CounterVec // result: active, inactive, failure

	// Outcome monitoring (see engine.Attribution).
	Inspections         *prometheus.CounterVec // channel, selected_by, result
	InspectionRevenue   *prometheus.CounterVec // channel, selected_by
	ProfileInspections  *prometheus.CounterVec // profile, result
	DetectorInspections *prometheus.CounterVec // detector, result
	OutcomesUnmatched   prometheus.Counter
	OutcomesRepeated    prometheus.Counter
	DeclsRepeated       prometheus.CounterFunc
	Workers             prometheus.Gauge

	// State handover (see changelog.go).
	ChangelogRecords   prometheus.Counter
	ChangelogRestored  prometheus.Counter
	ChangelogRestoring prometheus.Gauge
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
			Help: "Messages this instance has still to read on a partition it holds: at each fetch, and every 5 s from the partition's end offset (so it grows while nothing is read)."}, []string{"topic", "partition"}),
		GroupLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "riskmon_group_lag_messages",
			Help: "Messages of an input partition the consumer group has not committed (end offset minus committed offset), every partition whoever holds it, every 5 s: the same on each instance."}, []string{"topic", "partition"}),
		GroupCommitted: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "riskmon_group_committed_offset",
			Help: "The consumer group's committed offset on an input partition, every 5 s (the same on each instance): a partition whose offset stays while its lag is above 0 is consumed by nobody."}, []string{"topic", "partition"}),
		CommitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_commit_errors_total",
			Help: "Failed offset commits (retried on the next round)."}),
		ProduceErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_produce_errors_total",
			Help: "Failed produce attempts of assessments and dead letters (retried until acknowledged)."}),
		StateEntries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_state_entries",
			Help: "Per-entity records held (importers, parties)."}, func() float64 { n, _, _ := e.Store().Stats(); return float64(n) }),
		StateBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_state_bytes",
			Help: "Bytes allocated for per-entity records (at most state.capacity_mb)."}, func() float64 { _, b, _ := e.Store().Stats(); return float64(b) }),
		StateEvicted: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "riskmon_state_evictions_total",
			Help: "Per-entity records evicted to stay within state.capacity_mb, old and unused first."}, func() float64 { _, _, ev := e.Store().Stats(); return float64(ev) }),
		PendingEntries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_pending_entries",
			Help: "Records of assessed declarations kept for their outcomes (superseded copies included)."}, func() float64 { n, _ := e.Store().DeclStats(); return float64(n) }),
		PendingBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_pending_bytes",
			Help: "Bytes used by the records of assessed declarations, in memory or on disk with state.pending_dir (at most about state.pending_mb; the oldest go first)."}, func() float64 { _, b := e.Store().DeclStats(); return float64(b) }),
		PendingLost: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "riskmon_pending_lost_total",
			Help: "Records of assessed declarations lost to disk errors in state.pending_dir (their outcomes then teach only their importer)."}, func() float64 { return float64(e.Store().DeclLost()) }),
		SharedEntries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskmon_shared_statistics_entries",
			Help: "Shared statistics held in memory (peer baselines, route counts, history rates)."}, func() float64 { return float64(e.Shared().Len()) }),
		SharedDropped: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "riskmon_shared_statistics_evictions_total",
			Help: "Shared statistics dropped to stay within state.shared_entries."}, func() float64 { return float64(e.Shared().Dropped()) }),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "riskmon_ready",
			Help: "1 when consuming and producing, 0 otherwise."}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_config_reloads_total",
			Help: "Configuration reloads (SIGHUP, POST /-/reload, --config.watch), by result: success or failure (the old configuration stays)."}, []string{"result"}),
		ReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "riskmon_config_last_reload_successful",
			Help: "1 if the last configuration reload succeeded (or none was tried), 0 if it failed."}),
		ModelTrainings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_model_trainings_total",
			Help: "Trainings of the risk model, by result: active (it scores), inactive (no better than the rule score on the validation labels), failure."}, []string{"result"}),
		Inspections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_inspections_total",
			Help: "Inspection outcomes of declarations assessed here, by the channel and selection riskmon gave them and by result (hit or clean). The selected_by=\"random\" hit rate estimates non-compliance in the whole flow."},
			[]string{"channel", "selected_by", "result"}),
		InspectionRevenue: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_inspection_revenue_total",
			Help: "Revenue recovered by inspections (outcome revenue), by the channel and selection riskmon gave the declaration."}, []string{"channel", "selected_by"}),
		ProfileInspections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_profile_inspections_total",
			Help: "Inspection outcomes of declarations a risk profile matched, by profile id and result."}, []string{"profile", "result"}),
		DetectorInspections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "riskmon_detector_inspections_total",
			Help: "Inspection outcomes of declarations a detector had a finding on, by detector and result."}, []string{"detector", "result"}),
		OutcomesUnmatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_outcomes_unmatched_total",
			Help: "Valid outcomes of declarations not assessed here or no longer remembered (evicted from the state store): learned from, not attributed."}),
		OutcomesRepeated: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_outcomes_repeated_total",
			Help: "Outcomes of declarations whose outcome was already counted (redeliveries): counted once."}),
		DeclsRepeated: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "riskmon_declarations_repeated_total",
			Help: "Declarations that came again under an id assessed before (redeliveries after a crash or a rebalance, resubmissions): assessed again, not learned from again."}, func() float64 { return float64(e.Repeats()) }),
		Workers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "riskmon_workers",
			Help: "Assessment workers of this instance (declarations are routed to them by importer)."}),
		ChangelogRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_changelog_records_total",
			Help: "State records produced to the changelog topic (each importer's state) and the pending topic (each declaration's, until its outcome), handed over when a partition moves."}),
		ChangelogRestored: prometheus.NewCounter(prometheus.CounterOpts{Name: "riskmon_changelog_restored_records_total",
			Help: "State records read back from the changelog and pending topics when this instance was given a partition (from their start, or from where its checkpoint or last restore left them)."}),
		ChangelogRestoring: prometheus.NewGauge(prometheus.GaugeOpts{Name: "riskmon_changelog_restoring_partitions",
			Help: "Partitions whose state is being read back from the changelog now (their declarations wait for it)."}),
	}
	for _, c := range []prometheus.Collector{m.Inspections, m.InspectionRevenue, m.ProfileInspections, m.DetectorInspections,
		m.OutcomesUnmatched, m.OutcomesRepeated, m.DeclsRepeated, m.Workers, m.ChangelogRecords, m.ChangelogRestored, m.ChangelogRestoring, rateCollector{e}, m.Declarations, m.Outcomes, m.Assessments, m.Findings, m.DeadLetters,
		m.LodgedToAssess, m.InProcess, m.DetectorSeconds, m.Lag, m.GroupLag, m.GroupCommitted, m.CommitErrors, m.ProduceErrors, m.StateEntries,
		m.StateBytes, m.StateEvicted, m.PendingEntries, m.PendingBytes, m.PendingLost, m.SharedEntries, m.SharedDropped, rulesetCollector{e}, m.Ready, m.Reloads, m.ReloadOK, m.ModelTrainings, modelCollector{e},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	// Known label values start at 0, so that a rate or an alert on them
	// has a series before the first event.
	for _, r := range []string{"success", "failure"} {
		m.Reloads.WithLabelValues(r)
	}
	// The first red by score after a start is an increase, not a new series
	// (RiskmonRedSelectionStopped reads it).
	m.Assessments.WithLabelValues("red", "score")
	m.ReloadOK.Set(1)
	return m
}

// ObserveOutcome counts an applied outcome by how it was assessed.
func (m *Metrics) ObserveOutcome(o *declaration.Outcome, at engine.Attribution) {
	switch {
	case at.Repeat:
		m.OutcomesRepeated.Inc()
		return
	case !at.Known:
		m.OutcomesUnmatched.Inc()
		return
	}
	result := "clean"
	if o.Hit {
		result = "hit"
	}
	ch := at.Channel.String()
	m.Inspections.WithLabelValues(ch, at.SelectedBy, result).Inc()
	m.InspectionRevenue.WithLabelValues(ch, at.SelectedBy).Add(max(o.Revenue, 0))
	for _, p := range at.Profiles {
		m.ProfileInspections.WithLabelValues(p, result).Inc()
	}
	for _, d := range at.Detectors {
		m.DetectorInspections.WithLabelValues(d, result).Inc()
	}
}

// rulesetCollector reports the engine's active configuration at scrape
// time: a reload swaps it in one step, so a scrape sees the old ruleset or
// the new one, never both and never neither.
type rulesetCollector struct{ e *engine.Engine }

var rulesetInfo = prometheus.NewDesc("riskmon_ruleset_info",
	"The active detector configuration: 1 for its name and ruleset id.", []string{"name", "ruleset"}, nil)

func (rulesetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rulesetInfo }

func (c rulesetCollector) Collect(ch chan<- prometheus.Metric) {
	cfg := c.e.Config()
	ch <- prometheus.MustNewConstMetric(rulesetInfo, prometheus.GaugeValue, 1, cfg.Name, cfg.Ruleset)
}

// rateCollector reports the channel thresholds, the inspection-rate targets
// and the recent channel shares at scrape time.
type rateCollector struct{ e *engine.Engine }

var (
	channelThreshold = prometheus.NewDesc("riskmon_channel_threshold",
		"Score at or above which a declaration goes to the channel: fixed (scoring.yellow, scoring.red) or following the inspection-rate targets.", []string{"channel"}, nil)
	channelShare = prometheus.NewDesc("riskmon_channel_share",
		"Share of recent declarations (about the last scoring.rates.window, or all since start) sent to the channel by score or profile; random compliance picks counted by that channel.", []string{"channel"}, nil)
	channelTarget = prometheus.NewDesc("riskmon_channel_target_share",
		"Inspection-rate target of the channel (scoring.rates); absent with fixed thresholds.", []string{"channel"}, nil)
)

func (rateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- channelThreshold
	ch <- channelShare
	ch <- channelTarget
}

func (c rateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.Rates()
	ch <- prometheus.MustNewConstMetric(channelThreshold, prometheus.GaugeValue, st.Yellow, "yellow")
	ch <- prometheus.MustNewConstMetric(channelThreshold, prometheus.GaugeValue, st.Red, "red")
	for i, name := range []string{"green", "yellow", "red"} {
		ch <- prometheus.MustNewConstMetric(channelShare, prometheus.GaugeValue, st.Shares[i], name)
	}
	if st.Targets {
		ch <- prometheus.MustNewConstMetric(channelTarget, prometheus.GaugeValue, st.TargetYel, "yellow")
		ch <- prometheus.MustNewConstMetric(channelTarget, prometheus.GaugeValue, st.TargetRed, "red")
	}
}

// modelCollector reports the current risk model at scrape time.
type modelCollector struct{ e *engine.Engine }

var (
	modelInfo = prometheus.NewDesc("riskmon_model_info",
		"The current risk model: 1 for its name, whether it scores (active) and where it came from (trained, or the file).", []string{"model", "active", "source"}, nil)
	modelTrainedAt = prometheus.NewDesc("riskmon_model_last_training_timestamp_seconds",
		"When the current model was trained (Unix time).", nil, nil)
	modelDuration = prometheus.NewDesc("riskmon_model_training_duration_seconds",
		"How long training the current model took.", nil, nil)
	modelLabels = prometheus.NewDesc("riskmon_model_training_labels",
		"Labelled declarations the current model was trained on.", nil, nil)
	modelAUC = prometheus.NewDesc("riskmon_model_validation_auc",
		"ROC AUC on the most recent labels, held out from training: of the model, and of the rule score alone.", []string{"scorer"}, nil)
	modelLogLoss = prometheus.NewDesc("riskmon_model_validation_log_loss",
		"Log-loss of the current model on the held-out most recent labels.", nil, nil)
	modelWeight = prometheus.NewDesc("riskmon_model_blend_weight",
		"The model's share of the blend with the calibrated rule score, in log-odds (hits / (hits + model.blend_hits)).", nil, nil)
	modelLabelled = prometheus.NewDesc("riskmon_model_labels_total",
		"Outcomes matched to the features of a declaration assessed here (training rows).", nil, nil)
	modelUnmatched = prometheus.NewDesc("riskmon_model_outcomes_unmatched_total",
		"Outcomes of declarations not assessed here, or whose features were evicted: only the importer they name learns.", nil, nil)
)

func (c modelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{modelInfo, modelTrainedAt, modelDuration, modelLabels, modelAUC, modelLogLoss, modelWeight, modelLabelled, modelUnmatched} {
		ch <- d
	}
}

func (c modelCollector) Collect(ch chan<- prometheus.Metric) {
	labels, unmatched := c.e.ModelLabels()
	ch <- prometheus.MustNewConstMetric(modelLabelled, prometheus.CounterValue, float64(labels))
	ch <- prometheus.MustNewConstMetric(modelUnmatched, prometheus.CounterValue, float64(unmatched))
	t := c.e.Model()
	if t == nil {
		return
	}
	source := "trained"
	if t.FromFile != "" {
		source = t.FromFile
	}
	ch <- prometheus.MustNewConstMetric(modelInfo, prometheus.GaugeValue, 1, t.Name, strconv.FormatBool(t.Active), source)
	ch <- prometheus.MustNewConstMetric(modelTrainedAt, prometheus.GaugeValue, float64(t.At.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(modelDuration, prometheus.GaugeValue, t.Report.Duration.Seconds())
	ch <- prometheus.MustNewConstMetric(modelLabels, prometheus.GaugeValue, float64(t.Labels))
	ch <- prometheus.MustNewConstMetric(modelWeight, prometheus.GaugeValue, t.Weight)
	if !math.IsNaN(t.Report.ValidAUC) {
		ch <- prometheus.MustNewConstMetric(modelAUC, prometheus.GaugeValue, t.Report.ValidAUC, "model")
	}
	if !math.IsNaN(t.RuleAUC) {
		ch <- prometheus.MustNewConstMetric(modelAUC, prometheus.GaugeValue, t.RuleAUC, "rules")
	}
	if !math.IsNaN(t.Report.ValidLogLoss) {
		ch <- prometheus.MustNewConstMetric(modelLogLoss, prometheus.GaugeValue, t.Report.ValidLogLoss)
	}
}
