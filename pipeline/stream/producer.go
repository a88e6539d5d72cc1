package stream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/declaration"
)

// ack is carried by each produced message to the writer's completion hook.
type ack struct {
	topic   string
	part    int
	offset  int64
	epoch   uint64
	fetched time.Time
	a       *declaration.Assessment
	d       *declaration.Declaration
	// left counts the messages of this input not yet acknowledged, when it
	// has several (its assessment and changelog records); 0: one message.
	left atomic.Int32
}

// last counts one acknowledged message of k's input and says whether it was
// the last one.
func (k *ack) last() bool { return k.left.Load() == 0 || k.left.Add(-1) == 0 }

// WriteMessages writes msgs with w, again (every 0.5 s, for up to 10 s)
// while their topic is unknown to the broker: on a freshly started Apache
// Kafka a topic just created is refused for a moment. For feeds and
// benches that create their topics and write at once; riskmon's own
// producer queues what fails for its retry loop instead.
func WriteMessages(w *kafka.Writer, msgs ...kafka.Message) error {
	err := w.WriteMessages(context.Background(), msgs...)
	for try := 0; errors.Is(err, kafka.UnknownTopicOrPartition) && try < 20; try++ {
		time.Sleep(500 * time.Millisecond)
		err = w.WriteMessages(context.Background(), msgs...)
	}
	return err
}

// retryQueue holds outputs whose produce failed until the retry loop
// produces them again. It is a slice behind a mutex, not a channel, so that
// the writer's completion hook never blocks however many outputs fail: they
// are bounded by the messages in flight, which the fetch loop bounds.
type retryQueue struct {
	mu   sync.Mutex
	msgs []kafka.Message
	wake chan struct{} // 1-buffered: a pending wake-up is enough
}

func newRetryQueue() *retryQueue { return &retryQueue{wake: make(chan struct{}, 1)} }

func (q *retryQueue) push(msgs []kafka.Message) {
	q.mu.Lock()
	q.msgs = append(q.msgs, msgs...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *retryQueue) take() []kafka.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs := q.msgs
	q.msgs = nil
	return msgs
}

func (q *retryQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// produce hands outputs to the writer. What it refuses is queued for the
// retry loop: an output is never given up while its input is uncommitted.
// The writer is asynchronous, so it refuses only before batching (its
// metadata lookup failed, the writer is closed, ctx ended, a message is too
// large), and then it has taken none of msgs.
func (s *Stream) produce(ctx context.Context, msgs ...kafka.Message) {
	err := s.writer.WriteMessages(ctx, msgs...)
	if err == nil {
		return
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		// No retry can produce it: replace it by a dead letter, so that
		// its input is not held uncommitted forever, and go on with the
		// rest.
		s.oversized(ctx, tooLarge.Message, err)
		if len(tooLarge.Remaining) > 0 {
			s.produce(ctx, tooLarge.Remaining...)
		}
		return
	}
	s.requeue(fmt.Errorf("handing %d messages to the producer: %w", len(msgs), err), msgs)
}

// requeue records a failed produce and queues its outputs for the retry
// loop.
func (s *Stream) requeue(err error, msgs []kafka.Message) {
	s.failStreak.Add(1)
	s.produceFailed(err, len(msgs))
	s.retries.push(msgs)
}

// oversized dead-letters the input of an output too large for the producer.
func (s *Stream) oversized(ctx context.Context, m kafka.Message, err error) {
	k := m.WriterData.(*ack)
	if slices.Contains(s.Config.HandoverTopics(), m.Topic) {
		// Records are a few hundred bytes: this does not happen, and if it
		// did, the state of one key would not be handed over.
		s.Log.Error().Err(err).Int("bytes", len(m.Value)).Str("topic", m.Topic).Msg("state record too large to produce; skipped")
		if k.last() {
			s.tracker.done(k.topic, k.part, k.offset, k.epoch)
		}
		return
	}
	if m.Topic == s.Config.DeadLetterTopic {
		// Dead letters keep at most 64 KiB of the original, far below the
		// producer's limit: this does not happen, and if it did, the input
		// stays uncommitted rather than being replaced by nothing.
		s.Log.Error().Err(err).Int("bytes", len(m.Value)).Str("input", k.topic).Int("partition", k.part).Int64("offset", k.offset).
			Msg("dead letter too large to produce; its input stays uncommitted")
		return
	}
	s.Log.Error().Err(err).Str("topic", m.Topic).Int("bytes", len(m.Value)).Str("input", k.topic).Int("partition", k.part).Int64("offset", k.offset).
		Msg("output too large to produce; its input is dead-lettered instead")
	var orig []byte
	if k.d != nil {
		orig = k.d.AppendJSON(nil)
	}
	dl := declaration.DeadLetter{Source: k.topic, Partition: k.part, Offset: k.offset, Kind: "output_size", Original: orig,
		Reason: fmt.Sprintf("its %d-byte output to %s cannot be produced: %v", len(m.Value), m.Topic, err)}
	s.Metrics.DeadLetters.WithLabelValues(k.topic, dl.Kind).Inc()
	s.produce(ctx, kafka.Message{Topic: s.Config.DeadLetterTopic, Key: m.Key, Value: dl.AppendJSON(nil),
		WriterData: &ack{topic: k.topic, part: k.part, offset: k.offset, epoch: k.epoch}})
}

// completed is the writer's completion hook: acknowledged outputs mark their
// inputs done; failed ones go to the retry queue. It never blocks: the
// writer's Close waits for it, and the writer's partition goroutines call it.
func (s *Stream) completed(msgs []kafka.Message, err error) {
	now := time.Now()
	if err != nil {
		s.requeue(fmt.Errorf("producing %d messages to %s: %w", len(msgs), msgs[0].Topic, err), msgs)
		return
	}
	// While outputs wait for a retry, another partition's success does not
	// mean the broker is back for them: the backoff keeps growing.
	if s.retries.len() == 0 {
		s.failStreak.Store(0)
	}
	s.produceSucceeded()
	for _, m := range msgs {
		k := m.WriterData.(*ack)
		if !k.last() {
			continue // the input waits for its other messages
		}
		s.tracker.done(k.topic, k.part, k.offset, k.epoch)
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

// Retry backoff: exponential in the failures since the last acknowledged
// produce, capped, with jitter so that instances failing together do not
// retry together.
const (
	retryBackoffMin = 100 * time.Millisecond
	retryBackoffMax = 5 * time.Second
)

func retryBackoff(failures int64) time.Duration {
	d := retryBackoffMax
	if failures < 16 {
		d = min(retryBackoffMax, retryBackoffMin<<max(failures-1, 0))
	}
	// Equal jitter: at least half the delay, so that the backoff still grows.
	return d/2 + rand.N(d/2+1)
}

// retryLoop produces the failed outputs again, all that have queued up in
// one call (the writer batches them per partition), after a backoff. It
// returns when stop closes; what is still queued then stays unacknowledged,
// and its inputs uncommitted.
func (s *Stream) retryLoop(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-s.retries.wake:
		}
		select {
		case <-stop:
			return
		case <-time.After(retryBackoff(s.failStreak.Load())):
		}
		if msgs := s.retries.take(); len(msgs) > 0 {
			s.Log.Debug().Int("messages", len(msgs)).Msg("producing failed outputs again")
			s.produce(ctx, msgs...)
		}
	}
}
