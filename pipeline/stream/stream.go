// Package stream is riskmon's stream mode on Kafka: the consumer group and
// its fetch loop, workers sharded by importer around the engine, the
// producer of assessments and dead letters, the commit tracker (at-least-once:
// an offset is committed only once it and every earlier offset are
// acknowledged), TLS and SASL, an embedded Kafka-protocol broker for the demo
// and tests, and the Prometheus metrics of all of it.
package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// Stream runs the engine on Kafka: it consumes the declarations and outcomes
// topics in a consumer group, writes one assessment per valid declaration
// (key: declaration id) and one dead letter per invalid message, and commits
// an input offset only once the outputs of it and of every earlier offset of
// its partition have been acknowledged by the broker.
//
// Declarations are routed to Workers goroutines by a hash of importer.id, so
// one importer's declarations are assessed in order by one worker.
type Stream struct {
	Engine  *engine.Engine
	Config  config.Stream
	Metrics *Metrics
	Log     zerolog.Logger
	// Security is TLS and SASL for the broker connections; nil: plaintext.
	Security *Security
	// OnAssessed, when set, sees every assessment once it is acknowledged
	// (the demo's live summary); it must not block.
	OnAssessed func(a *declaration.Assessment, d *declaration.Declaration, latency time.Duration)

	tracker   *tracker
	writer    *kafka.Writer
	retries   chan kafka.Message
	lastOK    atomic.Int64 // unix nanos of the last acknowledged produce
	lastFail  atomic.Int64 // unix nanos of the last failed produce
	probeOK   atomic.Int64 // unix nanos of the last successful broker probe
	probeFail atomic.Int64 // unix nanos of the last failed broker probe
	fetched   atomic.Bool
}

// job is one declaration on its way through a worker.
type job struct {
	msg     kafka.Message
	d       *declaration.Declaration
	fetched time.Time
}

// ack is carried by each produced message to the writer's completion hook.
type ack struct {
	topic   string
	part    int
	offset  int64
	fetched time.Time
	a       *declaration.Assessment
	d       *declaration.Declaration
}

// Ready reports whether the stream is consuming and producing: it has fetched
// from the broker, its last produce did not fail (or a later one succeeded),
// and its last probe of the brokers (every 2 s) reached one.
func (s *Stream) Ready() bool {
	return s.fetched.Load() && s.lastFail.Load() <= s.lastOK.Load() && s.probeFail.Load() <= s.probeOK.Load()
}

// probeLoop checks every 2 s that a broker answers a metadata request, so
// that readiness falls when the brokers are gone even with no traffic.
func (s *Stream) probeLoop(brokers []string, stop <-chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ok := false
		for _, b := range brokers {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := s.Security.dialer().DialContext(ctx, "tcp", b)
			cancel()
			if err == nil {
				conn.SetDeadline(time.Now().Add(time.Second))
				_, err = conn.Brokers()
				conn.Close()
			}
			if err == nil {
				ok = true
				break
			}
		}
		now := time.Now().UnixNano()
		if ok {
			s.probeOK.Store(now)
		} else {
			if s.probeFail.Load() <= s.probeOK.Load() {
				s.Log.Error().Strs("brokers", brokers).Msg("no broker answers: not ready")
			}
			s.probeFail.Store(now)
		}
		s.updateReady()
	}
}

// EnsureTopics creates the four topics when missing (stream.create_topics).
func EnsureTopics(ctx context.Context, brokers []string, c config.Stream, sec *Security) error {
	var conn *kafka.Conn
	var err error
	for _, b := range brokers {
		if conn, err = sec.dialer().DialContext(ctx, "tcp", b); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("connecting to %v: %w", brokers, err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("finding the controller: %w", err)
	}
	cc, err := sec.dialer().DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("connecting to the controller: %w", err)
	}
	defer cc.Close()
	var topics []kafka.TopicConfig
	for _, t := range []string{c.DeclarationsTopic, c.OutcomesTopic, c.AssessmentsTopic, c.DeadLetterTopic} {
		topics = append(topics, kafka.TopicConfig{Topic: t, NumPartitions: c.Partitions, ReplicationFactor: c.ReplicationFactor})
	}
	err = cc.CreateTopics(topics...)
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating topics: %w", err)
	}
	return nil
}

