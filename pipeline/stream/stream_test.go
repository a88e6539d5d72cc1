package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/batch"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// embedded starts an embedded broker for the test and returns its address.
func embedded(t *testing.T, partitions int) []string {
	t.Helper()
	return embeddedOrKafka(t, partitions, false)
}

// embeddedOrKafka is embedded, or the real broker named by RISKMON_KAFKA
// when realIfSet and it is set (fault tests run on both in .ci/run).
func embeddedOrKafka(t *testing.T, partitions int, realIfSet bool) []string {
	t.Helper()
	if addr := os.Getenv("RISKMON_KAFKA"); realIfSet && addr != "" {
		t.Logf("on Apache Kafka at %s", addr)
		return []string{addr}
	}
	b, err := StartEmbedded("127.0.0.1:0", partitions) // a port the system picks: no race with other tests
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return []string{b.Addr}
}

// keyedMessages are declarations as a clearance system sends them: keyed by
// importer.id, so that one importer stays on one partition.
func keyedMessages(decls []*declaration.Declaration) []kafka.Message {
	msgs := make([]kafka.Message, len(decls))
	for i, d := range decls {
		msgs[i] = kafka.Message{Key: []byte(d.Importer.ID), Value: d.AppendJSON(nil)}
	}
	return msgs
}

// streamHarness runs riskmon's stream mode against brokers and drives it from
// outside, as a user would, with an independent kafka-go client.
type streamHarness struct {
	t       *testing.T
	cfg     *config.Config
	cancel  context.CancelFunc
	done    chan error
	stream  *Stream
	brokers []string
	ctx     context.Context
}

func startStream(t *testing.T, brokers []string, mutate func(*config.Config), more ...string) *streamHarness {
	t.Helper()
	h := newStream(t, brokers, mutate, more...)
	h.start()
	return h
}

// oneWorker makes a stream assess one declaration at a time, as replay
// does with --batch 1: the tests that compare the two byte for byte use it.
func oneWorker(c *config.Config) { c.Stream.Workers = 1 }

// start runs the stream of a harness made by newStream.
func (h *streamHarness) start() {
	go func() { h.done <- h.stream.Run(h.ctx, h.brokers) }()
}

// newStream makes the stream of startStream without starting it, for tests
// that set its unexported fields first.
func newStream(t *testing.T, brokers []string, mutate func(*config.Config), more ...string) *streamHarness {
	t.Helper()
	brokers = append(brokers, more...)
	cfg := config.Default()
	cfg.Stream.Brokers = brokers
	suffix := fmt.Sprintf("-%d", time.Now().UnixNano())
	cfg.Stream.DeclarationsTopic += suffix
	cfg.Stream.OutcomesTopic += suffix
	cfg.Stream.AssessmentsTopic += suffix
	cfg.Stream.DeadLetterTopic += suffix
	cfg.Stream.Group += suffix
	if mutate != nil {
		mutate(cfg)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := NewSecurity(cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := EnsureTopics(ctx, brokers, cfg.Stream, sec); err != nil {
		t.Fatal(err)
	}
	// RISKMON_TEST_LOG=FILE keeps the stream's log (debug included) for a
	// failing test to be read.
	var logw io.Writer = io.Discard
	if p := os.Getenv("RISKMON_TEST_LOG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		logw = f
	}
	s := &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(logw).With().Timestamp().Logger(), Security: sec}
	return &streamHarness{t: t, cfg: cfg, cancel: cancel, done: make(chan error, 1), stream: s, brokers: brokers, ctx: ctx}
}

func (h *streamHarness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("stream ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Error("stream did not shut down within 30 s")
	}
}

// produce writes raw messages to a topic with an independent client, in
// order, keyed so that all go to one partition of a single-partition topic.
func produce(t *testing.T, brokers []string, topic string, values [][]byte) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll, MaxAttempts: 10, Transport: &kafka.Transport{}}
	defer w.Close()
	var msgs []kafka.Message
	for i, v := range values {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i%7)), Value: v})
	}
	for len(msgs) > 0 {
		n := min(len(msgs), 500)
		if err := WriteMessages(w, msgs[:n]...); err != nil {
			t.Fatalf("producing to %s: %v", topic, err)
		}
		msgs = msgs[n:]
	}
}

