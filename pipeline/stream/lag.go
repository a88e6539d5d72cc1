package stream

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// lagEvery is how often lagLoop measures the lags.
const lagEvery = 5 * time.Second

// partProgress is how far this instance has read a partition it holds, in
// the generation (epoch) that gave it the partition.
type partProgress struct {
	epoch uint64
	next  atomic.Int64 // the next offset to read; < 0: not known yet (no message read, no committed offset)
	at    atomic.Int64 // unix nanoseconds of the last message read, or of the start of reading
}

// reading records that the partition is being read from offset, from now.
func (c *consumer) reading(epoch uint64, p partition, offset int64) *partProgress {
	pp := &partProgress{epoch: epoch}
	pp.next.Store(offset)
	pp.at.Store(time.Now().UnixNano())
	c.mu.Lock()
	if c.progress == nil {
		c.progress = map[partition]*partProgress{}
	}
	c.progress[p] = pp
	c.mu.Unlock()
	return pp
}

// lagLoop measures, every lagEvery, how far behind the input topics are:
//
//   - riskmon_group_lag_messages and riskmon_group_committed_offset, for
//     every partition of the declarations and outcomes topics, from the
//     brokers' end offsets and the group's committed offsets. Every
//     instance reports the same values; they are the only ones that see a
//     partition nobody reads (an instance that died holding it, in a group
//     that has not rebalanced yet).
//   - riskmon_consumer_lag_messages, for the partitions this instance
//     holds, from their end offsets and how far it has read them, so that
//     the gauge grows while nothing is read (at each fetch the fetch loop
//     also sets it). The series of partitions it no longer holds are
//     removed.
//
// A partition this instance holds that has messages to read and has given
// none for stream.stall_seconds makes it unready, with the partitions
// named: a fetch that keeps failing while the brokers answer the probe.
// A partition whose state is still being restored from the changelog is
// not read yet and does not count.
func (s *Stream) lagLoop(cons *consumer, brokers []string, stop <-chan struct{}) {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: s.Security.transport(), Timeout: lagEvery}
	stall := time.Duration(s.Config.StallSeconds) * time.Second
	t := time.NewTicker(lagEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), lagEvery)
		end, committed, err := s.offsets(ctx, cl)
		cancel()
		if err != nil {
			// The probe reports brokers that do not answer; this loop only
			// measures.
			s.Log.Debug().Err(err).Msg("lag not measured")
			continue
		}
		for p, e := range end {
			part := strconv.Itoa(p.part)
			c, ok := committed[p]
			if ok {
				s.Metrics.GroupCommitted.WithLabelValues(p.topic, part).Set(float64(c.next))
			}
			from := e.first // nothing committed: the group starts from the earliest
			if ok && c.next >= 0 {
				from = c.next
			}
			s.Metrics.GroupLag.WithLabelValues(p.topic, part).Set(float64(max(e.last-from, 0)))
		}

		var stalled []string
		now := time.Now()
		held := map[partition]bool{}
		if gen := cons.gen.Load(); gen != nil {
			epoch := cons.epoch.Load()
			for topic, as := range gen.Assignments {
				for _, a := range as {
					p := partition{topic, a.ID}
					e, known := end[p]
					cons.mu.Lock()
					pp := cons.progress[p]
					cons.mu.Unlock()
					if !known || pp == nil || pp.epoch != epoch {
						continue // not read yet (a restore from the changelog)
					}
					next := pp.next.Load()
					if next < 0 {
						next = e.first
						if c, ok := committed[p]; ok && c.next >= 0 {
							next = c.next
						}
					}
					behind := max(e.last-next, 0)
					held[p] = true
					s.Metrics.Lag.WithLabelValues(topic, strconv.Itoa(a.ID)).Set(float64(behind))
					if idle := now.Sub(time.Unix(0, pp.at.Load())); behind > 0 && idle >= stall {
						stalled = append(stalled, fmt.Sprintf("%s/%d (%d messages to read, none read for %s)", topic, a.ID, behind, idle.Round(time.Second)))
					}
				}
			}
			for p := range end {
				if !held[p] {
					s.Metrics.Lag.DeleteLabelValues(p.topic, strconv.Itoa(p.part))
				}
			}
		}
		slices.Sort(stalled)
		s.setStalled(strings.Join(stalled, ", "))
	}
}

// endOffsets are a partition's first and end offsets.
type endOffsets struct{ first, last int64 }

// groupOffset is the group's committed offset on a partition (-1: none).
type groupOffset struct{ next int64 }

// offsets asks the brokers for the first and end offsets of every partition
// of the input topics, and the group coordinator for the group's committed
// offsets.
func (s *Stream) offsets(ctx context.Context, cl *kafka.Client) (map[partition]endOffsets, map[partition]groupOffset, error) {
	topics := []string{s.Config.DeclarationsTopic, s.Config.OutcomesTopic}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, nil, err
	}
	lreq := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	freq := &kafka.OffsetFetchRequest{GroupID: s.Config.Group, Topics: map[string][]int{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			lreq.Topics[t.Name] = append(lreq.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
			freq.Topics[t.Name] = append(freq.Topics[t.Name], p.ID)
		}
	}
	lresp, err := cl.ListOffsets(ctx, lreq)
	if err != nil {
		return nil, nil, err
	}
	end := map[partition]endOffsets{}
	for topic, ps := range lresp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, nil, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			end[partition{topic, p.Partition}] = endOffsets{p.FirstOffset, p.LastOffset}
		}
	}
	fresp, err := cl.OffsetFetch(ctx, freq)
	if err == nil {
		err = fresp.Error
	}
	if err != nil {
		return nil, nil, fmt.Errorf("committed offsets of group %s: %w", s.Config.Group, err)
	}
	committed := map[partition]groupOffset{}
	for topic, ps := range fresp.Topics {
		for _, p := range ps {
			if p.Error == nil {
				committed[partition{topic, p.Partition}] = groupOffset{p.CommittedOffset}
			}
		}
	}
	return end, committed, nil
}
