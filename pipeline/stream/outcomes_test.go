package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// assessed is what the test reads of an assessment message.
type assessed struct {
	DeclarationID string  `json:"declaration_id"`
	Score         float64 `json:"score"`
	SelectedBy    string  `json:"selected_by"`
	Findings      []struct {
		Detector string `json:"detector"`
	} `json:"findings"`
}

// Outcomes in stream mode, end to end on the embedded broker: outcomes
// produced from outside through the outcomes topic change the assessments
// of later declarations (the history detector learns the importer's hits),
// invalid outcomes get dead letters naming the field, an outcome of a
// declaration never assessed is counted apart, and the outcome-monitoring
// metrics attribute each outcome to the channel, selection, profile and
// detectors of its declaration's assessment, and pass the metrics linter.
func TestStreamOutcomes(t *testing.T) {
	brokers := embedded(t, 1)
	decls, _ := testkit.GenDecls(t, 1500, 43)
	count := map[string]int{}
	for _, d := range decls {
		count[d.Importer.ID]++
	}
	watched := ""
	for imp, n := range count {
		if n >= 8 && n <= 30 && (watched == "" || imp < watched) {
			watched = imp
		}
	}
	if watched == "" {
		t.Fatal("no importer with 8 to 30 declarations")
	}
	h := startStream(t, brokers, func(c *config.Config) {
		c.Lists["watch_importers"] = []string{watched} // profile WATCH-IMP matches it
		c.Random.Rate = 0.05
	})
	defer h.stop()
	produce := func(topic string, msgs []kafka.Message) {
		t.Helper()
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, BatchTimeout: 2 * time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
		defer w.Close()
		if err := w.WriteMessages(h.ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	assessments := func(want map[string]bool) map[string]*assessed {
		t.Helper()
		got := map[string]*assessed{}
		if !consumeEach(t, brokers, h.cfg.Stream.AssessmentsTopic, time.Minute, func(m kafka.Message) bool {
			if want[string(m.Key)] {
				var a assessed
				if err := json.Unmarshal(m.Value, &a); err != nil {
					t.Fatalf("assessment %s: %v", m.Key, err)
				}
				got[a.DeclarationID] = &a
			}
			return len(got) < len(want)
		}) {
			t.Fatalf("%d of %d assessments", len(got), len(want))
		}
		return got
	}
	ids := map[string]bool{}
	for _, d := range decls {
		ids[d.ID] = true
	}
	produce(h.cfg.Stream.DeclarationsTopic, keyedMessages(decls))
	first := assessments(ids)

	// Outcomes: every declaration of the watched importer inspected and a
	// hit; every random pick inspected, hits and clean alternating; one
	// outcome of a declaration never seen; two invalid ones.
	var outs []kafka.Message
	wantRandom := map[string]int{}
	last := decls[len(decls)-1].LodgedAt
	outcome := func(d *declaration.Declaration, hit bool) {
		o := declaration.Outcome{Schema: "outcome/v1", DeclarationID: d.ID, ImporterID: d.Importer.ID, InspectedAt: last.Add(time.Hour), Hit: hit}
		if hit {
			o.Revenue, o.Offence = 1000, "undervaluation"
		}
		outs = append(outs, kafka.Message{Key: []byte(d.Importer.ID), Value: o.AppendJSON(nil)})
	}
	nRandom := 0
	for _, d := range decls {
		a := first[d.ID]
		switch {
		case d.Importer.ID == watched:
			outcome(d, true)
		case a.SelectedBy == "random":
			hit := nRandom%2 == 0
			nRandom++
			outcome(d, hit)
			wantRandom[fmt.Sprint(hit)]++
		}
	}
	if wantRandom["true"] == 0 || wantRandom["false"] == 0 {
		t.Fatalf("random picks: %v", wantRandom)
	}
	ghost := *decls[0]
	ghost.ID = "NEVER-ASSESSED"
	outcome(&ghost, true)
	outs = append(outs,
		kafka.Message{Key: []byte("x"), Value: []byte(`{"schema":"outcome/v1","importer_id":"I","inspected_at":"2026-01-01T00:00:00Z","result":"hit"}`)},
		kafka.Message{Key: []byte("x"), Value: []byte(`not json`)})
	produce(h.cfg.Stream.OutcomesTopic, outs)
	dls := consume(t, brokers, h.cfg.Stream.DeadLetterTopic, 2, time.Minute)
	for _, m := range dls {
		dl := string(m.Value)
		if !strings.Contains(dl, `"source":"`+h.cfg.Stream.OutcomesTopic+`"`) {
			t.Errorf("dead letter not from the outcomes topic: %s", dl)
		}
	}
	if !strings.Contains(string(dls[0].Value)+string(dls[1].Value), "declaration_id") {
		t.Errorf("no dead letter names declaration_id:\n%s\n%s", dls[0].Value, dls[1].Value)
	}
	m := h.stream.Metrics
	for i := 0; i < 200 && testutil.ToFloat64(m.OutcomesUnmatched) < 1; i++ {
		time.Sleep(50 * time.Millisecond) // the ghost is the last valid outcome
	}

	// The watched importer's declarations again, under new ids, after the
	// outcomes: the history detector now knows its hits.
	var again []*declaration.Declaration
	againIDs := map[string]bool{}
	for _, d := range decls {
		if d.Importer.ID == watched {
			c := *d
			c.ID += "-AGAIN"
			c.LodgedAt = last.Add(2 * time.Hour)
			again = append(again, &c)
			againIDs[c.ID] = true
		}
	}
	produce(h.cfg.Stream.DeclarationsTopic, keyedMessages(again))
	second := assessments(againIDs)
	history := func(a *assessed) bool {
		for _, f := range a.Findings {
			if f.Detector == "history" {
				return true
			}
		}
		return false
	}
	var before, after float64
	withHistory := 0
	for _, d := range again {
		a := second[d.ID]
		b := first[strings.TrimSuffix(d.ID, "-AGAIN")]
		before += b.Score
		after += a.Score
		if history(b) {
			t.Errorf("%s had a history finding before any outcome", b.DeclarationID)
		}
		if history(a) {
			withHistory++
		}
	}
	t.Logf("watched importer %s: %d declarations; mean score %.1f before its outcomes, %.1f after; %d of them with a history finding",
		watched, len(again), before/float64(len(again)), after/float64(len(again)), withHistory)
	if withHistory < len(again)/2 || after <= before {
		t.Errorf("the outcomes did not change the importer's later assessments")
	}

	// Outcome monitoring.
	hits := func(labels ...string) float64 { return testutil.ToFloat64(m.Inspections.WithLabelValues(labels...)) }
	var randomHit, randomClean float64
	for _, ch := range []string{"green", "yellow", "red"} {
		randomHit += hits(ch, "random", "hit")
		randomClean += hits(ch, "random", "clean")
	}
	if randomHit != float64(wantRandom["true"]) || randomClean != float64(wantRandom["false"]) {
		t.Errorf("random sample outcomes: %v hits, %v clean; want %v", randomHit, randomClean, wantRandom)
	}
	if got := testutil.ToFloat64(m.ProfileInspections.WithLabelValues("WATCH-IMP", "hit")); got != float64(count[watched]) {
		t.Errorf("WATCH-IMP hits %v, want %d", got, count[watched])
	}
	if got := testutil.ToFloat64(m.DetectorInspections.WithLabelValues("profiles", "hit")); got < float64(count[watched]) {
		t.Errorf("detector profiles: %v hits, want at least %d", got, count[watched])
	}
	if got := testutil.ToFloat64(m.OutcomesUnmatched); got != 1 {
		t.Errorf("unmatched outcomes %v, want 1", got)
	}
	var text bytes.Buffer
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "riskmon_") {
			t.Errorf("metrics lint: %s: %s", p.Metric, p.Text)
		}
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "riskmon_inspection") || strings.HasPrefix(mf.GetName(), "riskmon_profile_insp") {
			fmt.Fprintf(&text, "%s %d series\n", mf.GetName(), len(mf.GetMetric()))
		}
	}
	t.Logf("random sample: %v hits of %v inspected; outcome metrics:\n%s", randomHit, randomHit+randomClean, text.String())
}