// consume reads n messages from a topic (all partitions) with an independent
// client, failing after the timeout.
func consume(t *testing.T, brokers []string, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	var got []kafka.Message
	if !consumeEach(t, brokers, topic, timeout, func(m kafka.Message) bool {
		got = append(got, m)
		return len(got) < n
	}) {
		t.Fatalf("%s: read %d of %d messages in %v", topic, len(got), n, timeout)
	}
	return got
}

// consumeEach reads every partition of topic from the beginning and hands
// each message to more until it returns false (then it returns true) or the
// timeout passes (false).
func consumeEach(t *testing.T, brokers []string, topic string, timeout time.Duration, more func(kafka.Message) bool) bool {
	t.Helper()
	parts := partitionsOf(t, brokers, topic)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make(chan kafka.Message, 256)
	for _, p := range parts {
		go func(p int) {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			}
		}(p.ID)
	}
	for {
		select {
		case m := <-out:
			if !more(m) {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

var assessedAt = regexp.MustCompile(`"assessed_at":"[^"]+"`)

// The stream mode's contract, end to end on a broker: every valid
// declaration gets one assessment (key: declaration id), every invalid one a
// dead letter naming the field and its source position, and on a single
// partition with one worker the assessments are exactly replay's.
func testStreamAgainstReplay(t *testing.T, brokers []string) {
	_, raw := testkit.GenDecls(t, 3000, 21)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	invalid, _ := os.ReadFile("../../declaration/testdata/declarations-invalid.jsonl")
	bad := bytes.Split(bytes.TrimSpace(invalid), []byte("\n"))
	var values [][]byte
	values = append(values, lines[:1500]...)
	values = append(values, bad...)
	values = append(values, lines[1500:]...)
	values = append(values, []byte{}) // an empty message

	h := startStream(t, brokers, oneWorker)
	defer h.stop()
	produce(t, brokers, h.cfg.Stream.DeclarationsTopic, values)

	got := consume(t, brokers, h.cfg.Stream.AssessmentsTopic, len(lines), 60*time.Second)
	dls := consume(t, brokers, h.cfg.Stream.DeadLetterTopic, len(bad)+1, 30*time.Second)

	// Replay the same declarations through a fresh engine.
	e, _ := engine.New(config.Default())
	var want bytes.Buffer
	if _, err := batch.Replay(e, batch.ReplayOptions{Input: bytes.NewReader(raw), InputName: "x", Output: &want, Errors: io.Discard, Batch: 1}); err != nil {
		t.Fatal(err)
	}
	wantLines := strings.Split(strings.TrimSpace(assessedAt.ReplaceAllString(want.String(), "")), "\n")
	sort.Slice(got, func(i, j int) bool { return got[i].Offset < got[j].Offset })
	if len(got) != len(wantLines) {
		t.Fatalf("%d assessments, want %d", len(got), len(wantLines))
	}
	for i, m := range got {
		if string(assessedAt.ReplaceAll(m.Value, nil)) != wantLines[i] {
			t.Fatalf("assessment %d differs from replay:\n got %s\nwant %s", i, assessedAt.ReplaceAll(m.Value, nil), wantLines[i])
		}
		var a struct {
			ID string `json:"declaration_id"`
		}
		json.Unmarshal(m.Value, &a)
		if string(m.Key) != a.ID {
			t.Fatalf("key %q for declaration %q", m.Key, a.ID)
		}
	}
	reasons := map[string]bool{}
	for _, m := range dls {
		var dl struct {
			Source    string `json:"source"`
			Partition int    `json:"partition"`
			Offset    int64  `json:"offset"`
			Reason    string `json:"reason"`
		}
		if err := json.Unmarshal(m.Value, &dl); err != nil {
			t.Fatalf("dead letter is not JSON: %s", m.Value)
		}
		if dl.Source != h.cfg.Stream.DeclarationsTopic || dl.Offset < 1500 {
			t.Errorf("dead letter position: %+v", dl)
		}
		reasons[dl.Reason] = true
	}
	for _, want := range []string{"items is empty", "items[line 1].gross_mass_kg must be > 0, got -5", "not valid JSON", "empty message"} {
		found := false
		for r := range reasons {
			found = found || strings.HasPrefix(r, want)
		}
		if !found {
			t.Errorf("no dead letter with reason %q in %v", want, reasons)
		}
	}
}

func TestStreamEmbedded(t *testing.T) {
	t.Parallel() // not timed: overlaps with the other waits on group joins
	testStreamAgainstReplay(t, embedded(t, 1))
}

// TestStreamKafka runs the same test against a real Apache Kafka broker when
// RISKMON_KAFKA names one (.ci/run starts one with deploy/local-kafka/start).
func TestStreamKafka(t *testing.T) {
	addr := os.Getenv("RISKMON_KAFKA")
	if addr == "" {
		t.Skip("set RISKMON_KAFKA=host:port to run against a real broker (.ci/run does)")
	}
	testStreamAgainstReplay(t, []string{addr})
}

// With several partitions, declarations keyed by importer keep each
// importer's order, and differ from replay only through the interleaving of
// importers in the shared statistics. The test measures how far: the share of
// assessments identical to replay's, with the same channel, and the mean
// score difference.
func TestStreamPartitionsAgainstReplay(t *testing.T) {
	brokers := embedded(t, 4)
	decls, raw := testkit.GenDecls(t, 4000, 23)
	h := startStream(t, brokers, func(c *config.Config) { c.Stream.Partitions, c.Stream.Workers = 4, 1 })
	defer h.stop()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: h.cfg.Stream.DeclarationsTopic, Balancer: &kafka.Hash{},
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	msgs := keyedMessages(decls)
	if err := WriteMessages(w, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got := consume(t, brokers, h.cfg.Stream.AssessmentsTopic, len(decls), 60*time.Second)
	// One lag gauge per partition read, each at 0 once all are read.
	lags := map[string]float64{}
	families, _ := h.stream.Metrics.Registry.Gather()
	for _, f := range families {
		if f.GetName() != "riskmon_consumer_lag_messages" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["topic"] == h.cfg.Stream.DeclarationsTopic {
				lags[labels["partition"]] = m.GetGauge().GetValue()
			}
		}
	}
	if len(lags) != 4 || lags["0"]+lags["1"]+lags["2"]+lags["3"] != 0 {
		t.Errorf("lag gauges of the 4 declaration partitions: %v", lags)
	}

	e, _ := engine.New(config.Default())
	var want bytes.Buffer
	if _, err := batch.Replay(e, batch.ReplayOptions{Input: bytes.NewReader(raw), InputName: "x", Output: &want, Errors: io.Discard, Batch: 1}); err != nil {
		t.Fatal(err)
	}
	type asmt struct {
		ID, Importer string  `json:"-"`
		Score        float64 `json:"score"`
		Channel      string  `json:"channel"`
		AssessedAt   string  `json:"assessed_at"`
	}
	parse := func(b []byte) (a asmt) {
		var m map[string]any
		json.Unmarshal(b, &m)
		json.Unmarshal(b, &a)
		a.ID, a.Importer = m["declaration_id"].(string), m["importer_id"].(string)
		return a
	}
	replay := map[string]asmt{}
	replayBytes := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(want.String()), "\n") {
		a := parse([]byte(l))
		replay[a.ID] = a
		replayBytes[a.ID] = assessedAt.ReplaceAllString(l, "")
	}
	seen := map[string]bool{}
	identical, sameChannel := 0, 0
	var diff float64
	byImporter := map[string][]asmt{}
	for _, m := range got {
		a := parse(m.Value)
		if seen[a.ID] {
			t.Fatalf("declaration %s assessed twice", a.ID)
		}
		seen[a.ID] = true
		r, ok := replay[a.ID]
		if !ok {
			t.Fatalf("assessment of unknown declaration %s", a.ID)
		}
		if string(assessedAt.ReplaceAll(m.Value, nil)) == replayBytes[a.ID] {
			identical++
		}
		if r.Channel == a.Channel {
			sameChannel++
		}
		if a.Score > r.Score {
			diff += a.Score - r.Score
		} else {
			diff += r.Score - a.Score
		}
		byImporter[a.Importer] = append(byImporter[a.Importer], a)
	}
	// Each importer's declarations were assessed in lodgement (id) order.
	for imp, as := range byImporter {
		sort.Slice(as, func(i, j int) bool { return as[i].ID < as[j].ID })
		for i := 1; i < len(as); i++ {
			t1, _ := time.Parse(time.RFC3339Nano, as[i-1].AssessedAt)
			t2, _ := time.Parse(time.RFC3339Nano, as[i].AssessedAt)
			if t2.Before(t1) {
				t.Fatalf("importer %s: %s assessed before %s", imp, as[i].ID, as[i-1].ID)
			}
		}
	}
	n := float64(len(got))
	t.Logf("4 partitions, 1 worker, %d declarations: %.1f%% identical to replay, %.1f%% same channel, mean |score difference| %.2f points",
		len(got), 100*float64(identical)/n, 100*float64(sameChannel)/n, diff/n)
	if float64(sameChannel)/n < 0.9 {
		t.Errorf("only %.1f%% of channels agree with replay", 100*float64(sameChannel)/n)
	}
}

// TestBrokerRestart stops the real broker mid-stream and starts it again:
// riskmon keeps running, reports not ready while it cannot produce, resumes
// by itself and loses nothing. It needs RISKMON_KAFKA and the local-kafka
// scripts (RISKMON_KAFKA_RESTART=1, as .ci/run sets).
func TestBrokerRestart(t *testing.T) {
	addr := os.Getenv("RISKMON_KAFKA")
	if addr == "" || os.Getenv("RISKMON_KAFKA_RESTART") == "" {
		t.Skip("set RISKMON_KAFKA and RISKMON_KAFKA_RESTART=1 to run (.ci/run does)")
	}
	brokers := []string{addr}
	h := startStream(t, brokers, nil)
	defer h.stop()
	decls, _ := testkit.GenDecls(t, 3000, 29)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: h.cfg.Stream.DeclarationsTopic, Balancer: &kafka.Hash{},
			BatchTimeout: 2 * time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}, MaxAttempts: 3}
		defer w.Close()
		for i := 0; i < len(decls); i += 30 {
			msgs := keyedMessages(decls[i:min(i+30, len(decls))])
			for w.WriteMessages(context.Background(), msgs...) != nil { // the broker is down: try again
				time.Sleep(500 * time.Millisecond)
			}
			time.Sleep(60 * time.Millisecond) // 100 batches over 6 s: the restart at 3 s lands mid-feed
		}
	}()
	time.Sleep(3 * time.Second)
	script := func(name string) {
		out, err := exec.Command("../../deploy/local-kafka/" + name).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))
	}
	script("stop")
	notReady := false
	for i := 0; i < 100 && !notReady; i++ {
		ready, _ := h.stream.ReadyState()
		notReady = !ready
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	script("start")
	<-fed
	// Every declaration's assessment, however many duplicates come first.
	ids := map[string]int{}
	messages := 0
	consumeEach(t, brokers, h.cfg.Stream.AssessmentsTopic, 3*time.Minute, func(m kafka.Message) bool {
		ids[string(m.Key)]++
		messages++
		return len(ids) < len(decls)
	})
	// Readiness returns once the consumer has rejoined its group, which
	// after a coordinator restart can take a session timeout and a join
	// backoff or two: allow 30 s, and say which condition held it back.
	readyAgain, why := false, ""
	for i := 0; i < 300 && !readyAgain; i++ {
		readyAgain, why = h.stream.ReadyState()
		time.Sleep(100 * time.Millisecond)
	}
	// What reached the input topic, to tell a loss by the feeding client
	// from a loss by riskmon.
	fedIDs := map[string]bool{}
	consumeEach(t, brokers, h.cfg.Stream.DeclarationsTopic, 30*time.Second, func(m kafka.Message) bool {
		if d, err := declaration.DecodeDeclaration(m.Value); err == nil {
			fedIDs[d.ID] = true
		}
		return len(fedIDs) < len(decls)
	})
	t.Logf("broker stopped and restarted mid-stream: not ready seen %v, ready again %v (%s), %d of %d declarations in the input topic, %d assessed (%d messages read)",
		notReady, readyAgain, why, len(fedIDs), len(decls), len(ids), messages)
	if !notReady || !readyAgain || len(ids) != len(decls) {
		t.Fatalf("not ready seen %v, ready again %v (%s), %d of %d assessed", notReady, readyAgain, why, len(ids), len(decls))
	}
}

