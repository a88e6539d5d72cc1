package stream

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// produceFault makes the broker refuse riskmon's outputs.
type produceFault interface {
	set(t *testing.T, on bool)
	// rejected is the number of distinct assessments refused since the
	// last reset, or -1 when the broker cannot tell.
	rejected() int
	reset()
	name() string
	// topicConfig is what a topic recreated during the fault needs to
	// keep failing.
	topicConfig() []kafka.ConfigEntry
}

// kfakeFault answers every produce request to the output topics with
// NOT_ENOUGH_REPLICAS (what a real broker answers to acks=all while its
// in-sync replicas are too few), through a kfake control function.
type kfakeFault struct {
	c      *kfake.Cluster
	topics map[string]bool // output topic -> holds assessments
	on     atomic.Bool
	mu     sync.Mutex
	keys   map[string]bool
}

func newKfakeFault(c *kfake.Cluster, assessments, deadLetters string) *kfakeFault {
	f := &kfakeFault{c: c, topics: map[string]bool{assessments: true, deadLetters: false}, keys: map[string]bool{}}
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if !f.on.Load() {
			return nil, nil, false
		}
		for _, rt := range req.Topics {
			if _, ok := f.topics[rt.Topic]; !ok {
				return nil, nil, false
			}
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
				if f.topics[rt.Topic] {
					f.count(rp.Records)
				}
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return f
}

// count records the keys (declaration ids) of a refused record batch.
func (f *kfakeFault) count(batch []byte) {
	var b kmsg.RecordBatch
	if b.ReadFrom(batch) != nil || b.Attributes&0x7 != 0 { // kafka-go sends them uncompressed
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	raw := b.Records
	for range b.NumRecords {
		var r kmsg.Record
		if r.ReadFrom(raw) != nil {
			return
		}
		f.keys[string(r.Key)] = true
		_, n := binary.Varint(raw) // the record's length prefix
		raw = raw[n+int(r.Length):]
	}
}

func (f *kfakeFault) set(_ *testing.T, on bool) { f.on.Store(on) }
func (f *kfakeFault) rejected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.keys)
}
func (f *kfakeFault) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.keys)
}
func (f *kfakeFault) name() string                     { return "kfake answers produce requests with NOT_ENOUGH_REPLICAS" }
func (f *kfakeFault) topicConfig() []kafka.ConfigEntry { return nil }

// sizeFault sets max.message.bytes of the output topics on a real broker
// below the size of any output, so that it refuses every produce with
// MESSAGE_TOO_LARGE until the setting is restored. Unlike a stopped broker,
// it fails the produce requests themselves while fetching goes on.
type sizeFault struct {
	addr   string
	topics []string
}

func (f *sizeFault) set(t *testing.T, on bool) {
	t.Helper()
	v := "1048588" // Kafka's default
	if on {
		v = "64"
	}
	req := &kafka.IncrementalAlterConfigsRequest{}
	for _, topic := range f.topics {
		req.Resources = append(req.Resources, kafka.IncrementalAlterConfigsRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "max.message.bytes", Value: v, ConfigOperation: kafka.ConfigOperationSet}}})
	}
	resp, err := (&kafka.Client{Addr: kafka.TCP(f.addr)}).IncrementalAlterConfigs(context.Background(), req)
	if err != nil {
		t.Fatalf("setting max.message.bytes=%s: %v", v, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("setting max.message.bytes=%s on %s: %v", v, r.ResourceName, r.Error)
		}
	}
}
func (f *sizeFault) topicConfig() []kafka.ConfigEntry {
	return []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "64"}}
}
func (f *sizeFault) rejected() int { return -1 }
func (f *sizeFault) reset()        {}
func (f *sizeFault) name() string {
	return "Apache Kafka refuses produce requests with MESSAGE_TOO_LARGE (output topics' max.message.bytes=64)"
}

