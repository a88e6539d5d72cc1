package stream

import (
	"slices"
	"testing"

	"github.com/riskmon/riskmon/detectors"
	"github.com/riskmon/riskmon/pipeline/engine"
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
	m := packMessage("cl", 3, "D1", ws, &ack{})
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
