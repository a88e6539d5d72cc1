package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/pipeline/engine"
)

// consumer is riskmon's membership of its consumer group and the reading of
// the partitions the group assigns it.
//
// It uses kafka-go's ConsumerGroup rather than a group Reader because a
// Reader does not say when it has joined, when its generation ends or what it
// was assigned, and readiness on a quiet feed needs exactly that. Each
// generation gets one partition Reader per assigned partition, started at the
// group's committed offset.
type consumer struct {
	s       *Stream
	brokers []string
	group   *kafka.ConsumerGroup
	// out carries fetched messages, in offset order per partition, to the
	// fetch loop.
	out chan fetchedMsg
	// stop asks the partition readers to stop fetching at shutdown while the
	// generation, and with it the right to commit, stays alive.
	stop     chan struct{}
	stopOnce sync.Once

	epoch atomic.Uint64 // generations joined since start; the tracker's epoch
	gen   atomic.Pointer[kafka.Generation]

	mu         sync.Mutex
	assigned   int       // partitions in the current generation
	lostAt     time.Time // when the last generation ended; zero while one is current
	lastJoin   error     // the last failure to join, until a join succeeds
	everJoined bool
	// restored are the declarations partitions whose state this instance
	// holds: restored from the changelog (or needing none) in the last
	// generation, and assigned to it since; true when the restore read the
	// changelog to its end, false when it failed and the partition is read
	// without it. A restore cut short by the end of its generation does not
	// count: the next generation restores again.
	restored map[int]bool
	// handover: for each changelog topic, the offset of each partition
	// below which this process's state holds every record: where the
	// partition's restore starts when it is given it again (seeded from the
	// checkpoint the engine was restored from, moved on by each complete
	// restore and each checkpoint).
	handover engine.HandoverOffsets
	// heldSince is, for each partition in handover, the store's count of
	// evicted entity records when its changelog offset was established: an
	// eviction since may have dropped one of its importers' records, which
	// only a read from the changelog's start brings back.
	heldSince map[int]uint64
	// lastGen is the id of the last generation joined: a later one that is
	// not the next means generations passed without this instance, in which
	// others may have held (and written) any partition.
	lastGen int32
	// progress is how far each partition held is read (lag.go).
	progress map[partition]*partProgress
}

// fetchedMsg is a message with the epoch of the generation that fetched it.
type fetchedMsg struct {
	m     kafka.Message
	epoch uint64
}

func newConsumer(s *Stream, brokers []string) (*consumer, error) {
	c := s.Config
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: c.Group, Brokers: brokers, Dialer: s.Security.dialer(), Topics: []string{c.DeclarationsTopic, c.OutcomesTopic},
		StartOffset: kafka.FirstOffset, HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second,
		// Co-partitioned first (see copartition); kafka-go's defaults after
		// it, so that a group of older and newer instances (a rolling
		// upgrade) still forms.
		GroupBalancers:   []kafka.GroupBalancer{copartition{}, kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}},
		RebalanceTimeout: rebalanceTimeout, JoinGroupBackoff: time.Second,
		// Partitions added later (or a topic whose metadata was not there yet
		// when the group formed) trigger a rebalance instead of being ignored.
		WatchPartitionChanges: true, PartitionWatchInterval: 2 * time.Second,
		ErrorLogger: kafkaErrorLogger(s.Log, "consumer"),
		Logger:      kafka.LoggerFunc(func(f string, a ...any) { s.Log.Debug().Str("component", "consumer").Msgf(f, a...) }),
	})
	if err != nil {
		return nil, fmt.Errorf("consumer group %s: %w", c.Group, err)
	}
	handover := engine.HandoverOffsets{}
	for topic, parts := range s.Engine.CheckpointHandover() {
		handover[topic] = maps.Clone(parts)
	}
	// heldSince starts empty, so a checkpoint's partitions read 0: its state
	// held every record below its offsets, and an eviction since it was
	// loaded (loading included) may have dropped one.
	return &consumer{s: s, brokers: brokers, group: cg, out: make(chan fetchedMsg, 256), stop: make(chan struct{}),
		handover: handover, heldSince: map[int]uint64{}}, nil
}

// copartition is the group's assignment: partition i of every topic goes
// to the same member (ranges of partition numbers over the members sorted
// by id), so that outcomes keyed like the declarations reach the instance
// that holds their declarations and their records (see changelog.go).
// kafka-go's RangeGroupBalancer ranges over partitions in the order the
// metadata lists them, which differs from topic to topic.
type copartition struct{}

func (copartition) ProtocolName() string      { return "riskmon-copartition" }
func (copartition) UserData() ([]byte, error) { return nil, nil }

