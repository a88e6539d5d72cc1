package detectors

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The entity table agrees with a map under random sets (values of every
// size class, so records move between arenas), updates and deletes, of
// records of their own and of sections of importers' combined records, and
// holds exactly the map's records; a checkpoint of it reads back the same.
func TestEntityTableAgreesWithMap(t *testing.T) {
	s := NewStore(64, 32)
	want := map[string][]byte{}
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() []byte {
		if rng.IntN(2) == 0 {
			return fmt.Appendf(nil, "k%d", rng.IntN(3000))
		}
		return ImporterKey(nil, fmt.Sprint("I", rng.IntN(300)), "detector", fmt.Sprint(rng.IntN(6)))
	}
	for op := 0; op < 200000; op++ {
		k := key()
		switch r := rng.IntN(10); {
		case r < 5:
			v := make([]byte, []int{0, 4, 8, 9, 68, 100, 129, 700, 4096}[rng.IntN(9)])
			if _, _, ok := splitGroupKey(k); ok && len(v) > 600 {
				v = v[:len(v)/8] // six sections of an importer fit in one record
			}
			for i := range v {
				v[i] = byte(rng.Uint32())
			}
			s.Set(k, v)
			want[string(k)] = v
		case r < 7:
			s.Update(k, nil, func(old []byte) []byte {
				if !bytes.Equal(old, want[string(k)]) || (old == nil) != (want[string(k)] == nil) {
					t.Fatalf("op %d: Update of %s saw %x, want %x", op, k, old, want[string(k)])
				}
				nv := append(append([]byte{}, old[:min(len(old), 500)]...), byte(op))
				want[string(k)] = nv
				return nv
			})
		case r < 8:
			s.Delete(k)
			delete(want, string(k))
		default:
			got, ok := s.Get(nil, k)
			w, wok := want[string(k)]
			if ok != wok || !bytes.Equal(got, w) {
				t.Fatalf("op %d: Get(%s) = %d bytes %v, want %d %v", op, k, len(got), ok, len(w), wok)
			}
		}
	}
	records := map[string]bool{}
	for k := range want {
		if g, _, ok := splitGroupKey([]byte(k)); ok {
			k = string(g)
		}
		records[k] = true
	}
	n, _, ev := s.Stats()
	if int(n) != len(records) || ev != 0 {
		t.Fatalf("%d records held and %d evicted, want %d and 0", n, ev, len(records))
	}
	dir := t.TempDir()
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	l, err := LoadStore(dir, 64, 32, "")
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if got, ok := l.Get(nil, []byte(k)); !ok || !bytes.Equal(got, w) {
			t.Fatalf("after loading: %s = %x %v, want %x", k, got, ok, w)
		}
	}
	if n2, _, _ := l.Stats(); n2 != n {
		t.Fatalf("loaded %d records of %d", n2, n)
	}
}

// A table at its cap stays within it, evicts old and unused records first
// (records read all along survive a flood of new ones) and counts every
// record it evicts.
func TestEntityTableEvictsUnusedFirstAndCounts(t *testing.T) {
	s := NewStore(4, 32) // 8 KB a shard
	hot := make([][]byte, 256)
	for i := range hot {
		hot[i] = fmt.Appendf(nil, "hot%d", i)
		s.Set(hot[i], make([]byte, 40))
	}
	const cold = 200000
	for i := 0; i < cold; i++ {
		s.Set(fmt.Appendf(nil, "cold%d", i), make([]byte, 40))
		if i%32 == 0 { // far more often than the clock comes round
			for _, k := range hot {
				s.Get(nil, k)
			}
		}
	}
	n, b, ev := s.Stats()
	if b > 4<<20 {
		t.Errorf("%d bytes allocated, cap 4 MiB", b)
	}
	if n+ev != uint64(len(hot)+cold) {
		t.Errorf("%d held + %d evicted != %d written", n, ev, len(hot)+cold)
	}
	if n > 80000 || ev < cold-80000 {
		t.Errorf("%d held, %d evicted: the cap did not bind", n, ev)
	}
	for _, k := range hot {
		if _, ok := s.Get(nil, k); !ok {
			t.Fatalf("%s, read all along, was evicted", k)
		}
	}
}

// importer_behaviour's record reads back the same from its compact form
// (few headings and origins) and its fixed form (many), and the compact
// form is the one kept while it is smaller.
func TestImporterRecordForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 80; n++ {
		var buf, xb, cb [4 * ibFields]byte
		rec := record(buf[:])
		for f := 0; f < ibHS4; f++ {
			rec.setU32(f, rng.Uint32())
		}
		for range n {
			if rng.IntN(2) == 0 {
				b := rng.IntN(256)
				rec.setU32(ibHS4+b/32, rec.u32(ibHS4+b/32)|1<<(b%32))
			} else {
				b := rng.IntN(128)
				rec.setU32(ibOrigins+b/32, rec.u32(ibOrigins+b/32)|1<<(b%32))
			}
		}
		c := ibCompact(rec, cb[:0])
		got := ibExpand(c, &xb)
		if !bytes.Equal(got, rec) {
			t.Fatalf("%d members: read back %x, want %x", n, got, rec)
		}
		if n <= 20 && len(c) >= 4*ibFields {
			t.Fatalf("%d members kept in %d bytes", n, len(c))
		}
	}
	if ibExpand([]byte{1, 2, 3}, new([4 * ibFields]byte)) != nil {
		t.Fatal("a malformed record was read")
	}
}

// Records whose hashes share the index's 32-bit tag (and so a home cell)
// stay apart: a lookup checks the full hash in the slot.
func TestEntityTableSharedTags(t *testing.T) {
	tab := newEntityTable(8)
	s := &tab.shards[0]
	var hs []uint64
	for i := range 40 {
		h := uint64(7)<<32 | uint64(i+1)*entityShards // shard 0, one tag
		hs = append(hs, h)
		tab.set(s, h, []byte{byte(i)})
	}
	for i := 0; i < len(hs); i += 2 {
		tab.del(s, hs[i])
	}
	for i, h := range hs {
		ci := s.find(h)
		if i%2 == 0 && ci >= 0 {
			t.Fatalf("record %d found after its deletion", i)
		}
		if i%2 == 1 && (ci < 0 || s.value(ci)[0] != byte(i)) {
			t.Fatalf("record %d lost or mixed up among records of one tag", i)
		}
	}
}

// A new record counts as unused until it is used again; a record written
// again is used, and stays so when its value moves to another size class.
func TestEntityTableUseMarks(t *testing.T) {
	tab := newEntityTable(8)
	s := &tab.shards[0]
	h := uint64(5)<<32 | entityShards // shard 0
	used := func() bool { return s.slot(s.find(h))[9]&0x80 != 0 }
	tab.set(s, h, make([]byte, 8))
	if used() {
		t.Fatal("a new record counts as used")
	}
	tab.set(s, h, make([]byte, 8))
	if !used() {
		t.Fatal("a record written again counts as unused")
	}
	tab.set(s, h, make([]byte, 100))
	if !used() {
		t.Fatal("a record that moved to another size class counts as unused")
	}
}
