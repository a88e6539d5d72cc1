package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// The changelog (stream.changelog_topic) and the pending topic
// (stream.pending_topic): failover that does not forget.
//
// Every store write the engine makes while assessing a declaration is
// produced in two messages (see changelogMessages): the importer's records
// to the changelog, the declaration's own to the pending topic, each on the
// partition number of the declaration's input partition, in the same
// produce call as the assessment: the input offset is committed only once
// the assessment and every record of it are acknowledged. An applied
// outcome produces the records it changed (the importer's inspection
// counts; the declaration's record, marked learned) to the importer's
// partition of the same two topics, and its offset waits for them the same
// way. The changelog is compacted: it keeps the latest value of each key,
// one an importer. The pending topic is deleted after its retention: a
// declaration's record is needed only until its outcome.
//
// When an instance is given a declarations partition it did not hold in the
// previous generation, it first reads the partitions of the same number of
// both topics to their end and writes every record into its state, then
// reads the declarations: the importers arrive with their history whichever
// instance held them before, even one whose disk is gone. It reads each
// from where its state already holds it, when it knows (its own last
// complete restore of the partition, or its checkpoint's offsets), else
// from the start.

// Changelog record values start with what the key is a key of: a store
// key of an entity record or of a declaration record, a shared-table key
// (what an applied outcome changed), or a pack of store records (see
// changelogMessages; a pack keyed by a declaration holds declaration
// records).
const (
	recordStore = 's'
	recordDecl  = 'd'
	recordTable = 't'
	recordPack  = 'p'
)

func changelogMessage(topic string, part int, r engine.Record, k *ack) kafka.Message {
	var v []byte
	if r.Value != nil {
		kind := byte(recordStore)
		switch {
		case r.Table:
			kind = recordTable
		case r.Decl:
			kind = recordDecl
		}
		v = append(append(make([]byte, 0, 1+len(r.Value)), kind), r.Value...)
	}
	return kafka.Message{Topic: topic, Partition: part, Key: r.Key, Value: v, WriterData: k}
}

// packMessage packs store records into one message with the given key.
func packMessage(topic string, part int, key []byte, ws []detectors.Write, k *ack) kafka.Message {
	n := 1
	for _, w := range ws {
		n += 2*binary.MaxVarintLen32 + len(w.Key) + len(w.Value)
	}
	v := append(make([]byte, 0, n), recordPack)
	for _, w := range ws {
		v = binary.AppendUvarint(v, uint64(len(w.Key)))
		v = append(v, w.Key...)
		v = binary.AppendUvarint(v, uint64(len(w.Value)))
		v = append(v, w.Value...)
	}
	return kafka.Message{Topic: topic, Partition: part, Key: key, Value: v, WriterData: k}
}

// changelogMessages are the changelog messages of a declaration's
// assessment on input partition part, given the store writes made for it:
// the declaration's own records (declaration records) in one message
// keyed by the declaration, and the importer's records in one message keyed
// by the importer. The topic keeps only the latest message of a key, so the
// importer's message holds the current value of every record the importer
// has ever had written, not only those this declaration changed: its
// combined record whole (all the sections of detectors.ImporterKey: the
// detectors' and the model's records of the importer, its partition), and
// the records of its own that it has had written, whose keys the store
// keeps in a list (importerKeysKey, a section of the combined record).
func (s *Stream) changelogMessages(part int, d *declaration.Declaration, writes []detectors.Write, k *ack) []kafka.Message {
	store := s.Engine.Store()
	var own []detectors.Write
	lk := importerKeysKey(d.Importer.ID)
	lv, _ := store.Get(nil, lk)
	known, err := decodeKeyList(lv)
	if err != nil {
		known = nil // a corrupt list: start it again from this declaration's writes
	}
	grown := false
	// The importer's partition, for the records its outcomes change.
	var pb [4]byte
	binary.LittleEndian.PutUint32(pb[:], uint32(part))
	pk := engine.PartitionKey(nil, d.Importer.ID)
	store.Set(pk, pb[:])
	rk := detectors.ImporterRecordKey(d.Importer.ID)
	for _, wr := range append(writes, detectors.Write{Key: pk, Value: pb[:]}) {
		if wr.Decl {
			own = append(own, wr)
			continue
		}
		if detectors.InRecord(wr.Key, rk) {
			continue // travels in the importer's combined record
		}
		if !slices.ContainsFunc(known, func(key []byte) bool { return bytes.Equal(key, wr.Key) }) {
			known, grown = append(known, wr.Key), true
		}
	}
	if grown {
		lv = encodeKeyList(known)
		store.Set(lk, lv)
	}
	imp := make([]detectors.Write, 0, len(known)+2)
	if v, ok := store.Get(nil, rk); rk != nil && ok {
		imp = append(imp, detectors.Write{Key: rk, Value: v})
	}
	for _, key := range known {
		if v, ok := store.Get(nil, key); ok {
			imp = append(imp, detectors.Write{Key: key, Value: v})
		}
	}
	if !detectors.InRecord(lk, rk) {
		imp = append(imp, detectors.Write{Key: lk, Value: lv})
	}
	msgs := []kafka.Message{packMessage(s.Config.StateTopic(false), part, append([]byte{0xff, 'I'}, d.Importer.ID...), imp, k)}
	if len(own) > 0 {
		msgs = append(msgs, packMessage(s.Config.StateTopic(true), part, append([]byte{0xff, 'D'}, d.ID...), own, k))
	}
	s.Metrics.ChangelogRecords.Add(float64(len(imp) + len(own)))
	return msgs
}