// deleteTopics deletes topics and waits until the broker no longer lists
// them.
func deleteTopics(t *testing.T, brokers []string, topics ...string) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
	resp, err := cl.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics})
	if err != nil {
		t.Fatalf("deleting %v: %v", topics, err)
	}
	for topic, err := range resp.Errors {
		if err != nil {
			t.Fatalf("deleting %s: %v", topic, err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{})
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, mt := range md.Topics {
			for _, topic := range topics {
				if mt.Name == topic {
					left++
				}
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v still listed 30 s after their deletion", topics)
		}
	}
}

// createTopics creates single-partition topics, retrying while the broker
// still finishes deleting them.
func createTopics(t *testing.T, brokers []string, cfg []kafka.ConfigEntry, topics ...string) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
	for deadline := time.Now().Add(30 * time.Second); len(topics) > 0; time.Sleep(200 * time.Millisecond) {
		req := &kafka.CreateTopicsRequest{}
		for _, topic := range topics {
			req.Topics = append(req.Topics, kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: cfg})
		}
		resp, err := cl.CreateTopics(context.Background(), req)
		if err != nil {
			t.Fatalf("creating %v: %v", topics, err)
		}
		var left []string
		for _, topic := range topics {
			if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
				if time.Now().After(deadline) {
					t.Fatalf("creating %s: %v", topic, err)
				}
				left = append(left, topic)
			}
		}
		topics = left
	}
}

// committedOffset is the group's committed offset of partition 0 of topic,
// -1 when none.
func committedOffset(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	resp, err := (&kafka.Client{Addr: kafka.TCP(brokers...)}).OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{topic: {0}}})
	if err != nil {
		t.Fatalf("fetching the committed offset of %s: %v", group, err)
	}
	if resp.Error != nil {
		t.Fatalf("fetching the committed offset of %s: %v", group, resp.Error)
	}
	parts := resp.Topics[topic]
	if len(parts) == 0 {
		return -1
	}
	if parts[0].Error != nil {
		t.Fatalf("fetching the committed offset of %s: %v", group, parts[0].Error)
	}
	return parts[0].CommittedOffset
}

// outputsByInput reads the assessments and dead letters so far and returns,
// for each input offset of the declarations topic, how many outputs it has.
func outputsByInput(t *testing.T, brokers []string, st config.Stream, idOffset map[string]int64) map[int64]int {
	t.Helper()
	out := map[int64]int{}
	for _, m := range consumeAll(t, brokers, st.AssessmentsTopic) {
		off, ok := idOffset[string(m.Key)]
		if !ok {
			t.Fatalf("assessment of unknown declaration %q", m.Key)
		}
		out[off]++
	}
	for _, m := range consumeAll(t, brokers, st.DeadLetterTopic) {
		var dl struct {
			Source string `json:"source"`
			Offset int64  `json:"offset"`
		}
		if err := json.Unmarshal(m.Value, &dl); err != nil || dl.Source != st.DeclarationsTopic {
			t.Fatalf("dead letter %s", m.Value)
		}
		out[dl.Offset]++
	}
	return out
}

