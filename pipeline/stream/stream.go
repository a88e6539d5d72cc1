// Package stream is riskmon's stream mode on Kafka: the consumer group
// member and its partition readers, a fetch loop feeding a pool of decoders,
// workers sharded by importer around the engine, the producer of assessments
// and dead letters with its retries, the commit tracker (at-least-once: an
// offset is committed only once it and every earlier offset are
// acknowledged), readiness, TLS and SASL, an embedded Kafka-protocol broker
// for the demo and tests, and the Prometheus metrics of all of it.
package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
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
// Messages are decoded by a pool of goroutines and put back in fetch order,
// then declarations are routed to Workers goroutines by a hash of
// importer.id, so one importer's declarations are assessed in order by one
// worker whatever the messages' keys.
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

	tracker    *tracker
	writer     *kafka.Writer
	retries    *retryQueue
	failStreak atomic.Int64 // failed produces since the last acknowledged one
	consumer   atomic.Pointer[consumer]
	health     health
	// maxInFlight overrides defaultMaxInFlight (tests).
	maxInFlight int
}

// defaultMaxInFlight bounds the fetched messages whose outputs are not yet
// acknowledged. While the broker refuses produces, fetching pauses there
// instead of holding ever more declarations and outputs in memory; a healthy
// stream stays far below it (its rate times the produce latency).
const defaultMaxInFlight = 10_000

// job is one declaration on its way through a worker.
type job struct {
	msg     kafka.Message
	epoch   uint64
	d       *declaration.Declaration
	fetched time.Time
}

// item is one fetched message on its way through a decoder.
type item struct {
	m       kafka.Message
	epoch   uint64
	fetched time.Time
	d       *declaration.Declaration
	o       *declaration.Outcome
	err     error
}

// EnsureTopics creates the four topics, the changelog (compacted) and the
// pending topic (deleted after stream.pending_retention_hours) when missing
// (stream.create_topics).
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
	if cl := c.Changelog(); cl != "" {
		topics = append(topics, kafka.TopicConfig{Topic: cl, NumPartitions: c.Partitions, ReplicationFactor: c.ReplicationFactor,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}})
	}
	if p := c.Pending(); p != c.Changelog() {
		topics = append(topics, kafka.TopicConfig{Topic: p, NumPartitions: c.Partitions, ReplicationFactor: c.ReplicationFactor,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "delete"},
				{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(int64(c.PendingRetentionHours)*3600_000, 10)}}})
	}
	err = cc.CreateTopics(topics...)
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating topics: %w", err)
	}
	return nil
}