// importerKeysKey is the store key of the list of an importer's record keys.
func importerKeysKey(importerID string) []byte {
	return detectors.ImporterKey(nil, importerID, "\xffL")
}

func encodeKeyList(keys [][]byte) []byte {
	var b []byte
	for _, key := range keys {
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
	}
	return b
}

func decodeKeyList(b []byte) ([][]byte, error) {
	var keys [][]byte
	for len(b) > 0 {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return nil, errors.New("corrupt key list")
		}
		keys, b = append(keys, b[n:n+int(l)]), b[n+int(l):]
	}
	return keys, nil
}

// decodeRecords reads a changelog message: one record, or a pack of them.
func decodeRecords(m kafka.Message) ([]engine.Record, error) {
	if len(m.Key) == 0 {
		return nil, errors.New("changelog record without a key")
	}
	if m.Value == nil {
		return []engine.Record{{Key: m.Key}}, nil // a deletion
	}
	switch m.Value[0] {
	case recordStore, recordDecl:
		return []engine.Record{{Decl: m.Value[0] == recordDecl, Key: m.Key, Value: m.Value[1:]}}, nil
	case recordTable:
		return []engine.Record{{Table: true, Key: m.Key, Value: m.Value[1:]}}, nil
	case recordPack:
		var out []engine.Record
		decl := bytes.HasPrefix(m.Key, []byte{0xff, 'D'})
		b := m.Value[1:]
		for len(b) > 0 {
			var parts [2][]byte
			for i := range parts {
				l, n := binary.Uvarint(b)
				if n <= 0 || uint64(len(b)-n) < l {
					return nil, errors.New("changelog pack cut short")
				}
				parts[i], b = b[n:n+int(l)], b[n+int(l):]
			}
			out = append(out, engine.Record{Decl: decl, Key: parts[0], Value: parts[1]})
		}
		return out, nil
	}
	return nil, fmt.Errorf("changelog record of unknown kind %q", m.Value[0])
}

// changelogBalancer sends the records of the changelog and the pending
// topic to the partition they name and everything else through next.
type changelogBalancer struct {
	topics []string
	next   kafka.Balancer
}

func (b changelogBalancer) Balance(m kafka.Message, partitions ...int) int {
	if slices.Contains(b.topics, m.Topic) {
		for _, p := range partitions {
			if p == m.Partition {
				return p
			}
		}
	}
	return b.next.Balance(m, partitions...)
}

// handOverOutcome produces the records an applied outcome changed to the
// changelog partition of its importer, with the outcome's input offset
// waiting for them; false when there is nothing to produce (no changelog,
// or an importer this instance never saw: its owner has the records).
func (s *Stream) handOverOutcome(ctx context.Context, it *item) bool {
	if s.Config.Changelog() == "" || it.o.ImporterID == "" {
		return false
	}
	pb, ok := s.Engine.Store().Get(nil, engine.PartitionKey(nil, it.o.ImporterID))
	if !ok || len(pb) != 4 {
		return false
	}
	part := int(binary.LittleEndian.Uint32(pb))
	if c := s.consumer.Load(); c == nil || !c.holds(part) {
		// Its importer's partition is another instance's now (or not yet
		// restored): this instance's records of it are stale, and would
		// overwrite the owner's.
		return false
	}
	recs := s.Engine.OutcomeRecords(it.o.ImporterID, it.o.DeclarationID)
	if len(recs) == 0 {
		return false
	}
	m := it.m
	k := &ack{topic: m.Topic, part: m.Partition, offset: m.Offset, epoch: it.epoch}
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = changelogMessage(s.Config.StateTopic(r.Decl), part, r, k)
	}
	k.left.Store(int32(len(msgs)))
	s.Metrics.ChangelogRecords.Add(float64(len(msgs)))
	s.produce(ctx, msgs...)
	return true
}