// Run consumes until ctx is cancelled, then shuts down gracefully: it stops
// fetching, finishes the declarations in hand, waits for their outputs to be
// acknowledged, commits, and returns, within stream.shutdown_seconds.
func (s *Stream) Run(ctx context.Context, brokers []string) error {
	c := s.Config
	s.tracker = newTracker()
	s.retries = make(chan kafka.Message, 1024)
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: c.Group, GroupTopics: []string{c.DeclarationsTopic, c.OutcomesTopic}, Dialer: s.Security.dialer(),
		// MaxBytes well above any message a broker would accept, so that an
		// oversized one is fetched and dead-lettered rather than blocking.
		MinBytes: 1, MaxBytes: 64 << 20, MaxWait: 100 * time.Millisecond, ReadBatchTimeout: 2 * time.Second,
		StartOffset: kafka.FirstOffset, CommitInterval: 0, HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: time.Second,
		// Partitions added later (or a topic whose metadata was not there yet
		// when the group formed) trigger a rebalance instead of being ignored.
		WatchPartitionChanges: true, PartitionWatchInterval: 2 * time.Second, ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: time.Second,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { s.Log.Warn().Str("component", "consumer").Msgf(f, a...) }),
		Logger:      kafka.LoggerFunc(func(f string, a ...any) { s.Log.Debug().Str("component", "consumer").Msgf(f, a...) }),
	})
	s.writer = &kafka.Writer{
		// Its own transport, so its topic metadata is not the (6 s cached)
		// default transport's, shared with every other writer of the process.
		Transport: s.Security.transport(),
		Addr:      kafka.TCP(brokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, Async: true,
		BatchTimeout: time.Duration(c.LingerMS) * time.Millisecond, BatchSize: 1000, MaxAttempts: 5,
		WriteBackoffMin: 50 * time.Millisecond, WriteBackoffMax: time.Second, Completion: s.completed,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { s.Log.Warn().Str("component", "producer").Msgf(f, a...) }),
	}

	workers := make([]chan job, c.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = make(chan job, 256)
		wg.Add(1)
		go func(in <-chan job) {
			defer wg.Done()
			for j := range in {
				s.assess(j)
			}
		}(workers[i])
	}
	stopAux := make(chan struct{})
	var aux sync.WaitGroup
	aux.Add(3)
	go func() { defer aux.Done(); s.retryLoop(stopAux) }()
	go func() { defer aux.Done(); s.probeLoop(brokers, stopAux) }()
	go func() { defer aux.Done(); s.commitLoop(reader, stopAux) }()

	fetchErr := s.fetchLoop(ctx, reader, workers)

	// Graceful shutdown: no more fetching; drain the workers; wait for
	// acknowledgements; commit; close.
	for _, w := range workers {
		close(w)
	}
	wg.Wait()
	deadline := time.Now().Add(time.Duration(c.ShutdownSeconds) * time.Second)
	for s.tracker.inFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stopAux)
	aux.Wait()
	s.commit(reader)
	if s.Config.StateDir != "" {
		s.checkpoint()
	}
	if n := s.tracker.inFlight(); n > 0 {
		s.Log.Warn().Int("in_flight", n).Msg("shutdown timed out with outputs unacknowledged; their inputs stay uncommitted and will be redelivered")
	}
	werr := s.writer.Close()
	rerr := reader.Close()
	s.Metrics.Ready.Set(0)
	if fetchErr != nil {
		return fetchErr
	}
	if werr != nil {
		return werr
	}
	return rerr
}

func (s *Stream) fetchLoop(ctx context.Context, reader *kafka.Reader, workers []chan job) error {
	c := s.Config
	limit := s.Engine.Config().Engine.MaxMessageBytes
	for {
		m, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.Log.Error().Err(err).Msg("fetch failed; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		if !s.fetched.Swap(true) {
			s.Log.Info().Msg("consuming")
		}
		s.updateReady()
		now := time.Now()
		s.tracker.add(m.Topic, m.Partition, m.Offset)
		s.Metrics.Lag.WithLabelValues(m.Topic, strconv.Itoa(m.Partition)).Set(float64(max(m.HighWaterMark-m.Offset-1, 0)))
		if m.Topic == c.OutcomesTopic {
			s.Metrics.Outcomes.Inc()
			o, err := declaration.DecodeOutcome(m.Value)
			if err != nil {
				s.deadLetter(m, err)
				continue
			}
			s.Engine.ApplyOutcome(o)
			s.tracker.done(m.Topic, m.Partition, m.Offset)
			continue
		}
		s.Metrics.Declarations.Inc()
		var d *declaration.Declaration
		if len(m.Value) > limit {
			err = &declaration.Error{Kind: "size", Msg: fmt.Sprintf("message of %d bytes is larger than the %d-byte limit (engine.max_message_bytes)", len(m.Value), limit)}
		} else if len(m.Value) == 0 {
			err = &declaration.Error{Kind: "tombstone", Msg: "empty message (tombstone): a declaration must be a JSON object"}
		} else {
			d, err = declaration.DecodeDeclaration(m.Value)
		}
		if err != nil {
			s.deadLetter(m, err)
			continue
		}
		// A blocking send: the workers run until the fetch loop has
		// returned, so a fetched declaration is always assessed.
		workers[xxhash.Sum64String(d.Importer.ID)%uint64(len(workers))] <- job{msg: m, d: d, fetched: now}
	}
}

