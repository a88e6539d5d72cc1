package stream

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/riskmon/riskmon/declaration"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// The group's assignment gives partition i of both topics to one member,
// whatever order the metadata lists them in.
func TestCopartitionAssignment(t *testing.T) {
	members := []kafka.GroupMember{{ID: "c", Topics: []string{"d", "o"}}, {ID: "a", Topics: []string{"d", "o"}}, {ID: "b", Topics: []string{"d", "o"}}}
	var parts []kafka.Partition
	for _, id := range []int{4, 0, 5, 2, 1, 3} {
		parts = append(parts, kafka.Partition{Topic: "d", ID: id})
	}
	for _, id := range []int{1, 3, 5, 0, 2, 4} {
		parts = append(parts, kafka.Partition{Topic: "o", ID: id})
	}
	got := copartition{}.AssignGroups(members, parts)
	want := map[string][]int{"a": {0, 1}, "b": {2, 3}, "c": {4, 5}}
	for m, ids := range want {
		if !slices.Equal(got[m]["d"], ids) || !slices.Equal(got[m]["o"], ids) {
			t.Errorf("member %s: declarations %v, outcomes %v, want %v for both", m, got[m]["d"], got[m]["o"], ids)
		}
	}
}

// A declaration's own records travel packed in one changelog message and
// come back whole; a message cut short is refused.
func TestChangelogPack(t *testing.T) {
	ws := []detectors.Write{{Key: []byte("\xffPD1"), Value: []byte("features")}, {Key: []byte("h\x00d\x00D1"), Value: []byte{}}, {Key: []byte("\xffSD1"), Value: []byte("sel")}}
	m := packMessage("cl", 3, []byte("\xffDD1"), ws, &ack{})
	if m.Partition != 3 || string(m.Key) != "\xffDD1" {
		t.Fatalf("pack message: partition %d, key %q", m.Partition, m.Key)
	}
	recs, err := decodeRecords(m)
	if err != nil || len(recs) != len(ws) {
		t.Fatalf("decoded %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.Table || string(r.Key) != string(ws[i].Key) || string(r.Value) != string(ws[i].Value) || r.Value == nil {
			t.Errorf("record %d: %+v, want %q = %q", i, r, ws[i].Key, ws[i].Value)
		}
	}
	m.Value = m.Value[:len(m.Value)-2]
	if _, err := decodeRecords(m); err == nil {
		t.Error("a pack cut short was accepted")
	}
	for _, c := range []struct {
		v    []byte
		want engine.Record
	}{{nil, engine.Record{Key: []byte("k")}}, {[]byte("sv"), engine.Record{Key: []byte("k"), Value: []byte("v")}}, {[]byte("tv"), engine.Record{Table: true, Key: []byte("k"), Value: []byte("v")}}} {
		recs, err := decodeRecords(kafka.Message{Key: []byte("k"), Value: c.v})
		if err != nil || len(recs) != 1 || recs[0].Table != c.want.Table || string(recs[0].Value) != string(c.want.Value) || (recs[0].Value == nil) != (c.want.Value == nil) {
			t.Errorf("value %q: %+v %v", c.v, recs, err)
		}
	}
	if _, err := decodeRecords(kafka.Message{Key: []byte("k"), Value: []byte("x")}); err == nil {
		t.Error("a record of an unknown kind was accepted")
	}
}