// restore brings the engine's state of declarations partition part up to
// date from the partitions of the same number of the changelog and the
// pending topic (stream.HandoverTopics), each from where this
// process's state already holds its records (c.handover: an earlier restore
// or a checkpoint) or else from its start, to its end as it is now. It
// returns early, with an error, when ctx ends.
func (c *consumer) restore(ctx context.Context, part int) error {
	s := c.s
	s.Metrics.ChangelogRestoring.Inc()
	defer s.Metrics.ChangelogRestoring.Dec()
	client, done := s.Security.client(c.brokers, 10*time.Second)
	defer done()
	for _, topic := range s.Config.HandoverTopics() {
		if err := c.restoreTopic(ctx, client, topic, part); err != nil {
			return err
		}
	}
	return nil
}

// restoreTopic is restore's work on one topic (the changelog or the pending
// topic).
func (c *consumer) restoreTopic(ctx context.Context, client *kafka.Client, topic string, part int) error {
	s := c.s
	start := time.Now()
	first, last, err := c.changelogBounds(ctx, client, topic, part)
	if err != nil {
		return err
	}
	c.mu.Lock()
	from, known := c.handover[topic][part]
	evicted := s.Engine.Store().Evicted()
	if known && topic == s.Config.Changelog() && evicted > c.heldSince[part] {
		// Importers' records may have been evicted since: read it all.
		s.Log.Info().Str("topic", topic).Int("partition", part).Uint64("evicted", evicted-c.heldSince[part]).
			Msg("entity records were evicted since this instance's state held the changelog; reading it from its start")
		known = false
	}
	c.mu.Unlock()
	switch {
	case !known:
		from = first
	case from > last:
		// The topic was emptied or made again since: what the state holds
		// says nothing of what it holds now.
		s.Log.Warn().Str("topic", topic).Int("partition", part).Int64("held_to", from).Int64("end", last).
			Msg("the changelog ends before the offset this instance's state holds it to; reading it from its start")
		from = first
	case from < first:
		from = first // the records below were deleted
	}
	n := 0
	if last > from {
		rc := PartitionReaderConfig(c.brokers, topic, part)
		rc.Dialer = s.Security.dialer()
		rc.ErrorLogger = kafkaErrorLogger(s.Log, "changelog")
		r := kafka.NewReader(rc)
		defer r.Close()
		if err := r.SetOffset(from); err != nil {
			return fmt.Errorf("changelog partition %d: %w", part, err)
		}
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.Log.Warn().Err(err).Str("topic", topic).Int("partition", part).Msg("changelog fetch failed; retrying")
				continue
			}
			if recs, err := decodeRecords(m); err != nil {
				s.Log.Warn().Err(err).Str("topic", topic).Int("partition", part).Int64("offset", m.Offset).Msg("changelog record skipped")
			} else {
				for _, rec := range recs {
					s.Engine.Restore(rec)
				}
				n += len(recs)
			}
			if m.Offset >= last-1 {
				break
			}
		}
	}
	c.mu.Lock()
	if c.handover[topic] == nil {
		c.handover[topic] = map[int]int64{}
	}
	c.handover[topic][part] = last
	if topic == s.Config.Changelog() {
		c.heldSince[part] = evicted
	}
	c.mu.Unlock()
	s.Metrics.ChangelogRestored.Add(float64(n))
	s.Log.Info().Str("topic", topic).Int("partition", part).Int64("from_offset", from).Int64("to_offset", last).
		Bool("from_held", known && from > first).Int("records", n).Dur("took_ms", time.Since(start)).
		Msg("state restored from the changelog")
	return nil
}

