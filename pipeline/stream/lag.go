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
}

// reading records that the partition is being read from offset.
func (c *consumer) reading(epoch uint64, p partition, offset int64) *partProgress {
	pp := &partProgress{epoch: epoch}
	pp.next.Store(offset)
	c.mu.Lock()
	if c.progress == nil {
		c.progress = map[partition]*partProgress{}
	}
	c.progress[p] = pp
	c.mu.Unlock()
	return pp
}

// backlog is a held partition seen with messages to read: since when, at
// which next offset. It ends when the offset moves or nothing is left.
type backlog struct {
	since time.Time
	next  int64
}

// lagLoop measures, every lagEvery, how far behind the input topics are:
//
//   - riskmon_group_lag_messages and riskmon_group_committed_offset, for
//     every partition of the declarations and outcomes topics, from the
//     brokers' end offsets and the group's committed offsets. Every
//     instance reports the same values; they are the only ones that see a
//     partition nobody reads (an instance that died holding it, in a group
//     that has not rebalanced yet). A partition whose offsets could not be
//     measured has its series removed, not left at an old value.
//   - riskmon_consumer_lag_messages, for the partitions this instance
//     holds, from their end offsets and how far it has read them, so that
//     the gauge grows while nothing is read (at each fetch the fetch loop
//     also sets it). The series of partitions it no longer holds are
//     removed.
//
// A partition this instance holds that has had messages to read for
// stream.stall_seconds without its offset moving makes it unready, with the
// partition named; so does a held partition whose offsets could not be
// measured for that long (its leader cannot be reached). A partition whose
// state is still being restored from the changelog is not read yet and does
// not count.
func (s *Stream) lagLoop(cons *consumer, brokers []string, stop <-chan struct{}) {
	cl, done := s.Security.client(brokers, lagEvery)
	defer done()
	stall := time.Duration(s.Config.StallSeconds) * time.Second
	t := time.NewTicker(lagEvery)
	defer t.Stop()
	behind := map[partition]backlog{}
	var grouped map[partition]bool // partitions with group series set
	known := map[partition]bool{}  // partitions of the input topics seen so far
	var failing time.Time          // when measuring began to fail; zero while it works
	var lastErr string
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), lagEvery)
		end, committed, err := s.offsets(ctx, cl)
		cancel()
		now := time.Now()
		switch {
		case err != nil:
			if failing.IsZero() { // logged once, not every 5 s
				failing = now
				s.Log.Warn().Err(err).Msg("lag not measured for every input partition")
			}
			lastErr = err.Error()
		case !failing.IsZero():
			failing, lastErr = time.Time{}, ""
			s.Log.Info().Msg("lag measured again for every input partition")
		}

		measured := map[partition]bool{}
		for p, e := range end {
			known[p] = true
			c, ok := committed[p]
			if !ok {
				continue
			}
			part := strconv.Itoa(p.part)
			s.Metrics.GroupCommitted.WithLabelValues(p.topic, part).Set(float64(c))
			s.Metrics.GroupLag.WithLabelValues(p.topic, part).Set(float64(max(e.last-e.resume(c), 0)))
			measured[p] = true
		}
		for p := range grouped {
			if !measured[p] {
				s.Metrics.GroupCommitted.DeleteLabelValues(p.topic, strconv.Itoa(p.part))
				s.Metrics.GroupLag.DeleteLabelValues(p.topic, strconv.Itoa(p.part))
			}
		}
		grouped = measured

		gen := cons.gen.Load()
		if gen == nil {
			continue // between generations: what is held is not known
		}
		var stalled []string
		held := map[partition]bool{}
		epoch := cons.epoch.Load()
		for topic, as := range gen.Assignments {
			for _, a := range as {
				p := partition{topic, a.ID}
				cons.mu.Lock()
				pp := cons.progress[p]
				cons.mu.Unlock()
				if pp == nil || pp.epoch != epoch {
					continue // not read yet (a restore from the changelog)
				}
				held[p] = true
				e, known := end[p]
				if !known {
					delete(behind, p)
					if !failing.IsZero() && now.Sub(failing) >= stall {
						stalled = append(stalled, fmt.Sprintf("%s/%d (offsets not measured for %s: %s)", topic, a.ID, now.Sub(failing).Round(time.Second), lastErr))
					}
					continue
				}
				next := pp.next.Load()
				if next < 0 {
					c, ok := committed[p]
					if !ok {
						c = -1
					}
					next = e.resume(c)
				}
				n := max(e.last-next, 0)
				s.Metrics.Lag.WithLabelValues(topic, strconv.Itoa(a.ID)).Set(float64(n))
				b, seen := behind[p]
				if n == 0 || seen && b.next != next {
					delete(behind, p)
					seen = false
				}
				if n > 0 && !seen {
					b = backlog{since: now, next: next}
					behind[p] = b
				}
				if waited := now.Sub(b.since); n > 0 && waited >= stall {
					what := "none read"
					if in, limit := s.tracker.pending(), s.inFlightLimit(); in >= limit {
						what = fmt.Sprintf("fetching paused at %d outputs unacknowledged", in)
					}
					stalled = append(stalled, fmt.Sprintf("%s/%d (%d messages to read, %s for %s)", topic, a.ID, n, what, waited.Round(time.Second)))
				}
			}
		}
		for p := range behind {
			if !held[p] {
				delete(behind, p)
			}
		}
		for p := range known {
			if !held[p] {
				s.Metrics.Lag.DeleteLabelValues(p.topic, strconv.Itoa(p.part))
			}
		}
		slices.Sort(stalled)
		s.setStalled(strings.Join(stalled, ", "))
	}
}