// The importer's message holds every record the importer has, not only
// those the declaration changed (records of their own, and the sections of
// its combined record): compaction keeps only its latest message, and a new
// owner restores from that one alone.
func TestChangelogImporterWhole(t *testing.T) {
	cfg := config.Default()
	e, _ := engine.New(cfg)
	s := &Stream{Engine: e, Config: cfg.Stream, Metrics: NewMetrics(e)}
	d1 := &declaration.Declaration{ID: "D1", Importer: declaration.Importer{ID: "I"}}
	d2 := &declaration.Declaration{ID: "D2", Importer: declaration.Importer{ID: "I"}}
	s1, s2 := detectors.ImporterKey(nil, "I", "s1"), detectors.ImporterKey(nil, "I", "s2")
	e.Store().Set([]byte("a"), []byte("1"))
	e.Store().Set(s1, []byte("3"))
	first := s.changelogMessages(2, d1, []detectors.Write{{Key: []byte("a"), Value: []byte("1")}, {Key: s1, Value: []byte("3")}, {Key: []byte("x\x00D1"), Value: []byte("own"), Decl: true}}, &ack{})
	if len(first) != 2 || string(first[1].Key) != "\xffDD1" {
		t.Fatalf("messages of the first declaration: %d, the declaration's records not apart", len(first))
	}
	// The importer's records go to the changelog (compacted), the
	// declaration's to the pending topic (deleted after its retention).
	if first[0].Topic != "riskmon-changelog" || first[1].Topic != "riskmon-pending" {
		t.Errorf("the importer's records went to %q, the declaration's to %q", first[0].Topic, first[1].Topic)
	}
	e.Store().Set([]byte("b"), []byte("2"))
	e.Store().Set(s2, []byte("4"))
	msgs := s.changelogMessages(2, d2, []detectors.Write{{Key: []byte("b"), Value: []byte("2")}, {Key: s2, Value: []byte("4")}}, &ack{})
	if len(msgs) != 1 || string(msgs[0].Key) != "\xffII" || msgs[0].Partition != 2 {
		t.Fatalf("messages of the second declaration: %d, first keyed %q", len(msgs), msgs[0].Key)
	}
	fresh, _ := engine.New(cfg)
	recs, err := decodeRecords(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		fresh.Restore(r)
	}
	for key, want := range map[string]string{"a": "1", "b": "2", string(s1): "3", string(s2): "4"} {
		if v, ok := fresh.Store().Get(nil, []byte(key)); !ok || string(v) != want {
			t.Errorf("restored from the importer's latest message alone: %s = %q %v, want %q", key, v, ok, want)
		}
	}
	if v, ok := fresh.Store().Get(nil, engine.PartitionKey(nil, "I")); !ok || len(v) != 4 || v[0] != 2 {
		t.Errorf("the importer's partition not restored: %v %v", v, ok)
	}
}

// Which partitions a new generation restores: those the instance did not
// hold in the previous one, and all of them after generations it missed
// (others may have written them meanwhile); none without a changelog.
func TestToRestore(t *testing.T) {
	cfg := config.Default()
	c := &consumer{s: &Stream{Config: cfg.Stream}}
	step := func(gen int32, mine []int, want ...int) {
		t.Helper()
		got := slices.Sorted(maps.Keys(c.toRestore(gen, mine)))
		if !slices.Equal(got, want) {
			t.Errorf("generation %d holding %v: restores %v, want %v", gen, mine, got, want)
		}
		for _, p := range got {
			c.restored[p] = true // restored
		}
	}
	step(1, []int{0, 1}, 0, 1)
	step(2, []int{1, 2}, 2)    // 1 was held: its state is current
	step(3, []int{0, 1, 2}, 0) // 0 was another's in generation 2
	step(5, []int{0, 1, 2}, 0, 1, 2)
	c.s.Config.ChangelogTopic = "none"
	c.restored = nil
	step(6, []int{0, 1})
}

