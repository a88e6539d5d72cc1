package detectors

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// entityTable is the home of the per-entity records (an importer's
// behaviour, its recent values, its digit counts, a party's inspection
// counts): small values updated in place, so that its size follows the
// number of entities, not the number of writes.
//
// A key is known by its 64-bit hash only (xxhash; the key itself is not
// kept): two keys of one hash would share a record, which among 20 million
// keys happens with a probability of about 1 in 100,000. The table has
// 512 shards, each under its own lock, each with an index (hashIndex, at
// most three-quarters full) and one arena per size class of value (the
// value's length rounded up to a multiple of 4 to 64 bytes, of 8 to 128, by
// quarters above, up to 4096 bytes; an arena grows by an eighth). An arena
// slot holds the key's hash (8 bytes), the value's length and a mark of use
// (2 bytes) and the value.
//
// Each shard may allocate capacity/512 bytes (index and arenas). A shard at
// its cap makes room in the arena of the value's class by the clock
// algorithm: the first record not read or written since the clock hand last
// passed it (old and unused first) is evicted and counted. A new record
// counts as unused until it is read or written again, so a flood of
// importers seen once does not push out those seen again and again. Which record is
// evicted depends only on the sequence of reads and writes, so a replay
// evicts the same records every time.
type entityTable struct {
	shards   [entityShards]entityShard
	shardCap int
	evicted  atomic.Uint64
}

const (
	entityShards = 512
	slotHeader   = 10 // hash (8), length (15 bits) and used mark (the top bit)
	maxEntity    = 4096
)

// entityClasses are the value sizes of the arenas.
var entityClasses = func() []int {
	var c []int
	for n := 4; n <= 64; n += 4 {
		c = append(c, n)
	}
	for n := 72; n <= 128; n += 8 {
		c = append(c, n)
	}
	for n := 160; n < maxEntity; n = (n + n/4 + 7) &^ 7 {
		c = append(c, n)
	}
	return append(c, maxEntity)
}()

const classBits = 25 // a reference is class<<classBits | slot

func classOf(n int) int {
	switch {
	case n <= 64:
		return max(0, (n+3)/4-1)
	case n <= 128:
		return 16 + (n-64+7)/8 - 1
	}
	for c := 24; ; c++ {
		if entityClasses[c] >= n {
			return c
		}
	}
}

type entityShard struct {
	mu      sync.Mutex
	idx     hashIndex
	n       int // records held
	bytes   int // allocated: cells and arenas
	arenas  [64]arena
	scratch []byte // a combined record being rewritten
}

type arena struct {
	data []byte // slots of slotHeader + class bytes; len: slots in use or free
	free []int32
	live int
	hand int
}

func newEntityTable(capacityMB int) *entityTable {
	return &entityTable{shardCap: capacityMB << 20 / entityShards}
}

func keyHash(key []byte) uint64 {
	h := xxhash.Sum64(key)
	if h == 0 {
		return 1 // 0 marks a free slot
	}
	return h
}

func (t *entityTable) shardOf(h uint64) *entityShard { return &t.shards[h%entityShards] }

// slotOf returns the bytes of slot i of class c.
func (s *entityShard) slotOf(c, i int) []byte {
	size := slotHeader + entityClasses[c]
	return s.arenas[c].data[i*size : (i+1)*size : (i+1)*size]
}

// find returns the cell of h, or -1.
func (s *entityShard) find(h uint64) int {
	if len(s.idx.cells) == 0 {
		return -1
	}
	for i := s.idx.home(h); s.idx.cells[i] != 0; i = s.idx.next(i) {
		if c := s.idx.cells[i]; sameTag(c, h) && binary.LittleEndian.Uint64(s.slotOf(splitRef(slotOfCell(c)))) == h {
			return i
		}
	}
	return -1
}

func splitRef(ref int32) (c, i int) { return int(ref >> classBits), int(ref & (1<<classBits - 1)) }

// value returns the record of cell ci, marked used.
func (s *entityShard) value(ci int) []byte {
	sl := s.slot(ci)
	sl[9] |= 0x80
	return sl[slotHeader : slotHeader+slotLen(sl)]
}

// slotLen is the length of the value in slot sl.
func slotLen(sl []byte) int { return int(binary.LittleEndian.Uint16(sl[8:]) & 0x7fff) }

// slot returns the arena slot of cell ci.
func (s *entityShard) slot(ci int) []byte {
	return s.slotOf(splitRef(slotOfCell(s.idx.cells[ci])))
}

// set sets the value of hash h; the shard's lock is held.
func (t *entityTable) set(s *entityShard, h uint64, v []byte) {
	if len(v) > maxEntity {
		t.del(s, h)
		t.evicted.Add(1)
		return
	}
	c := classOf(len(v))
	used := byte(0) // a new record is not yet of use: it goes first
	if ci := s.find(h); ci >= 0 {
		if oc, i := splitRef(slotOfCell(s.idx.cells[ci])); oc == c {
			s.write(c, i, h, v, 1)
			return
		}
		t.del(s, h) // the value changes class: it moves, and stays of use
		used = 1
	}
	if 4*(s.n+1) > 3*len(s.idx.cells) {
		if grow := 8 * max(16, len(s.idx.cells)); s.bytes+grow <= t.shardCap || len(s.idx.cells) == 0 {
			s.idx.grow()
			s.bytes += grow
		} else if !t.evictFrom(s, c) && !t.evictAny(s) {
			t.evicted.Add(1) // no room at all: the write is lost
			return
		}
	}
	i, ok := t.alloc(s, c)
	if !ok {
		t.evicted.Add(1)
		return
	}
	s.write(c, i, h, v, used)
	s.idx.place(h, int32(c<<classBits|i))
	s.n++
	s.arenas[c].live++
}