// endOffsets are a partition's first and end offsets.
type endOffsets struct{ first, last int64 }

// resume is where the group reads the partition from, given its committed
// offset: the earliest offset when nothing is committed (c < 0) or what was
// committed has since been deleted by retention.
func (e endOffsets) resume(c int64) int64 {
	if c < 0 {
		return e.first
	}
	return max(c, e.first)
}

// offsets asks the brokers for the first and end offsets of every partition
// of the input topics, and the group coordinator for the group's committed
// offsets. What it could measure is returned with the first error about the
// rest (a missing topic, a partition whose leader does not answer).
// The committed offsets are the next offsets to read, -1 for none.
func (s *Stream) offsets(ctx context.Context, cl *kafka.Client) (map[partition]endOffsets, map[partition]int64, error) {
	var errs []error
	lreq := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	freq := &kafka.OffsetFetchRequest{GroupID: s.Config.Group, Topics: map[string][]int{}}
	for _, topic := range []string{s.Config.DeclarationsTopic, s.Config.OutcomesTopic} {
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 {
			err = md.Topics[0].Error
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata of %s: %w", topic, err))
			continue
		}
		for _, p := range md.Topics[0].Partitions {
			lreq.Topics[topic] = append(lreq.Topics[topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
			freq.Topics[topic] = append(freq.Topics[topic], p.ID)
		}
	}
	end := map[partition]endOffsets{}
	committed := map[partition]int64{}
	if len(lreq.Topics) == 0 {
		return end, committed, errs[0] // no topic's metadata
	}
	if lresp, err := cl.ListOffsets(ctx, lreq); err != nil {
		errs = append(errs, fmt.Errorf("end offsets: %w", err))
	} else {
		for topic, ps := range lresp.Topics {
			for _, p := range ps {
				if p.Error != nil {
					errs = append(errs, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error))
					continue
				}
				end[partition{topic, p.Partition}] = endOffsets{p.FirstOffset, p.LastOffset}
			}
		}
	}
	fresp, err := cl.OffsetFetch(ctx, freq)
	if err == nil {
		err = fresp.Error
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("committed offsets of group %s: %w", s.Config.Group, err))
	} else {
		for topic, ps := range fresp.Topics {
			for _, p := range ps {
				if p.Error == nil {
					committed[partition{topic, p.Partition}] = p.CommittedOffset
				}
			}
		}
	}
	if len(errs) > 0 {
		return end, committed, errs[0] // one is enough to say what is wrong
	}
	return end, committed, nil
}