// A checkpoint's measured offsets are recorded only while what they
// assumed still holds once the state is saved: the same generation (no
// other instance wrote meanwhile), no entity record evicted (for the
// changelog), no declaration record lost (for the pending topic). And only
// the holder of a partition in the current generation hands its records
// over.
func TestHandoverConfirmed(t *testing.T) {
	cfg := config.Default()
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &consumer{s: &Stream{Config: cfg.Stream, Engine: e}, restored: map[int]bool{1: true, 2: false}}
	c.epoch.Store(3)
	c.gen.Store(&kafka.Generation{ID: 7})
	store := e.Store()
	measure := func() *handoverMeasure {
		return &handoverMeasure{c: c, epoch: 3, evicted: store.Evicted(), lost: store.DeclLost(),
			changelog: cfg.Stream.Changelog(), pnd: cfg.Stream.Pending(),
			offsets: engine.HandoverOffsets{cfg.Stream.Changelog(): {1: 40}, cfg.Stream.Pending(): {1: 90}}}
	}
	topics := func(h engine.HandoverOffsets) []string { return slices.Sorted(maps.Keys(h)) }
	if got := topics(measure().confirmed()); !slices.Equal(got, []string{cfg.Stream.Changelog(), cfg.Stream.Pending()}) {
		t.Errorf("nothing changed: %v confirmed, want both topics", got)
	}
	m := measure()
	m.evicted++ // an entity record evicted between the measure and the save
	if got := topics(m.confirmed()); !slices.Equal(got, []string{cfg.Stream.Pending()}) {
		t.Errorf("an eviction meanwhile: %v confirmed, want the pending topic only", got)
	}
	m = measure()
	m.lost++ // a declaration record lost meanwhile
	if got := topics(m.confirmed()); !slices.Equal(got, []string{cfg.Stream.Changelog()}) {
		t.Errorf("a declaration record lost meanwhile: %v confirmed, want the changelog only", got)
	}
	m = measure()
	c.epoch.Store(4) // a rebalance meanwhile
	if got := m.confirmed(); got != nil {
		t.Errorf("a new generation meanwhile: %v confirmed, want none", got)
	}
	c.epoch.Store(3)
	for part, want := range map[int]bool{1: true, 2: true, 3: false} {
		if c.holds(part) != want {
			t.Errorf("holds(%d) = %v in the generation, want %v", part, !want, want)
		}
	}
	c.gen.Store(nil) // between generations
	if m := measure(); m.confirmed() != nil || c.holds(1) {
		t.Errorf("between generations: %v confirmed, holds(1) %v; want none, false", m.confirmed(), c.holds(1))
	}
}

// A checkpoint measures the end offsets of the changelog and pending
// partitions of the declarations partitions it holds complete, leaving out
// the changelog's of a partition held since before an entity record was
// evicted (its importers may have lost one).
func TestMeasureHandover(t *testing.T) {
	brokers := embedded(t, 2)
	cfg := config.Default()
	cfg.Stream.Partitions = 2
	cfg.State.CapacityMB = 1
	ctx := context.Background()
	if err := EnsureTopics(ctx, brokers, cfg.Stream, nil); err != nil {
		t.Fatal(err)
	}
	// 3 and 5 records in the changelog's partitions, 2 and 4 in the
	// pending topic's.
	byKey := kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return int(m.Key[0] - '0') })
	for topic, counts := range map[string][2]int{cfg.Stream.Changelog(): {3, 5}, cfg.Stream.Pending(): {2, 4}} {
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: byKey, BatchTimeout: time.Millisecond,
			RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
		var msgs []kafka.Message
		for p, n := range counts {
			for range n {
				msgs = append(msgs, kafka.Message{Key: []byte{byte('0' + p)}, Value: []byte("x")})
			}
		}
		if err := WriteMessages(w, msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store := e.Store()
	for i := 0; store.Evicted() == 0; i++ { // a store at its cap evicts
		store.Set([]byte(fmt.Sprintf("entity-%d", i)), make([]byte, 64))
	}
	// Partition 0 held since before the evictions, 1 since after them, 2
	// held but not restored.
	c := &consumer{s: &Stream{Config: cfg.Stream, Engine: e, Log: zerolog.Nop()}, brokers: brokers,
		restored: map[int]bool{0: true, 1: true, 2: false}, heldSince: map[int]uint64{1: store.Evicted()}}
	c.epoch.Store(1)
	c.gen.Store(&kafka.Generation{ID: 1})
	m := c.measureHandover(ctx)
	want := engine.HandoverOffsets{cfg.Stream.Changelog(): {1: 5}, cfg.Stream.Pending(): {0: 2, 1: 4}}
	if m == nil || !reflect.DeepEqual(m.offsets, want) {
		t.Fatalf("measured %v, want %v", m, want)
	}
	if got := m.confirmed(); !reflect.DeepEqual(got, want) {
		t.Errorf("confirmed %v, want %v", got, want)
	}
}