// After a failover, the outcomes of a partition are read only once its
// state is restored: outcomes already waiting in the topic when a fresh
// instance takes the partition find their declarations' records (restored
// from the pending topic); none is unmatched.
func TestOutcomesWaitForRestore(t *testing.T) {
	t.Parallel() // not timed: overlaps with the other waits on group joins
	brokers := embedded(t, 1)
	decls, _ := testkit.GenDecls(t, 4000, 47)
	h := startStream(t, brokers, nil)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), BatchTimeout: 2 * time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	defer w.Close()
	write := func(topic string, msgs []kafka.Message) {
		t.Helper()
		for i := range msgs {
			msgs[i].Topic = topic
		}
		if err := WriteMessages(w, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	write(h.cfg.Stream.DeclarationsTopic, keyedMessages(decls))
	consume(t, brokers, h.cfg.Stream.AssessmentsTopic, len(decls), time.Minute)
	h.stop()

	var outs []kafka.Message
	for _, d := range decls[:400] {
		o := declaration.Outcome{Schema: "outcome/v1", DeclarationID: d.ID, ImporterID: d.Importer.ID, InspectedAt: d.LodgedAt.Add(time.Hour)}
		outs = append(outs, kafka.Message{Key: []byte(d.Importer.ID), Value: o.AppendJSON(nil)})
	}
	write(h.cfg.Stream.OutcomesTopic, outs)

	// A fresh instance (its disk gone) in the same group.
	e, err := engine.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stream{Engine: e, Config: h.cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, brokers) }()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && testutil.ToFloat64(s.Metrics.Outcomes) < float64(len(outs)) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stream ended with %v", err)
	}
	read, unmatched, restored := testutil.ToFloat64(s.Metrics.Outcomes), testutil.ToFloat64(s.Metrics.OutcomesUnmatched), testutil.ToFloat64(s.Metrics.ChangelogRestored)
	t.Logf("the new instance restored %.0f records and read %.0f outcomes, %.0f unmatched", restored, read, unmatched)
	if read != float64(len(outs)) || unmatched != 0 || restored == 0 {
		t.Errorf("read %.0f of %d outcomes, %.0f unmatched (want none), %.0f records restored", read, len(outs), unmatched, restored)
	}
}