func (s *entityShard) write(c, i int, h uint64, v []byte, used byte) {
	sl := s.slotOf(c, i)
	binary.LittleEndian.PutUint64(sl, h)
	binary.LittleEndian.PutUint16(sl[8:], uint16(len(v))|uint16(used)<<15)
	copy(sl[slotHeader:], v)
}

// alloc returns a free slot of class c: a freed one, a new one within the
// shard's cap, or the clock's victim.
func (t *entityTable) alloc(s *entityShard, c int) (int, bool) {
	a := &s.arenas[c]
	if n := len(a.free); n > 0 {
		i := a.free[n-1]
		a.free = a.free[:n-1]
		return int(i), true
	}
	size := slotHeader + entityClasses[c]
	slots := len(a.data) / size
	if len(a.data)+size > cap(a.data) {
		want := slots + max(4, slots/8)
		if room := (t.shardCap - s.bytes) / size; want-cap(a.data)/size > room {
			want = cap(a.data)/size + room
		}
		if want <= slots {
			if t.evictFrom(s, c) {
				return t.alloc(s, c)
			}
			return 0, false
		}
		grown := make([]byte, len(a.data), want*size)
		copy(grown, a.data)
		s.bytes += cap(grown) - cap(a.data)
		a.data = grown
	}
	a.data = a.data[:len(a.data)+size]
	return slots, true
}

// evictFrom evicts the clock's victim in the arena of class c (its slot
// goes to the free list) and reports whether there was one.
func (t *entityTable) evictFrom(s *entityShard, c int) bool {
	a := &s.arenas[c]
	size := slotHeader + entityClasses[c]
	slots := len(a.data) / size
	if a.live == 0 {
		return false
	}
	for {
		if a.hand >= slots {
			a.hand = 0
		}
		i := a.hand
		a.hand++
		sl := s.slotOf(c, i)
		h := binary.LittleEndian.Uint64(sl)
		if h == 0 {
			continue
		}
		if sl[9]&0x80 != 0 {
			sl[9] &^= 0x80
			continue
		}
		s.idx.remove(h, int32(c<<classBits|i))
		t.freeSlot(s, c, i)
		t.evicted.Add(1)
		return true
	}
}

// evictAny evicts from the first class that has a record.
func (t *entityTable) evictAny(s *entityShard) bool {
	for c := range entityClasses {
		if t.evictFrom(s, c) {
			return true
		}
	}
	return false
}

func (t *entityTable) freeSlot(s *entityShard, c, i int) {
	binary.LittleEndian.PutUint64(s.slotOf(c, i), 0)
	a := &s.arenas[c]
	a.free = append(a.free, int32(i))
	a.live--
	s.n--
}

// del deletes the record of hash h, if any; the shard's lock is held.
func (t *entityTable) del(s *entityShard, h uint64) {
	ci := s.find(h)
	if ci < 0 {
		return
	}
	ref := slotOfCell(s.idx.cells[ci])
	s.idx.remove(h, ref)
	c, i := splitRef(ref)
	t.freeSlot(s, c, i)
}

// stats reports the records held and the bytes allocated.
func (t *entityTable) stats() (entries, bytes uint64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		entries += uint64(s.n)
		bytes += uint64(s.bytes)
		s.mu.Unlock()
	}
	return entries, bytes
}

const entitiesMagic = "riskmon entities 1\n"

// writeTo writes every record as (hash, length, value), little-endian, a
// shard at a time under its lock.
func (t *entityTable) writeTo(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(entitiesMagic)
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		for ci, cell := range s.idx.cells {
			if cell == 0 {
				continue
			}
			sl := s.slot(ci)
			v := sl[slotHeader : slotHeader+slotLen(sl)]
			var hdr [10]byte
			binary.LittleEndian.PutUint64(hdr[:], binary.LittleEndian.Uint64(sl))
			binary.LittleEndian.PutUint16(hdr[8:], uint16(len(v)))
			bw.Write(hdr[:])
			bw.Write(v)
		}
		s.mu.Unlock()
	}
	return bw.Flush()
}

// readFrom adds the records written by writeTo.
func (t *entityTable) readFrom(r io.Reader) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(entitiesMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != entitiesMagic {
		return errors.New("not a riskmon entities file")
	}
	var v [maxEntity]byte
	for n := 0; ; n++ {
		var hdr [10]byte
		if _, err := io.ReadFull(br, hdr[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("entities file: record %d: %w", n, err)
		}
		h, l := binary.LittleEndian.Uint64(hdr[:]), int(binary.LittleEndian.Uint16(hdr[8:]))
		if h == 0 || l > maxEntity {
			return fmt.Errorf("entities file: record %d is corrupt", n)
		}
		if _, err := io.ReadFull(br, v[:l]); err != nil {
			return fmt.Errorf("entities file: record %d: %w", n, err)
		}
		s := t.shardOf(h)
		s.mu.Lock()
		t.set(s, h, v[:l])
		s.mu.Unlock()
	}
}