// Produce failures: riskmon's outputs are refused for well over 1,024
// messages, in both ways a producer sees it. The first instance has its
// produce requests refused by the broker (the completion hook's path): it
// holds its inputs uncommitted, says why it is not ready, pauses fetching at
// its in-flight bound, and shuts down within shutdown_seconds although
// nothing can be produced. The second instance takes the same uncommitted
// inputs with the output topics deleted, so that the writer refuses the
// outputs itself (WriteMessages' own error); then the topics come back and
// the broker refuses the produce requests again; then it accepts them. The
// failed outputs are retried in batches: every input gets at least one
// output (an assessment, or a dead letter for an invalid one), every offset
// is committed, and the stream is ready again.
//
// On the embedded broker a kfake control function fails the produce
// requests; with RISKMON_KAFKA, Apache Kafka refuses them for the output
// topics' max.message.bytes (see sizeFault).
func TestProduceFailures(t *testing.T) {
	const (
		valid, invalid = 3000, 30
		limit          = 2000 // in-flight bound of the test's instances
		shutdown       = 3    // seconds
	)
	var brokers []string
	var emb *Embedded
	if addr := os.Getenv("RISKMON_KAFKA"); addr != "" {
		brokers = []string{addr}
	} else {
		var err error
		if emb, err = StartEmbedded("127.0.0.1:0", 1); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(emb.Close)
		brokers = []string{emb.Addr}
	}
	first := newStream(t, brokers, func(c *config.Config) { c.Stream.ShutdownSeconds = shutdown; c.Stream.Workers = 2 })
	st := first.cfg.Stream
	var fault produceFault
	if emb != nil {
		fault = newKfakeFault(emb.cluster, st.AssessmentsTopic, st.DeadLetterTopic)
	} else {
		fault = &sizeFault{addr: brokers[0], topics: []string{st.AssessmentsTopic, st.DeadLetterTopic}}
	}
	t.Logf("fault: %s", fault.name())
	fault.set(t, true)
	defer fault.set(t, false)
	first.stream.maxInFlight = limit
	first.start()

	decls, _ := testkit.GenDecls(t, valid, 47)
	msgs := keyedMessages(decls)
	var in []kafka.Message
	idOffset := map[string]int64{} // declaration id -> its input offset
	for i, m := range msgs {
		idOffset[decls[i].ID] = int64(len(in))
		in = append(in, m)
		if i%(valid/invalid) == 0 {
			in = append(in, kafka.Message{Key: m.Key, Value: fmt.Appendf(nil, `{"id":"BAD-%d"}`, i)})
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: st.DeclarationsTopic, Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	if err := WriteMessages(w, in...); err != nil {
		t.Fatalf("producing the declarations: %v", err)
	}
	w.Close()

	// failing waits until an instance holds limit inputs unacknowledged,
	// with readiness naming the producer's failure, and when refused, until
	// the broker has refused more than 1,024 distinct outputs (where it can
	// tell).
	failing := func(h *streamHarness, because string, refused bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !h.stream.health.running.Load() { // Run has made its tracker
			time.Sleep(10 * time.Millisecond)
		}
		for {
			ok, why := h.stream.ReadyState()
			n, r := h.stream.tracker.pending(), fault.rejected()
			if n >= limit && (!refused || r < 0 || r > 1024) && !ok && strings.Contains(why, "producer: last produce failed") && strings.Contains(why, because) {
				t.Logf("%d inputs in flight (fetching paused), %d distinct assessments refused, %v produce errors; %q",
					n, r, value(h.stream.Metrics.ProduceErrors), why)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 90 s: %d in flight, %d refused, ready %v %q", n, r, ok, why)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	failing(first, "producing", true)
	start := time.Now()
	first.cancel()
	select {
	case err := <-first.done:
		took := time.Since(start)
		t.Logf("first instance stopped %.1fs after cancellation (shutdown_seconds %d) while produces failed", took.Seconds(), shutdown)
		if err != nil {
			t.Errorf("first instance: %v", err)
		}
		if took > (shutdown+2)*time.Second {
			t.Errorf("shutdown took %v with shutdown_seconds %d", took, shutdown)
		}
	case <-time.After((shutdown + 10) * time.Second):
		t.Fatalf("the first instance did not stop within %d s of its cancellation while produces fail", shutdown+10)
	}
	if emb != nil {
		// Nothing was acknowledged, so nothing may have been committed.
		if off := committedOffset(t, brokers, st.Group, st.DeclarationsTopic); off > 0 {
			t.Fatalf("offset %d committed with no output acknowledged", off)
		}
	}

	// The second instance starts with the output topics gone: the writer
	// refuses its outputs before any produce request (no metadata for
	// them). Then they come back and the broker refuses the produces
	// again, until the fault ends.
	deleteTopics(t, brokers, st.AssessmentsTopic, st.DeadLetterTopic)
	e, _ := engine.New(first.cfg)
	ctx, cancel := context.WithCancel(context.Background())
	second := &streamHarness{t: t, cfg: first.cfg, cancel: cancel, done: make(chan error, 1), brokers: brokers, ctx: ctx,
		stream: &Stream{Engine: e, Config: st, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard), maxInFlight: limit}}
	second.start()
	defer second.stop()
	fault.reset()
	failing(second, "Unknown Topic Or Partition", false)
	createTopics(t, brokers, fault.topicConfig(), st.AssessmentsTopic, st.DeadLetterTopic)
	failing(second, "producing", true)
	fault.set(t, false)

	end := int64(len(in))
	deadline := time.Now().Add(2 * time.Minute)
	var outputs map[int64]int
	for {
		ok, why := second.stream.ReadyState()
		committed := committedOffset(t, brokers, st.Group, st.DeclarationsTopic)
		pending := second.stream.tracker.pending()
		if committed == end && pending == 0 && ok {
			outputs = outputsByInput(t, brokers, st, idOffset)
			if len(outputs) == len(in) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 min after the broker recovered: committed %d of %d, %d in flight, %d in the retry queue, ready %v %q, %d inputs with outputs",
				committed, end, pending, second.stream.retries.len(), ok, why, len(outputsByInput(t, brokers, st, idOffset)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	dups := 0
	for off := range end {
		switch n := outputs[off]; {
		case n == 0:
			t.Errorf("input at offset %d has no output", off)
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("after recovery: all %d inputs have outputs (%d assessments, %d dead letters expected), %d duplicates, every offset committed, ready",
		len(in), valid, invalid, dups)
}

// An output the producer can never send (larger than its batch limit) is
// replaced by a dead letter for its input, so that the input's partition is
// not held uncommitted forever; the rest of the call is produced.
func TestOversizedOutput(t *testing.T) {
	brokers := embedded(t, 1)
	cfg := config.Default()
	if err := EnsureTopics(context.Background(), brokers, cfg.Stream, nil); err != nil {
		t.Fatal(err)
	}
	e, _ := engine.New(cfg)
	s := &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e), Log: zerolog.New(io.Discard), tracker: newTracker(), retries: newRetryQueue()}
	s.writer = &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, Async: true,
		BatchTimeout: time.Millisecond, BatchBytes: 4096, MaxAttempts: 1, Completion: s.completed, Transport: &kafka.Transport{}}
	defer s.writer.Close()
	in := cfg.Stream.DeclarationsTopic
	s.tracker.assign(1, []partition{{in, 0}})
	s.tracker.add(in, 0, 7, 1)
	s.tracker.add(in, 0, 8, 1)
	s.produce(context.Background(),
		kafka.Message{Topic: cfg.Stream.AssessmentsTopic, Key: []byte("D7"), Value: make([]byte, 5000), WriterData: &ack{topic: in, part: 0, offset: 7, epoch: 1}},
		kafka.Message{Topic: cfg.Stream.AssessmentsTopic, Key: []byte("D8"), Value: []byte(`{}`), WriterData: &ack{topic: in, part: 0, offset: 8, epoch: 1}})
	for deadline := time.Now().Add(10 * time.Second); s.tracker.pending() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d outputs unacknowledged after 10 s, %d queued for retry", s.tracker.pending(), s.retries.len())
		}
	}
	dls := consume(t, brokers, cfg.Stream.DeadLetterTopic, 1, 10*time.Second)
	var dl struct {
		Source string `json:"source"`
		Offset int64  `json:"offset"`
		Kind   string `json:"kind"`
		Reason string `json:"reason"`
	}
	json.Unmarshal(dls[0].Value, &dl)
	if dl.Source != in || dl.Offset != 7 || dl.Kind != "output_size" || !strings.Contains(dl.Reason, "5000-byte output") {
		t.Errorf("dead letter %s", dls[0].Value)
	}
	if got := consume(t, brokers, cfg.Stream.AssessmentsTopic, 1, 10*time.Second); string(got[0].Key) != "D8" {
		t.Errorf("assessment %s produced, want D8", got[0].Key)
	}
}

// linger_ms 0 means no wait. kafka-go reads a zero BatchTimeout as its
// default of one second: passed through, 0 made every assessment wait about
// 100 ms (p50 at 5,000/s) instead of about 3.
func TestLingerZeroIsNoWait(t *testing.T) {
	if d := linger(0); d <= 0 || d >= time.Millisecond {
		t.Errorf("linger_ms 0: BatchTimeout %v, want a positive wait under 1 ms", d)
	}
	if d := linger(2); d != 2*time.Millisecond {
		t.Errorf("linger_ms 2: BatchTimeout %v", d)
	}
}