// State survives a restart: a stream stopped after 2,000 declarations and
// started again from its checkpoint assesses the next 1,000 exactly as an
// uninterrupted replay of all 3,000 does. Without the checkpoint, the test
// measures how far they differ.
func TestStreamCheckpoint(t *testing.T) {
	t.Parallel() // not timed: overlaps with the other waits on group joins
	brokers := embedded(t, 1)
	_, raw := testkit.GenDecls(t, 3000, 37)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	e, _ := engine.New(config.Default())
	var want bytes.Buffer
	if _, err := batch.Replay(e, batch.ReplayOptions{Input: bytes.NewReader(raw), InputName: "x", Output: &want, Errors: io.Discard, Batch: 1}); err != nil {
		t.Fatal(err)
	}
	wantLines := strings.Split(strings.TrimSpace(assessedAt.ReplaceAllString(want.String(), "")), "\n")
	wantRaw := strings.Split(strings.TrimSpace(want.String()), "\n")

	run := func(restore bool) (identical, sameChannel int, restored float64) {
		dir := t.TempDir()
		var topics config.Stream
		h := startStream(t, brokers, func(c *config.Config) { c.Stream.StateDir, c.Stream.Workers = dir, 1 })
		topics = h.cfg.Stream
		produce(t, brokers, topics.DeclarationsTopic, lines[:2000])
		consume(t, brokers, topics.AssessmentsTopic, 2000, 60*time.Second)
		h.stop() // graceful: commits, then checkpoints
		if _, err := os.Stat(dir + "/meta.json"); err != nil {
			t.Fatalf("no checkpoint after shutdown: %v", err)
		}
		cfg := h.cfg
		if !restore {
			cfg.Stream.StateDir = ""
		}
		var e2 *engine.Engine
		if restore {
			var ok bool
			var why string
			var err error
			e2, ok, why, err = engine.NewFromState(cfg, dir)
			if err != nil || !ok {
				t.Fatalf("restore: %v %s", err, why)
			}
		} else {
			e2, _ = engine.New(cfg)
		}
		ctx, cancel := context.WithCancel(context.Background())
		s := &Stream{Engine: e2, Config: cfg.Stream, Metrics: NewMetrics(e2), Log: zerolog.New(io.Discard)}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, brokers) }()
		produce(t, brokers, topics.DeclarationsTopic, lines[2000:])
		got := consume(t, brokers, topics.AssessmentsTopic, 3000, 60*time.Second)
		cancel()
		<-done
		restored = testutil.ToFloat64(s.Metrics.ChangelogRestored)
		sort.Slice(got, func(i, j int) bool { return got[i].Offset < got[j].Offset })
		for i, m := range got[2000:] {
			g := string(assessedAt.ReplaceAll(m.Value, nil))
			if g == wantLines[2000+i] {
				identical++
			}
			var a, w struct {
				Channel string `json:"channel"`
			}
			json.Unmarshal(m.Value, &a)
			json.Unmarshal([]byte(wantRaw[2000+i]), &w)
			if a.Channel == w.Channel {
				sameChannel++
			}
		}
		return identical, sameChannel, restored
	}
	id, ch, restored := run(true)
	idCold, chCold, restoredCold := run(false)
	t.Logf("after a restart, of the next 1,000 assessments: with the checkpoint %d identical to an uninterrupted run (%d same channel); without it %d identical (%d same channel); changelog records restored: %.0f with the checkpoint, %.0f without",
		id, ch, idCold, chCold, restored, restoredCold)
	if id != 1000 || ch != 1000 {
		t.Errorf("with the checkpoint, %d of 1000 identical, %d same channel", id, ch)
	}
	// The shutdown's checkpoint was saved once every output was
	// acknowledged: it holds the whole changelog, and the restart reads none
	// of it again.
	if restored != 0 || restoredCold == 0 {
		t.Errorf("changelog records restored after a graceful restart: %.0f with the checkpoint (want 0), %.0f without (want all)", restored, restoredCold)
	}
}