func (copartition) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	members = slices.Clone(members)
	slices.SortFunc(members, func(a, b kafka.GroupMember) int { return strings.Compare(a.ID, b.ID) })
	out := kafka.GroupMemberAssignments{}
	byTopic := map[string][]int{}
	for _, p := range partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.ID)
	}
	for topic, ids := range byTopic {
		slices.Sort(ids)
		var subscribed []kafka.GroupMember
		for _, m := range members {
			if slices.Contains(m.Topics, topic) {
				subscribed = append(subscribed, m)
			}
		}
		for i, id := range ids {
			if len(subscribed) == 0 {
				break
			}
			m := subscribed[i*len(subscribed)/len(ids)]
			if out[m.ID] == nil {
				out[m.ID] = map[string][]int{}
			}
			out[m.ID][topic] = append(out[m.ID][topic], id)
		}
	}
	return out
}

// run takes part in generation after generation until ctx ends.
func (c *consumer) run(ctx context.Context) {
	for {
		gen, err := c.group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			c.mu.Lock()
			c.lastJoin = err
			c.mu.Unlock()
			c.s.updateReady()
			continue
		}
		var mine []int
		for _, a := range gen.Assignments[c.s.Config.DeclarationsTopic] {
			mine = append(mine, a.ID)
		}
		slices.Sort(mine)
		// Before the generation counts as current: a checkpoint measures
		// the partitions restored in it.
		restoring := c.toRestore(gen.ID, mine)
		epoch := c.epoch.Add(1)
		var parts []partition
		for topic, as := range gen.Assignments {
			for _, a := range as {
				parts = append(parts, partition{topic, a.ID})
			}
		}
		c.s.tracker.assign(epoch, parts)
		c.gen.Store(gen)
		c.mu.Lock()
		c.assigned, c.lostAt, c.lastJoin, c.everJoined = len(parts), time.Time{}, nil, true
		c.mu.Unlock()
		c.s.updateReady()
		c.s.Log.Info().Str("group", c.s.Config.Group).Int32("generation", gen.ID).Int("partitions", len(parts)).
			Ints("declarations_partitions", mine).Msg("joined the consumer group")
		for topic, as := range gen.Assignments {
			for _, a := range as {
				var wait, done chan struct{}
				switch topic {
				case c.s.Config.DeclarationsTopic:
					done = restoring[a.ID]
				case c.s.Config.OutcomesTopic:
					wait = restoring[a.ID]
				}
				gen.Start(func(gctx context.Context) { c.read(gctx, topic, a.ID, a.Offset, epoch, wait, done) })
			}
		}
		// A function started on the generation ends it by returning, so
		// this one returns only once the generation is over.
		gen.Start(func(gctx context.Context) {
			<-gctx.Done()
			c.gen.CompareAndSwap(gen, nil)
			c.mu.Lock()
			c.lostAt = time.Now()
			c.mu.Unlock()
			c.s.updateReady()
		})
	}
}

// toRestore takes note of a new generation, genID, in which this instance
// holds declarations partitions mine, and returns those whose state it must
// restore from the changelog first (none without one), each with a channel
// to close once it is restored: a partition it did not hold in the previous
// generation, or every one when generations passed without it (others may
// have held and written them meanwhile).
func (c *consumer) toRestore(genID int32, mine []int) map[int]chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastGen != 0 && genID != c.lastGen+1 {
		clear(c.restored)
	}
	c.lastGen = genID
	if c.restored == nil {
		c.restored = map[int]bool{}
	}
	for p := range c.restored {
		if !slices.Contains(mine, p) {
			delete(c.restored, p) // another instance may write it now
		}
	}
	restoring := map[int]chan struct{}{}
	if c.s.Config.Changelog() == "" {
		return restoring
	}
	for _, p := range mine {
		if _, ok := c.restored[p]; !ok {
			restoring[p] = make(chan struct{})
		}
	}
	return restoring
}

// read fetches one assigned partition from offset for the generation gctx.
// A declarations partition with done set first restores its state from the
// changelog, then closes done; a partition with wait set (the outcomes of
// one being restored) waits for that first.
func (c *consumer) read(gctx context.Context, topic string, part int, offset int64, epoch uint64, wait, done chan struct{}) {
	// Returning ends the generation: wait for its end whatever happens here.
	defer func() { <-gctx.Done() }()
	ctx, cancel := context.WithCancel(gctx)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	s := c.s
	if done != nil {
		err := c.restore(ctx, part)
		if err != nil && ctx.Err() == nil {
			s.Log.Error().Err(err).Int("partition", part).Msg("state not restored from the changelog; reading the partition without it")
		}
		if ctx.Err() == nil {
			c.mu.Lock()
			c.restored[part] = err == nil
			c.mu.Unlock()
		}
		close(done)
		if ctx.Err() != nil {
			return // cut short: the next generation restores again
		}
	}
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return
		}
	}
	rc := PartitionReaderConfig(c.brokers, topic, part)
	rc.Dialer = s.Security.dialer()
	rc.ErrorLogger = kafkaErrorLogger(s.Log, "consumer")
	rc.Logger = kafka.LoggerFunc(func(f string, a ...any) { s.Log.Debug().Str("component", "consumer").Msgf(f, a...) })
	r := kafka.NewReader(rc)
	defer r.Close()
	// From here the partition counts as read: one it cannot start reading
	// is reported as stalled (lag.go).
	pp := c.reading(epoch, partition{topic, part}, offset)
	if err := r.SetOffset(offset); err != nil {
		s.Log.Error().Err(err).Str("topic", topic).Int("partition", part).Int64("offset", offset).Msg("cannot start reading the partition")
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Log.Error().Err(err).Str("topic", topic).Int("partition", part).Msg("fetch failed; retrying")
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		pp.next.Store(m.Offset + 1)
		select {
		case c.out <- fetchedMsg{m, epoch}:
		case <-ctx.Done():
			return
		}
	}
}

