package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/cespare/xxhash/v2"
)

// peek returns a copy of the table's value of key (nil: none), marking it
// used as every read does.
func peek(tab *Table, key []byte) []byte {
	s, v := tab.acquire(key)
	defer s.mu.Unlock()
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// A worker reads its own deferred writes; nobody else sees them until they
// are applied, in order of position whichever worker made them.
func TestDeferredWritesInPositionOrder(t *testing.T) {
	s := NewStore(32, 32)
	tab := NewTable(64000)
	ovs := []*Overlay{{}, {}}
	recs := []*Recorder{{}, {}}
	stores := []*Store{s.Deferred(ovs[0]), s.Deferred(ovs[1])}
	tabs := []*Table{tab.Deferred(recs[0]), tab.Deferred(recs[1])}
	key := []byte("k")
	// Positions 0..5 alternate between the workers; each adds a hit at
	// time 1000+position to the same key, decayed with a half-life of a
	// second: the final record depends on the order (a count is not decayed
	// back in time), and in position order it is the one a table updated
	// at once, in that order, holds.
	want := NewTable(64000)
	op := func(pos int) tableOp {
		return tableOp{kind: opHits, now: uint32(1000 + pos), a: 1, b: 1, slow: time.Second}
	}
	for pos := range 6 {
		want.update(key, op(pos))
	}
	if r := record(peek(want, key)); r.f32(hHits) != 1.96875 {
		t.Fatalf("hits after updates in order: %v, want 1.96875", r.f32(hHits))
	}
	for pos := range 6 {
		w := pos % 2
		ovs[w].At(pos)
		recs[w].At(pos)
		stores[w].Update(key, nil, func(old []byte) []byte { return append(append([]byte(nil), old...), byte('0'+pos)) })
		tabs[w].update(key, op(pos))
	}
	if v, ok := stores[0].Get(nil, key); !ok || string(v) != "024" {
		t.Errorf("worker 0 reads %q %v through its overlay, want its own writes 024", v, ok)
	}
	if _, ok := s.Get(nil, key); ok {
		t.Error("the store shows a deferred write before it is applied")
	}
	if seen := peek(tab, key); seen != nil {
		t.Errorf("the table shows a deferred update before it is applied: %q", seen)
	}
	// Worker 1's last write (position 5) wins over worker 0's (4).
	s.ApplyOverlays(ovs)
	tab.ApplyRecorded(recs)
	if v, _ := s.Get(nil, key); string(v) != "135" {
		t.Errorf("store after applying: %q, want the last position's value 135", v)
	}
	if seen, w := peek(tab, key), peek(want, key); string(seen) != string(w) {
		t.Errorf("table after applying: %v, want every update in position order: %v", seen, w)
	}
	if len(ovs[0].log)+len(ovs[1].log)+len(recs[0].ops)+len(recs[1].ops) != 0 {
		t.Error("overlays or recorders not emptied")
	}
}

// Every declaration write reaches the ring at the batch's end, whichever
// overlays the writes were in: two declarations of one id (of two
// importers, which may be in one overlay or in two) are two writes, so what
// the ring later drops does not depend on how the batch was shared out.
// (An entity write superseded in its overlay is left out: entities written
// while assessing are their importer's, in one overlay.)
func TestDeclarationWritesNotSuperseded(t *testing.T) {
	key := []byte("decl")
	sets := func(lanes int) uint64 {
		s := NewStore(32, 32)
		ovs := []*Overlay{{}, {}}
		for pos := range 2 {
			o := ovs[pos%lanes]
			o.At(pos)
			s.Deferred(o).SetDecl(key, []byte{byte('a' + pos)})
		}
		s.ApplyOverlays(ovs[:lanes])
		if v, _ := s.GetDecl(nil, key); string(v) != "b" {
			t.Errorf("%d overlays: record %q, want the later write b", lanes, v)
		}
		var st fastcache.Stats
		s.decl.(ring).UpdateStats(&st)
		return st.SetCalls
	}
	if one, two := sets(1), sets(2); one != 2 || two != 2 {
		t.Errorf("writes to the ring: %d from one overlay, %d from two; want 2 and 2", one, two)
	}
}

// A full table shard drops an entry nobody used since the clock hand last
// passed: entries read again survive, and every drop is counted.
func TestTableDropsUnusedFirst(t *testing.T) {
	tab := NewTable(64 * 4) // 4 entries a shard
	keys := map[int][][]byte{}
	for i := 0; len(keys[0]) < 8; i++ { // 8 keys of shard 0
		k := []byte(fmt.Sprint("key", i))
		if tab.shardOf(xxhash.Sum64(k)) == &tab.shards[0] {
			keys[0] = append(keys[0], k)
		}
	}
	ks := keys[0]
	set := func(k []byte) { tab.update(k, tableOp{kind: opHist, a: 1}) }
	for _, k := range ks[:4] {
		set(k)
	}
	set(ks[4]) // full: ks[0], the oldest and never read since, is dropped
	// Read ks[1] and ks[2] again; ks[3] is not.
	peek(tab, ks[1])
	peek(tab, ks[2])
	set(ks[5]) // drops ks[3], the one not read since
	has := func(k []byte) bool { return peek(tab, k) != nil }
	if has(ks[0]) || has(ks[3]) || !has(ks[1]) || !has(ks[2]) || !has(ks[4]) || !has(ks[5]) {
		t.Errorf("kept: %v %v %v %v %v %v, want the unused ks[0] and ks[3] dropped", has(ks[0]), has(ks[1]), has(ks[2]), has(ks[3]), has(ks[4]), has(ks[5]))
	}
	if tab.Dropped() != 2 || tab.Len() != 4 {
		t.Errorf("dropped %d, held %d: want 2 and 4", tab.Dropped(), tab.Len())
	}
}

// Two keys of one 64-bit hash (made up here: xxhash collisions are too rare
// to find) are both found, and dropping either leaves the other.
func TestTableKeysOfOneHash(t *testing.T) {
	tab := NewTable(64 * 2) // 2 entries a shard
	s := &tab.shards[0]
	a, b, c := []byte("a"), []byte("b"), []byte("c")
	s.mu.Lock()
	tab.insert(s, 64, a, []byte{1})
	tab.insert(s, 64, b, []byte{2})
	s.mu.Unlock()
	get := func(k []byte) []byte {
		if e := s.lookup(64, k); e != nil {
			return e.v
		}
		return nil
	}
	if string(get(a)) != "\x01" || string(get(b)) != "\x02" || get(c) != nil {
		t.Fatalf("a %v b %v c %v: want 1, 2 and none", get(a), get(b), get(c))
	}
	// Both were just read: the clock clears their marks and drops a; then
	// (b and d read) b.
	for i, keep := range [][]byte{b, []byte("d")} {
		k := []byte{byte('d' + i)}
		tab.insert(s, 64, k, []byte{9})
		if get(keep) == nil || get(k) == nil {
			t.Errorf("after inserting %q: %q or it is missing", k, keep)
		}
	}
	cells := 0
	for _, c := range s.idx.cells {
		if c != 0 {
			cells++
		}
	}
	if get(a) != nil || get(b) != nil || cells != 2 {
		t.Errorf("dropped keys still found, or %d cells for 2 entries", cells)
	}
}

// The cells find every entry a shard holds and no other, through inserts
// and drops, when many keys share a hash or a home cell (hashes made up
// from a small range).
func TestTableCells(t *testing.T) {
	tab := NewTable(64 * 40) // 40 entries a shard
	s := &tab.shards[0]
	rng := uint64(1)
	held := map[string]bool{}
	var keys []string
	hashes := map[string]uint64{}
	for n := range 3000 {
		rng = rng*6364136223846793005 + 1442695040888963407
		key := []byte(fmt.Sprint("k", n))
		h := (rng >> 58) << 38 // 64 hashes, all of shard 0, sharing home cells
		keys, hashes[string(key)] = append(keys, string(key)), h
		s.mu.Lock()
		if s.lookup(h, key) == nil {
			tab.insert(s, h, key, []byte{1})
		}
		// Read some entries again, so that the clock skips them.
		for i := range s.entries {
			if rng>>(i%60)&1 == 1 {
				s.lookup(s.entries[i].h, []byte(s.entries[i].key))
			}
		}
		s.mu.Unlock()
		clear(held)
		cells := 0
		for _, c := range s.idx.cells {
			if c != 0 {
				cells++
			}
		}
		if cells != len(s.entries) {
			t.Fatalf("after %d keys: %d cells for %d entries", n+1, cells, len(s.entries))
		}
		for i := range s.entries {
			e := &s.entries[i]
			if held[e.key] {
				t.Fatalf("key %q held twice", e.key)
			}
			held[e.key] = true
			if s.lookup(e.h, []byte(e.key)) != e {
				t.Fatalf("after %d keys: %q (slot %d) not found", n+1, e.key, i)
			}
		}
		// A dropped key is not found under its hash. (This looked it up
		// under 64 hashes none of which it was inserted with, so it could
		// not fail.)
		for _, k := range keys[max(0, n-200):n] {
			if !held[k] && s.lookup(hashes[k], []byte(k)) != nil {
				t.Fatalf("dropped key %q still found", k)
			}
		}
	}
	if tab.Dropped() == 0 {
		t.Error("no key dropped")
	}
}