// TestCheckpointHandover: a restart from a checkpoint reads the changelog
// from the offsets the checkpoint holds it to, and so reads only what was
// written after it, yet ends with the state a restore of the whole changelog
// gives. One instance assesses 1,000 declarations and checkpoints; a second,
// restored from that checkpoint, assesses 1,000 more (their records go to the
// changelog) and stops without a checkpoint (its disk is gone). Then two
// instances start from the first checkpoint, one with its offsets and one
// with them removed (a restore from the changelog's start), and assess the
// same last 1,000: they must be identical, and the first must have read
// fewer records.
func TestCheckpointHandover(t *testing.T) {
	t.Parallel() // not timed: overlaps with the other waits on group joins
	brokers := embedded(t, 1)
	decls, raw := testkit.GenDecls(t, 3000, 41)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	dir := t.TempDir()
	h := startStream(t, brokers, func(c *config.Config) { c.Stream.StateDir, c.Stream.Workers = dir, 1 })
	base := h.cfg.Stream
	produce(t, brokers, base.DeclarationsTopic, lines[:1000])
	consume(t, brokers, base.AssessmentsTopic, 1000, 60*time.Second)
	h.stop()
	snap := t.TempDir()
	if err := os.CopyFS(snap, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}

	var meta map[string]any
	if b, err := os.ReadFile(snap + "/meta.json"); err != nil || json.Unmarshal(b, &meta) != nil || meta["handover"] == nil {
		t.Fatalf("the checkpoint records no changelog offsets: %v %v", err, meta["handover"])
	}

	// The changelog and the pending topic go in pairs.
	pendingOf := func(changelog string) string {
		return strings.Replace(changelog, base.Changelog(), base.Pending(), 1)
	}
	// restart runs an instance from the checkpoint in stateDir on
	// changelog (and its pending topic), as group, produces feed to topic and waits
	// for its n assessments; it returns them (assessed_at removed) in order
	// and the changelog records it restored.
	restart := func(stateDir, changelog, group, topic string, feed [][]byte, n int) ([]string, float64, *engine.Engine) {
		cfg := config.Default()
		cfg.Stream = base
		cfg.Stream.ChangelogTopic, cfg.Stream.PendingTopic = changelog, pendingOf(changelog)
		cfg.Stream.Group, cfg.Stream.DeclarationsTopic, cfg.Stream.StateDir = group, topic, ""
		cfg.Stream.AssessmentsTopic = group + "-assessments"
		e, ok, why, err := engine.NewFromState(cfg, stateDir)
		if err != nil || !ok {
			t.Fatalf("restore: %v %s", err, why)
		}
		if err := EnsureTopics(context.Background(), brokers, cfg.Stream, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		s := &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard)}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, brokers) }()
		produce(t, brokers, topic, feed)
		got := consume(t, brokers, cfg.Stream.AssessmentsTopic, n, 60*time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stream ended with %v", err)
		}
		sort.Slice(got, func(i, j int) bool { return got[i].Offset < got[j].Offset })
		var out []string
		for _, m := range got {
			out = append(out, string(assessedAt.ReplaceAll(m.Value, nil)))
		}
		return out, testutil.ToFloat64(s.Metrics.ChangelogRestored), e
	}
	// The second instance: from the checkpoint, it reads nothing back, then
	// writes the next 1,000 declarations' records to the changelog; it
	// keeps no checkpoint.
	if _, n, _ := restart(dir, base.Changelog(), base.Group, base.DeclarationsTopic, lines[1000:2000], 1000); n != 0 {
		t.Errorf("restored %.0f changelog records from a checkpoint saved after every output was acknowledged", n)
	}

	// The last two instances each restore from a copy of the changelog (the
	// records they write must not reach the other), offset for offset.
	last := base.DeclarationsTopic + "-last"
	withOffsets, noOffsets := t.TempDir(), t.TempDir()
	clA, clB := base.Changelog()+"-a", base.Changelog()+"-b"
	for _, c := range []struct{ dir, changelog string }{{withOffsets, clA}, {noOffsets, clB}} {
		if err := os.CopyFS(c.dir, os.DirFS(snap)); err != nil {
			t.Fatal(err)
		}
		copyTopic(t, brokers, base.Changelog(), c.changelog)
		copyTopic(t, brokers, base.Pending(), pendingOf(c.changelog))
	}
	held := meta["handover"].(map[string]any)
	if held[base.Changelog()] == nil || held[base.Pending()] == nil {
		t.Fatalf("the checkpoint's offsets leave out a topic: %v", held)
	}
	meta["handover"] = map[string]any{clA: held[base.Changelog()], pendingOf(clA): held[base.Pending()]}
	writeJSON(t, withOffsets+"/meta.json", meta)
	delete(meta, "handover")
	writeJSON(t, noOffsets+"/meta.json", meta)
	got, nFrom, e := restart(withOffsets, clA, base.Group+"-a", last, lines[2000:], 1000)
	want, nWhole, _ := restart(noOffsets, clB, base.Group+"-b", last, nil, 1000)
	// The declarations the second instance assessed are known by their
	// records from the pending topic: their outcomes would still teach.
	pending := 0
	for _, d := range decls[1000:2000] {
		if slices.ContainsFunc(e.OutcomeRecords(d.Importer.ID, d.ID), func(r engine.Record) bool { return r.Decl }) {
			pending++
		}
	}
	if pending != 1000 {
		t.Errorf("%d of the 1,000 declarations assessed since the checkpoint have their records after the restart", pending)
	}
	t.Logf("changelog records restored: %.0f from the checkpoint's offsets, %.0f from the changelog's start", nFrom, nWhole)
	if nFrom == 0 || nFrom >= nWhole {
		t.Errorf("restored %.0f records from the checkpoint's offsets and %.0f from the start: want some, and fewer", nFrom, nWhole)
	}

	same := 0
	for i := range min(len(got), len(want)) {
		if got[i] == want[i] {
			same++
		} else if same == i {
			t.Logf("first difference at %d:\n%s\n%s", i, got[i], want[i])
		}
	}
	if same != 1000 {
		t.Errorf("%d of 1000 assessments identical after a restore from the checkpoint's offsets and one from the changelog's start", same)
	}
}

