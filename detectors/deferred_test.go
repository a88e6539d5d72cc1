package detectors

import (
	"fmt"
	"testing"
)

// A worker reads its own deferred writes; nobody else sees them until they
// are applied, in order of position whichever worker made them.
func TestDeferredWritesInPositionOrder(t *testing.T) {
	s := NewStore(32)
	tab := NewTable(64000)
	ovs := []*Overlay{{}, {}}
	recs := []*Recorder{{}, {}}
	stores := []*Store{s.Deferred(ovs[0]), s.Deferred(ovs[1])}
	tabs := []*Table{tab.Deferred(recs[0]), tab.Deferred(recs[1])}
	key := []byte("k")
	// Positions 0..5 alternate between the workers; each appends its
	// position to the same key, so the final value spells the order.
	for pos := range 6 {
		w := pos % 2
		ovs[w].At(pos)
		recs[w].At(pos)
		stores[w].Update(key, nil, func(old []byte) []byte { return append(append([]byte(nil), old...), byte('0'+pos)) })
		tabs[w].update(key, func(old []byte) []byte { return append(old, byte('0'+pos)) })
	}
	if v, ok := stores[0].Get(nil, key); !ok || string(v) != "024" {
		t.Errorf("worker 0 reads %q %v through its overlay, want its own writes 024", v, ok)
	}
	if _, ok := s.Get(nil, key); ok {
		t.Error("the store shows a deferred write before it is applied")
	}
	var seen []byte
	tab.view(key, func(v []byte) { seen = v })
	if seen != nil {
		t.Errorf("the table shows a deferred update before it is applied: %q", seen)
	}
	// Worker 1's last write (position 5) wins over worker 0's (4).
	s.ApplyOverlays(ovs)
	tab.ApplyRecorded(recs)
	if v, _ := s.Get(nil, key); string(v) != "135" {
		t.Errorf("store after applying: %q, want the last position's value 135", v)
	}
	tab.view(key, func(v []byte) { seen = append([]byte(nil), v...) })
	if string(seen) != "012345" {
		t.Errorf("table after applying: %q, want every update in position order 012345", seen)
	}
	if len(ovs[0].log)+len(ovs[1].log)+len(recs[0].ops)+len(recs[1].ops) != 0 {
		t.Error("overlays or recorders not emptied")
	}
}

// A full table shard drops an entry nobody used since the clock hand last
// passed: entries read again survive, and every drop is counted.
func TestTableDropsUnusedFirst(t *testing.T) {
	tab := NewTable(64 * 4) // 4 entries a shard
	keys := map[int][][]byte{}
	for i := 0; len(keys[0]) < 8; i++ { // 8 keys of shard 0
		k := []byte(fmt.Sprint("key", i))
		if tab.shard(k) == &tab.shards[0] {
			keys[0] = append(keys[0], k)
		}
	}
	ks := keys[0]
	set := func(k []byte) { tab.update(k, func([]byte) []byte { return []byte{1} }) }
	for _, k := range ks[:4] {
		set(k)
	}
	set(ks[4]) // full: ks[0], the oldest and never read since, is dropped
	// Read ks[1] and ks[2] again; ks[3] is not.
	tab.view(ks[1], func([]byte) {})
	tab.view(ks[2], func([]byte) {})
	set(ks[5]) // drops ks[3], the one not read since
	has := func(k []byte) (ok bool) { tab.view(k, func(v []byte) { ok = v != nil }); return ok }
	if has(ks[0]) || has(ks[3]) || !has(ks[1]) || !has(ks[2]) || !has(ks[4]) || !has(ks[5]) {
		t.Errorf("kept: %v %v %v %v %v %v, want the unused ks[0] and ks[3] dropped", has(ks[0]), has(ks[1]), has(ks[2]), has(ks[3]), has(ks[4]), has(ks[5]))
	}
	if tab.Dropped() != 2 || tab.Len() != 4 {
		t.Errorf("dropped %d, held %d: want 2 and 4", tab.Dropped(), tab.Len())
	}
}