// Run consumes until ctx is cancelled, then shuts down gracefully: it stops
// fetching, finishes the declarations in hand, waits for their outputs to be
// acknowledged, commits, and returns, within stream.shutdown_seconds (and
// the time a checkpoint takes to write, when state_dir is set). Outputs not
// acknowledged by then leave their inputs uncommitted, to be redelivered.
func (s *Stream) Run(ctx context.Context, brokers []string) error {
	c := s.Config
	s.tracker = newTracker()
	s.retries = newRetryQueue()
	cons, err := newConsumer(s, brokers)
	if err != nil {
		return err
	}
	s.writer = &kafka.Writer{
		// Its own transport, so its topic metadata is not the (6 s cached)
		// default transport's, shared with every other writer of the process.
		Transport: s.Security.transport(),
		Addr:      kafka.TCP(brokers...), Balancer: changelogBalancer{c.HandoverTopics(), &kafka.Hash{}}, RequiredAcks: kafka.RequireAll, Async: true,
		BatchTimeout: linger(c.LingerMS), BatchSize: c.BatchMessages, Completion: s.completed,
		// One attempt: a failed batch comes back to the completion hook at
		// once, and the retry loop produces everything that failed again in
		// one call. kafka-go's own retries take the batches of a partition
		// one after the other, each with its backoff (1.5 s over 5
		// attempts): with the small batches of a short linger, a broker
		// refusing produces would see a few messages a second.
		MaxAttempts: 1,
		// Every failed attempt of every batch: riskmon logs the first
		// failure after a success itself (produceFailed).
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { s.Log.Debug().Str("component", "producer").Msgf(f, a...) }),
	}
	// Outputs are handed to the writer under produceCtx, which ends before
	// the shutdown deadline: a WriteMessages waiting on an unreachable
	// broker's metadata cannot hold the shutdown past it.
	produceCtx, cancelProduce := context.WithCancel(context.Background())
	defer cancelProduce()
	s.consumer.Store(cons)
	s.health.running.Store(true)
	s.updateReady()
	go cons.run(ctx)

	n := c.Workers
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	workers := make([]chan job, n)
	s.Metrics.Workers.Set(float64(len(workers)))
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = make(chan job, 256)
		wg.Add(1)
		go func(in <-chan job) {
			defer wg.Done()
			w := s.Engine.NewWorker()
			for j := range in {
				s.assess(produceCtx, w, j)
			}
		}(workers[i])
	}
	stopAux := make(chan struct{})
	var aux sync.WaitGroup
	aux.Add(4)
	go func() { defer aux.Done(); s.retryLoop(produceCtx, stopAux) }()
	go func() { defer aux.Done(); s.probeLoop(brokers, stopAux) }()
	go func() { defer aux.Done(); s.lagLoop(cons, brokers, stopAux) }()
	go func() { defer aux.Done(); s.commitLoop(cons, stopAux) }()

	s.consume(ctx, cons, workers, produceCtx)

	// Graceful shutdown. The generation stays alive until the end, so that
	// the final commit goes through it; what talks to the broker is bounded
	// by the deadline, and a little of the budget is kept for the commit.
	shutdown := time.Duration(c.ShutdownSeconds) * time.Second
	deadline := time.Now().Add(shutdown)
	reserve := min(2*time.Second, shutdown/3)
	drainBy := deadline.Add(-reserve)
	stopProduce := time.AfterFunc(time.Until(drainBy), cancelProduce)
	defer stopProduce.Stop()
	cons.stopFetching()
	for _, w := range workers {
		close(w)
	}
	wg.Wait()
	for s.tracker.pending() > 0 && time.Now().Before(drainBy) {
		time.Sleep(10 * time.Millisecond)
	}
	cancelProduce()
	close(stopAux)
	waitUntil(deadline.Add(-reserve/2), aux.Wait)
	waitUntil(deadline.Add(-reserve/2), func() { s.commit(cons) })
	if s.Config.StateDir != "" {
		// A model training in flight would be lost with the process: give
		// it what is left of the deadline, then save.
		waitUntil(deadline, s.Engine.WaitTraining)
		s.checkpoint(cons)
	}
	if n := s.tracker.pending(); n > 0 {
		s.Log.Warn().Int("in_flight", n).Int("retry_queue", s.retries.len()).
			Msg("shutdown timed out with outputs unacknowledged; their inputs stay uncommitted and will be redelivered")
	}
	var werr, cerr error
	closed := waitUntil(deadline, func() {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); werr = s.writer.Close() }()
		go func() { defer wg.Done(); cerr = cons.close() }()
		wg.Wait()
	})
	s.health.running.Store(false)
	s.Metrics.Ready.Set(0)
	if !closed {
		s.Log.Warn().Msg("the producer or the consumer group did not close before the shutdown deadline; left behind")
		return nil
	}
	if werr != nil {
		return fmt.Errorf("closing the producer: %w", werr)
	}
	if cerr != nil && !errors.Is(cerr, kafka.ErrGroupClosed) {
		return fmt.Errorf("leaving consumer group %s: %w", c.Group, cerr)
	}
	return nil
}