// Rebalances: a second and a third instance join the group mid-stream and
// the first leaves. Nothing is lost, and each importer's declarations are
// still assessed in lodgement order.
func TestStreamRebalance(t *testing.T) {
	t.Parallel() // not timed: overlaps with the other waits on group joins
	brokers := embeddedOrKafka(t, 4, true)
	decls, _ := testkit.GenDecls(t, 4000, 41)
	first := startStream(t, brokers, func(c *config.Config) { c.Stream.Partitions = 4 })
	cfg := first.cfg
	join := func() *streamHarness {
		e, _ := engine.New(cfg)
		ctx, cancel := context.WithCancel(context.Background())
		s := &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard)}
		h := &streamHarness{t: t, cfg: cfg, cancel: cancel, done: make(chan error, 1), stream: s}
		go func() { h.done <- s.Run(ctx, brokers) }()
		return h
	}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: cfg.Stream.DeclarationsTopic, Balancer: &kafka.Hash{},
			BatchTimeout: 2 * time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
		defer w.Close()
		for i := 0; i < len(decls); i += 40 {
			msgs := keyedMessages(decls[i:min(i+40, len(decls))])
			w.WriteMessages(context.Background(), msgs...)
			time.Sleep(80 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	second := join()
	time.Sleep(2 * time.Second)
	third := join()
	time.Sleep(2 * time.Second)
	first.stop()
	<-fed
	type seen struct {
		importer string
		at       time.Time
	}
	first2 := map[string]seen{} // earliest assessment of each declaration
	messages := 0
	deadline := time.Now().Add(2 * time.Minute)
	for len(first2) < len(decls) && time.Now().Before(deadline) {
		clear(first2)
		consume(t, brokers, cfg.Stream.AssessmentsTopic, len(decls), 60*time.Second)
		// consume waited for at least len(decls) messages; now read them all.
		got := consumeAll(t, brokers, cfg.Stream.AssessmentsTopic)
		messages = len(got)
		for _, m := range got {
			var a struct {
				ID         string    `json:"declaration_id"`
				Importer   string    `json:"importer_id"`
				AssessedAt time.Time `json:"assessed_at"`
			}
			json.Unmarshal(m.Value, &a)
			if s, ok := first2[a.ID]; !ok || a.AssessedAt.Before(s.at) {
				first2[a.ID] = seen{a.Importer, a.AssessedAt}
			}
		}
	}
	second.stop()
	third.stop()
	byImporter := map[string][]string{}
	for _, d := range decls {
		byImporter[d.Importer.ID] = append(byImporter[d.Importer.ID], d.ID)
	}
	outOfOrder := 0
	for _, ids := range byImporter {
		for i := 1; i < len(ids); i++ {
			if first2[ids[i]].at.Before(first2[ids[i-1]].at) {
				outOfOrder++
			}
		}
	}
	t.Logf("two instances joined and one left mid-stream: %d of %d declarations assessed (%d lost), %d assessment messages (%d duplicates), %d importer-order inversions",
		len(first2), len(decls), len(decls)-len(first2), messages, messages-len(first2), outOfOrder)
	if len(first2) != len(decls) || outOfOrder > 0 {
		t.Fatalf("%d of %d assessed, %d order inversions", len(first2), len(decls), outOfOrder)
	}
}

// partitionsOf lists a topic's partitions.
func partitionsOf(t *testing.T, brokers []string, topic string) []kafka.Partition {
	t.Helper()
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	return parts
}

// consumeAll reads every message currently in a topic.
func consumeAll(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	parts := partitionsOf(t, brokers, topic)
	var out []kafka.Message
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				break
			}
			out = append(out, m)
		}
		cancel()
		r.Close()
	}
	return out
}