// changelogBounds is the first and the end offset of a changelog
// partition. A changelog created at start-up may take a moment to be known:
// it retries for 30 s before it says the partition is missing, and for as
// long as ctx lasts on other errors.
func (c *consumer) changelogBounds(ctx context.Context, client *kafka.Client, topic string, part int) (first, last int64, err error) {
	giveUp := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			topic: {kafka.FirstOffsetOf(part), kafka.LastOffsetOf(part)}}})
		if err == nil {
			if po := resp.Topics[topic]; len(po) == 1 && po[0].Error == nil {
				return po[0].FirstOffset, po[0].LastOffset, nil
			} else if len(po) == 1 {
				err = po[0].Error
				if errors.Is(err, kafka.UnknownTopicOrPartition) && time.Now().After(giveUp) {
					return 0, 0, fmt.Errorf("changelog topic %s has no partition %d (create it with as many partitions as %s): %w",
						topic, part, c.s.Config.DeclarationsTopic, err)
				}
			} else {
				err = fmt.Errorf("no offsets for partition %d", part)
			}
		}
		c.s.Log.Warn().Err(err).Str("topic", topic).Int("partition", part).Msg("cannot read the changelog's offsets; retrying")
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// A handoverMeasure is a checkpoint's changelog offsets: for each
// changelog partition whose declarations partition this instance holds with
// its state complete, its end offset measured before the state is saved
// (every record below it is in that state: its write preceded its produce,
// and in a generation this instance is the partition's one writer), with
// what must still hold once the state is saved for them to be recorded.
type handoverMeasure struct {
	c              *consumer
	offsets        engine.HandoverOffsets
	epoch          uint64
	evicted, lost  uint64
	changelog, pnd string
}

// measureHandover measures a checkpoint's changelog offsets. Left out: the
// changelog's of a partition whose state was complete before an entity
// record was evicted (the count is the whole store's: any partition's
// importers may have lost one), the pending topic's once declaration
// records were lost to a disk error, and a partition whose offset cannot be
// measured. A restart reads what is left out from its start.
func (c *consumer) measureHandover(ctx context.Context) *handoverMeasure {
	topics := c.s.Config.HandoverTopics()
	if len(topics) == 0 || c.gen.Load() == nil {
		return nil
	}
	store := c.s.Engine.Store()
	m := &handoverMeasure{c: c, epoch: c.epoch.Load(), evicted: store.Evicted(), lost: store.DeclLost(),
		changelog: c.s.Config.Changelog(), pnd: c.s.Config.Pending()}
	var reqs []kafka.OffsetRequest
	evictedSince := map[int]bool{}
	c.mu.Lock()
	for p, complete := range c.restored {
		if complete {
			reqs = append(reqs, kafka.LastOffsetOf(p))
			evictedSince[p] = m.evicted > c.heldSince[p]
		}
	}
	c.mu.Unlock()
	if len(reqs) == 0 {
		return nil
	}
	client, done := c.s.Security.client(c.brokers, 5*time.Second)
	defer done()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, topic := range topics {
		req.Topics[topic] = reqs
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		c.s.Log.Warn().Err(err).Strs("topics", topics).Msg("cannot measure the changelog's end offsets for the checkpoint; a restart will read the changelog from its start")
		return nil
	}
	m.offsets = engine.HandoverOffsets{}
	for _, topic := range topics {
		m.offsets[topic] = map[int]int64{}
		for _, po := range resp.Topics[topic] {
			switch {
			case po.Error != nil:
			case topic == m.pnd && m.lost > 0:
			case topic == m.changelog && evictedSince[po.Partition]:
			default:
				m.offsets[topic][po.Partition] = po.LastOffset
			}
		}
	}
	return m
}

// confirmed is called once the state is saved: the offsets, less those
// whose conditions no longer hold (the generation changed: another
// instance may have written; an entity record was evicted, or a declaration
// record lost, while the state was measured and saved).
func (m *handoverMeasure) confirmed() engine.HandoverOffsets {
	if m == nil || m.c.epoch.Load() != m.epoch || m.c.gen.Load() == nil {
		return nil
	}
	store := m.c.s.Engine.Store()
	if store.Evicted() != m.evicted {
		delete(m.offsets, m.changelog)
	}
	if store.DeclLost() != m.lost {
		delete(m.offsets, m.pnd)
	}
	return m.offsets
}

// holds reports whether this instance holds declarations partition part
// in the current generation (its restore done, or failed: its declarations
// write the partition's records either way).
func (c *consumer) holds(part int) bool {
	if c.gen.Load() == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.restored[part]
	return ok
}

// handedOver records, after a checkpoint is saved, the offsets its state
// holds the changelog to: a partition given back later restores from there.
func (c *consumer) handedOver(h engine.HandoverOffsets) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, parts := range h {
		if c.handover[topic] == nil {
			c.handover[topic] = map[int]int64{}
		}
		maps.Copy(c.handover[topic], parts)
	}
}