func (s *Stream) assess(j job) {
	a := s.Engine.Assess(j.d)
	var b []byte
	b = a.AppendJSON(b)
	s.writer.WriteMessages(context.Background(), kafka.Message{
		Topic: s.Config.AssessmentsTopic, Key: []byte(a.DeclarationID), Value: b,
		WriterData: &ack{topic: j.msg.Topic, part: j.msg.Partition, offset: j.msg.Offset, fetched: j.fetched, a: a, d: j.d},
	})
}

func (s *Stream) deadLetter(m kafka.Message, err error) {
	dl := declaration.DeadLetter{Source: m.Topic, Partition: m.Partition, Offset: m.Offset, Reason: err.Error(), Kind: declaration.ErrorKind(err), Original: m.Value}
	s.Metrics.DeadLetters.WithLabelValues(m.Topic, dl.Kind).Inc()
	s.writer.WriteMessages(context.Background(), kafka.Message{
		Topic: s.Config.DeadLetterTopic, Key: m.Key, Value: dl.AppendJSON(nil),
		WriterData: &ack{topic: m.Topic, part: m.Partition, offset: m.Offset},
	})
}

// completed is the writer's completion hook: acknowledged outputs mark their
// inputs done; failed ones are produced again.
func (s *Stream) completed(msgs []kafka.Message, err error) {
	now := time.Now()
	if err != nil {
		s.lastFail.Store(now.UnixNano())
		s.updateReady()
		s.Metrics.ProduceErrors.Inc()
		s.Log.Error().Err(err).Int("messages", len(msgs)).Msg("produce failed; retrying")
		for _, m := range msgs {
			s.retries <- m
		}
		return
	}
	s.lastOK.Store(now.UnixNano())
	s.updateReady()
	for _, m := range msgs {
		k := m.WriterData.(*ack)
		s.tracker.done(k.topic, k.part, k.offset)
		if k.a == nil {
			continue
		}
		s.Metrics.Assessments.WithLabelValues(k.a.Channel.String(), k.a.SelectedBy).Inc()
		for i := range k.a.Findings {
			s.Metrics.Findings.WithLabelValues(k.a.Findings[i].Detector).Inc()
		}
		lat := now.Sub(k.fetched)
		s.Metrics.InProcess.Observe(lat.Seconds())
		s.Metrics.LodgedToAssess.Observe(k.a.AssessedAt.Sub(k.a.LodgedAt).Seconds())
		if s.OnAssessed != nil {
			s.OnAssessed(k.a, k.d, lat)
		}
	}
}

// retryLoop produces failed messages again, with a pause, until they are
// acknowledged: an output is never given up while its input is uncommitted.
func (s *Stream) retryLoop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case m := <-s.retries:
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			s.writer.WriteMessages(context.Background(), m)
		}
	}
}

func (s *Stream) commitLoop(reader *kafka.Reader, stop <-chan struct{}) {
	t := time.NewTicker(time.Duration(s.Config.CommitIntervalMS) * time.Millisecond)
	defer t.Stop()
	lastCheckpoint := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.commit(reader)
			if s.Config.StateDir != "" && time.Since(lastCheckpoint) >= time.Duration(s.Config.CheckpointSeconds)*time.Second {
				s.checkpoint()
				lastCheckpoint = time.Now()
			}
		}
	}
}

// checkpoint saves the engine's state right after an offset commit. What it
// holds beyond the committed offsets (declarations assessed but not yet
// committed) is learned a second time if those are redelivered after a
// crash; what was learned after it is forgotten by a crash.
func (s *Stream) checkpoint() {
	start := time.Now()
	if err := s.Engine.SaveState(s.Config.StateDir); err != nil {
		s.Log.Error().Err(err).Str("dir", s.Config.StateDir).Msg("checkpoint failed")
		return
	}
	s.Log.Debug().Dur("took", time.Since(start)).Msg("checkpoint saved")
}

func (s *Stream) commit(reader *kafka.Reader) {
	msgs := s.tracker.commits()
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := reader.CommitMessages(ctx, msgs...); err != nil {
		s.Metrics.CommitErrors.Inc()
		s.Log.Warn().Err(err).Msg("offset commit failed; retrying on the next round")
		return
	}
	s.tracker.committed(msgs)
}

func (s *Stream) updateReady() {
	if s.Ready() {
		s.Metrics.Ready.Set(1)
	} else {
		s.Metrics.Ready.Set(0)
	}
}