// copyTopic copies partition 0 of topic from to topic to (made with one
// partition), message for message, so that the copy's offsets are the
// original's.
func copyTopic(t *testing.T, brokers []string, from, to string) {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", brokers[0], from, 0)
	if err != nil {
		t.Fatal(err)
	}
	end, err := conn.ReadLastOffset()
	if err == nil {
		err = conn.CreateTopics(kafka.TopicConfig{Topic: to, NumPartitions: 1, ReplicationFactor: 1})
	}
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	msgs := consume(t, brokers, from, int(end), 60*time.Second)
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].Offset < msgs[j].Offset })
	for i, m := range msgs {
		if m.Partition != 0 || m.Offset != int64(i) {
			t.Fatalf("copying %s: message %d is at %d/%d (want one partition, offsets from 0)", from, i, m.Partition, m.Offset)
		}
		msgs[i] = kafka.Message{Key: m.Key, Value: m.Value}
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: to, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll,
		MaxAttempts: 10, Transport: &kafka.Transport{}}
	defer w.Close()
	for len(msgs) > 0 {
		n := min(len(msgs), 500)
		if err := WriteMessages(w, msgs[:n]...); err != nil {
			t.Fatalf("copying to %s: %v", to, err)
		}
		msgs = msgs[n:]
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