// commit commits offsets through the current generation; between
// generations there is nothing to commit through, and the next round
// tries again.
func (c *consumer) commit(cs []commitPos) error {
	gen := c.gen.Load()
	if gen == nil {
		return errors.New("no current generation of the consumer group")
	}
	offsets := map[string]map[int]int64{}
	for _, p := range cs {
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int]int64{}
		}
		offsets[p.topic][p.part] = p.offset + 1 // the group's offset is the next to read
	}
	return gen.CommitOffsets(offsets)
}

// PartitionReaderConfig is how riskmon reads one partition: `riskmon bench`
// reads its bare-consume baseline with the same settings. MaxBytes is well
// above any message a broker would accept, so that an oversized one is
// fetched and dead-lettered rather than blocking the partition.
//
// MaxWait is also the deadline kafka-go sets for a whole fetch round trip
// (it asks the broker to hold an empty fetch for MaxWait less one second of
// allowance for the network, or most of it when MaxWait is short). At
// 100 ms, any link slower than about 100 ms round trip timed out every
// fetch and nothing was consumed, silently; 2 s tolerates about a second.
// MinBytes 1 makes the broker answer as soon as a message is there, so a
// long MaxWait adds no latency.
func PartitionReaderConfig(brokers []string, topic string, part int) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: part,
		MinBytes: 1, MaxBytes: 64 << 20, MaxWait: 2 * time.Second, ReadBatchTimeout: 10 * time.Second,
		ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: time.Second,
	}
}

// stopFetching stops the partition readers and keeps the generation.
func (c *consumer) stopFetching() { c.stopOnce.Do(func() { close(c.stop) }) }

// close leaves the group.
func (c *consumer) close() error {
	c.stopFetching()
	return c.group.Close()
}

// membership says whether the consumer is a member of its group, and if
// not, why. A generation that ended less than the rebalance timeout ago
// still counts: every rebalance ends one, and the next is joined within that
// timeout, so a monitor should not go unready for each peer that starts or
// stops.
//
// After an outage of the brokers the grace period counts from the outage's
// end (the last failed probe), not from the generation's end: a restarted
// coordinator makes a rejoining member wait up to the rebalance timeout for
// the members it remembers, so the join cannot finish before then.
func (c *consumer) membership(now, outageEnd time.Time) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	group := c.s.Config.Group
	graceFrom := c.lostAt
	if outageEnd.After(graceFrom) {
		graceFrom = outageEnd
	}
	switch {
	case !c.everJoined && c.lastJoin != nil:
		return false, fmt.Sprintf("consumer has not joined group %s: %v", group, c.lastJoin)
	case !c.everJoined:
		return false, "consumer has not joined group " + group
	case c.lostAt.IsZero():
		return true, fmt.Sprintf("consumer in group %s with %d partitions", group, c.assigned)
	case now.Sub(graceFrom) < rejoinGrace:
		return true, fmt.Sprintf("consumer rejoining group %s", group)
	case c.lastJoin != nil:
		return false, fmt.Sprintf("consumer has not rejoined group %s for %s: %v", group, now.Sub(c.lostAt).Round(time.Second), c.lastJoin)
	default:
		return false, fmt.Sprintf("consumer has not rejoined group %s for %s", group, now.Sub(c.lostAt).Round(time.Second))
	}
}

const rebalanceTimeout = 10 * time.Second

// rejoinGrace is how long a member between generations still counts as in
// its group: the rebalance timeout, and the join and sync around it.
const rejoinGrace = rebalanceTimeout + 5*time.Second

// kafkaErrorLogger logs kafka-go's error reports at warn, except timeouts: an
// idle fetch or partition watch whose deadline passed ("i/o timeout") is
// routine on a quiet topic and goes to debug. A broker that is really gone
// still shows in readiness (the probe) and in the fetch errors riskmon logs.
func kafkaErrorLogger(log zerolog.Logger, component string) kafka.Logger {
	return kafka.LoggerFunc(func(f string, a ...any) {
		ev := log.Warn()
		if isTimeout(f, a) {
			ev = log.Debug()
		}
		ev.Str("component", component).Msgf(f, a...)
	})
}

func isTimeout(format string, args []any) bool {
	for _, x := range args {
		if err, ok := x.(error); ok {
			var ne net.Error
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
				return true
			}
		}
	}
	return strings.Contains(fmt.Sprintf(format, args...), "i/o timeout")
}