// waitUntil runs f and waits for it until deadline; it reports whether f
// returned. A call still running at the deadline is left behind.
func waitUntil(deadline time.Time, f func()) bool {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// consume runs the fetch loop, the decoders and the router until ctx ends
// and everything fetched has been handed to a worker, applied (outcomes) or
// dead-lettered.
//
// Decoding runs on a pool, so that it runs in parallel with assessment and
// with itself instead of in the single fetch loop. The fetch loop deals
// messages to the decoders in turn and the router collects them in the same
// turn, which puts them back in fetch order: every importer's declarations
// (and the outcomes between them) reach the engine in the order of their
// partition, whatever the messages' keys.
func (s *Stream) consume(ctx context.Context, cons *consumer, workers []chan job, produceCtx context.Context) {
	// At least two, so that the reassembly in fetch order runs on every
	// machine, one CPU or many.
	n := min(max(runtime.GOMAXPROCS(0), 2), 8)
	ins, outs := make([]chan *item, n), make([]chan *item, n)
	for i := range ins {
		ins[i], outs[i] = make(chan *item, 64), make(chan *item, 64)
		go func(in <-chan *item, out chan<- *item) {
			defer close(out)
			for it := range in {
				s.decode(it)
				out <- it
			}
		}(ins[i], outs[i])
	}
	routed := make(chan struct{})
	go func() { defer close(routed); s.route(outs, workers, produceCtx) }()
	s.fetchLoop(ctx, cons, ins)
	for _, in := range ins {
		close(in)
	}
	<-routed
}

// inFlightLimit is how many fetched messages may wait for their outputs'
// acknowledgement before fetching pauses.
func (s *Stream) inFlightLimit() int {
	if s.maxInFlight > 0 {
		return s.maxInFlight
	}
	return defaultMaxInFlight
}

func (s *Stream) fetchLoop(ctx context.Context, cons *consumer, ins []chan *item) {
	limit := s.inFlightLimit()
	// Formatting the gauge's labels per message costs more than the rest of
	// the loop: one gauge per partition, looked up once.
	lag := map[partition]prometheus.Gauge{}
	var lagEpoch uint64 // lagLoop removes the series of partitions no longer held
	paused := false
	for k := 0; ; {
		if n := s.tracker.pending(); n >= limit {
			if !paused {
				s.Log.Warn().Int("in_flight", n).Msg("fetching paused: too many outputs unacknowledged")
				paused = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if paused {
			s.Log.Info().Msg("fetching resumed")
			paused = false
		}
		var f fetchedMsg
		select {
		case <-ctx.Done():
			return
		case f = <-cons.out:
		}
		m := f.m
		if !s.tracker.add(m.Topic, m.Partition, m.Offset, f.epoch) {
			continue // fetched in a generation that has ended
		}
		if f.epoch != lagEpoch {
			clear(lag)
			lagEpoch = f.epoch
		}
		p := partition{m.Topic, m.Partition}
		g, ok := lag[p]
		if !ok {
			g = s.Metrics.Lag.WithLabelValues(m.Topic, strconv.Itoa(m.Partition))
			lag[p] = g
		}
		g.Set(float64(max(m.HighWaterMark-m.Offset-1, 0)))
		// A blocking send: the decoders and the router run until the fetch
		// loop has returned, so a tracked message is always processed.
		ins[k%len(ins)] <- &item{m: m, epoch: f.epoch, fetched: time.Now()}
		k++
	}
}

func (s *Stream) decode(it *item) {
	m := it.m
	if m.Topic == s.Config.OutcomesTopic {
		it.o, it.err = declaration.DecodeOutcome(m.Value)
		return
	}
	limit := s.Engine.Config().Engine.MaxMessageBytes
	switch {
	case len(m.Value) > limit:
		it.err = &declaration.Error{Kind: "size", Msg: fmt.Sprintf("message of %d bytes is larger than the %d-byte limit (engine.max_message_bytes)", len(m.Value), limit)}
	case len(m.Value) == 0:
		it.err = &declaration.Error{Kind: "tombstone", Msg: "empty message (tombstone): a declaration must be a JSON object"}
	default:
		it.d, it.err = declaration.DecodeDeclaration(m.Value)
	}
}

// route takes the decoded messages in fetch order (see consume): outcomes
// are applied, invalid messages dead-lettered, declarations handed to their
// importer's worker.
func (s *Stream) route(outs []chan *item, workers []chan job, produceCtx context.Context) {
	for k := 0; ; k++ {
		it, ok := <-outs[k%len(outs)]
		if !ok {
			return // the fetch loop stopped before message k: there is none after it
		}
		m := it.m
		if m.Topic == s.Config.OutcomesTopic {
			s.Metrics.Outcomes.Inc()
			if it.err != nil {
				s.deadLetter(produceCtx, it)
				continue
			}
			s.Metrics.ObserveOutcome(it.o, s.Engine.ApplyOutcome(it.o))
			if !s.handOverOutcome(produceCtx, it) {
				s.tracker.done(m.Topic, m.Partition, m.Offset, it.epoch)
			}
			continue
		}
		s.Metrics.Declarations.Inc()
		if it.err != nil {
			s.deadLetter(produceCtx, it)
			continue
		}
		workers[xxhash.Sum64String(it.d.Importer.ID)%uint64(len(workers))] <- job{msg: m, epoch: it.epoch, d: it.d, fetched: it.fetched}
	}
}

func (s *Stream) assess(ctx context.Context, w *engine.Worker, j job) {
	a, writes := w.Assess(j.d)
	k := &ack{topic: j.msg.Topic, part: j.msg.Partition, offset: j.msg.Offset, epoch: j.epoch, fetched: j.fetched, a: a, d: j.d}
	msgs := []kafka.Message{{Topic: s.Config.AssessmentsTopic, Key: []byte(a.DeclarationID), Value: a.AppendJSON(nil), WriterData: k}}
	if s.Config.Changelog() != "" {
		msgs = append(msgs, s.changelogMessages(j.msg.Partition, j.d, writes, k)...)
	}
	k.left.Store(int32(len(msgs)))
	s.produce(ctx, msgs...)
}

func (s *Stream) deadLetter(ctx context.Context, it *item) {
	m := it.m
	dl := declaration.DeadLetter{Source: m.Topic, Partition: m.Partition, Offset: m.Offset, Reason: it.err.Error(), Kind: declaration.ErrorKind(it.err), Original: m.Value}
	s.Metrics.DeadLetters.WithLabelValues(m.Topic, dl.Kind).Inc()
	s.produce(ctx, kafka.Message{
		Topic: s.Config.DeadLetterTopic, Key: m.Key, Value: dl.AppendJSON(nil),
		WriterData: &ack{topic: m.Topic, part: m.Partition, offset: m.Offset, epoch: it.epoch},
	})
}

func (s *Stream) commitLoop(cons *consumer, stop <-chan struct{}) {
	t := time.NewTicker(time.Duration(s.Config.CommitIntervalMS) * time.Millisecond)
	defer t.Stop()
	lastCheckpoint := time.Now()
	var lost uint64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.commit(cons)
			if n := s.Engine.Store().DeclLost(); n > lost {
				s.Log.Error().Err(s.Engine.Store().DeclErr()).Uint64("lost", n-lost).Msg("declaration records lost to a disk error in state.pending_dir: their outcomes will teach only their importer (see the runbook, RiskmonPendingLost)")
				lost = n
			}
			if s.Config.StateDir != "" && time.Since(lastCheckpoint) >= time.Duration(s.Config.CheckpointSeconds)*time.Second {
				s.checkpoint(cons)
				lastCheckpoint = time.Now()
			}
		}
	}
}

// checkpoint saves the engine's state right after an offset commit. What it
// holds beyond the committed offsets (declarations assessed but not yet
// committed) is learned a second time if those are redelivered after a
// crash; what was learned after it is forgotten by a crash.
//
// It also records, for each partition whose state it holds, the changelog's
// end offset measured just before the state is saved: a restart given the
// partition again reads the changelog from there instead of from its start.
func (s *Stream) checkpoint(cons *consumer) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	m := cons.measureHandover(ctx)
	cancel()
	var handover engine.HandoverOffsets
	if err := s.Engine.SaveState(s.Config.StateDir, func() engine.HandoverOffsets {
		handover = m.confirmed()
		return handover
	}); err != nil {
		s.Log.Error().Err(err).Str("dir", s.Config.StateDir).Msg("checkpoint failed")
		return
	}
	cons.handedOver(handover)
	s.Log.Debug().Dur("took_ms", time.Since(start)).Msg("checkpoint saved")
}

// commit commits what the tracker allows through the current generation.
// Between generations it waits for the next round: the next generation
// starts again from the committed offsets anyway.
func (s *Stream) commit(cons *consumer) {
	if cons.gen.Load() == nil {
		return
	}
	cs := s.tracker.commits()
	if len(cs) == 0 {
		return
	}
	if err := cons.commit(cs); err != nil {
		s.Metrics.CommitErrors.Inc()
		s.Log.Warn().Err(err).Msg("offset commit failed; retrying on the next round")
		return
	}
	s.tracker.committed(cs)
}

// linger is the producer's batch wait for stream.linger_ms. kafka-go takes
// a zero BatchTimeout for its default of one second; 0 here means no wait:
// a batch goes as soon as the writer's partition loop takes it.
func linger(ms int) time.Duration {
	if ms == 0 {
		return time.Nanosecond
	}
	return time.Duration(ms) * time.Millisecond
}
