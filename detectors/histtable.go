package detectors

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Table is the bounded in-memory home of the statistics that are read and
// updated on almost every declaration and shared across importers: the
// peer-group histograms (unit_value, mass_quantity) and the inspection-history
// records (history). They are updated in place, in sharded maps under a lock
// each, where the byte Store would copy every value out and back in (928
// bytes for a histogram). The table is bounded by a number of entries: beyond
// it, the shard drops an entry chosen by the clock algorithm (the oldest
// entry not read or updated since the clock hand last passed it: old and
// unused first), and a dropped entry means "no history", like an evicted key
// in the Store. The choice depends only on the sequence of reads and
// updates, so a replay drops the same entries every time.
//
// A Table value is a handle on the statistics: Deferred gives a handle whose
// updates are recorded instead of applied (micro-batch replay, below), while
// its reads see the statistics as they are.
type Table struct {
	*tableData
	rec *Recorder // nil: updates apply at once
}

type tableData struct {
	shards  [64]tableShard
	max     int // per shard
	dropped atomic.Uint64
}

type tableShard struct {
	mu sync.Mutex
	// idx finds a key's slot by the key's 64-bit hash (whose low bits chose
	// the shard), at most half full. A slot's entry holds the key, which a
	// lookup checks: two keys of one hash are two cells.
	idx     hashIndex
	entries []tableEntry // slots, in the clock's order
	hand    int
}

type tableEntry struct {
	key  string
	h    uint64 // hash of key
	v    []byte
	used bool // read or updated since the clock hand passed
}

// NewTable returns a table holding at most maxEntries entries.
func NewTable(maxEntries int) *Table {
	return &Table{tableData: &tableData{max: max(1, maxEntries/64)}}
}

// lookup returns the entry of key (of hash h), marked used, or nil.
func (s *tableShard) lookup(h uint64, key []byte) *tableEntry {
	if len(s.idx.cells) == 0 {
		return nil
	}
	for i := s.idx.home(h); s.idx.cells[i] != 0; i = s.idx.next(i) {
		if c := s.idx.cells[i]; sameTag(c, h) {
			if e := &s.entries[slotOfCell(c)]; e.h == h && e.key == string(key) {
				e.used = true
				return e
			}
		}
	}
	return nil
}

// index adds a cell for slot i (whose key has no cell), growing the cells
// to keep them at most half full.
func (s *tableShard) index(i int32) {
	if 2*len(s.entries) > len(s.idx.cells) {
		s.idx.grow()
	}
	s.idx.place(s.entries[i].h, i)
}

// victim is the slot the clock hand stops at: the first entry not used
// since the hand last passed it (clearing the marks it passes).
func (s *tableShard) victim() int {
	for {
		if s.hand >= len(s.entries) {
			s.hand = 0
		}
		e := &s.entries[s.hand]
		s.hand++
		if !e.used {
			return s.hand - 1
		}
		e.used = false
	}
}

// insert adds key (of hash h, absent from the shard) with value v, which
// the table then owns, dropping the clock's victim when the shard is full.
// Under the shard's lock.
func (t *Table) insert(s *tableShard, h uint64, key []byte, v []byte) {
	if len(s.entries) < t.max {
		s.entries = append(s.entries, tableEntry{key: string(key), h: h, v: v})
		s.index(int32(len(s.entries) - 1))
		return
	}
	i := int32(s.victim())
	s.idx.remove(s.entries[i].h, i)
	t.dropped.Add(1)
	s.entries[i] = tableEntry{key: string(key), h: h, v: v}
	s.index(i)
}

// shardOf is the shard of the keys of hash h.
func (t *Table) shardOf(h uint64) *tableShard { return &t.shards[h%uint64(len(t.shards))] }

// acquire locks the shard of key and returns it with the value of key (nil
// when there is none). The caller may update cached fields of the value in
// place but must not keep it, and unlocks the shard (s.mu.Unlock()) when
// done.
func (t *Table) acquire(key []byte) (s *tableShard, v []byte) {
	h := xxhash.Sum64(key)
	s = t.shardOf(h)
	s.mu.Lock()
	if e := s.lookup(h, key); e != nil {
		v = e.v
	}
	return s, v
}

// A tableOp is an update of one value, as a plain value (so that a
// Recorder keeps it without allocating): what to add, to which kind of
// value. apply (below) runs it.
type tableOp struct {
	kind       uint8
	now        uint32        // event time (opHits, opRoute)
	a, b       float64       // opHist: the ln-value; opHits: the hit weight and the inspection weight; opRoute: the preference count
	slow, fast time.Duration // half-lives: opHits uses slow
}

const (
	opHist  = iota + 1 // add a value to a log histogram (histAdd)
	opHits             // add decayed hits and inspections (history's rates)
	opRoute            // add a declaration to decayed route counts
)

// apply runs op on old (nil when there is none) and returns the new value:
// old updated in place, or a new slice when old was missing or malformed.
func (op *tableOp) apply(old []byte) []byte {
	switch op.kind {
	case opHist:
		return histAdd(old, op.a)
	case opHits:
		return addHits(old, op)
	case opRoute:
		return addRoute(old, op)
	}
	panic("detectors: unknown table operation")
}

// update applies op to the value of key, or, on a deferred handle, records
// it to be applied later (see Recorder).
func (t *Table) update(key []byte, op tableOp) {
	if t.rec != nil {
		t.rec.record(key, &op)
		return
	}
	t.apply(key, &op)
}

func (t *Table) apply(key []byte, op *tableOp) { t.applyHashed(xxhash.Sum64(key), key, op) }

// applyHashed is apply with the key's hash given.
func (t *Table) applyHashed(h uint64, key []byte, op *tableOp) {
	s := t.shardOf(h)
	s.mu.Lock()
	if e := s.lookup(h, key); e != nil {
		nv := op.apply(e.v)
		if len(nv) != len(e.v) || (len(nv) > 0 && &nv[0] != &e.v[0]) {
			e.v = nv // a new slice (see tableOp.apply)
		}
		s.mu.Unlock()
		return
	}
	t.insert(s, h, key, op.apply(nil))
	s.mu.Unlock()
}

// Get returns a copy of the value of key, or nil.
func (t *Table) Get(key []byte) []byte {
	s, b := t.acquire(key)
	var v []byte
	if b != nil {
		v = append([]byte{}, b...)
	}
	s.mu.Unlock()
	return v
}

// Put sets the value of key (a state handover: see ImporterState).
func (t *Table) Put(key, value []byte) {
	h := xxhash.Sum64(key)
	s := t.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(h, key); e != nil {
		if len(value) != len(e.v) || (len(value) > 0 && &value[0] != &e.v[0]) {
			e.v = append([]byte(nil), value...)
		}
		return
	}
	t.insert(s, h, key, append([]byte(nil), value...))
}

// A Recorder holds the table updates of one worker during a micro-batch,
// each tagged with the position of the declaration that made it, so that
// the updates of all workers can be applied afterwards in input order
// (ApplyRecorded): what a declaration reads of the shared statistics then
// depends on the batch it is in, never on which worker ran it or when.
type Recorder struct {
	at   int
	ops  []recordedOp
	keys []byte
}

type recordedOp struct {
	at, k0, k1 int    // position; the key is keys[k0:k1]
	h          uint64 // the key's hash, taken by the worker
	op         tableOp
}

// Deferred returns a handle on the same statistics whose updates go to r.
func (t *Table) Deferred(r *Recorder) *Table { return &Table{tableData: t.tableData, rec: r} }

// At tags the updates that follow with the position of a declaration in
// its batch.
func (r *Recorder) At(i int) { r.at = i }

func (r *Recorder) record(key []byte, op *tableOp) {
	k0 := len(r.keys)
	r.keys = append(r.keys, key...)
	r.ops = append(r.ops, recordedOp{at: r.at, k0: k0, k1: len(r.keys), h: xxhash.Sum64(key), op: *op})
}

// ApplyRecorded applies the updates of every recorder to t in order of
// position, and of recording within a position, and empties the recorders.
// Each recorder's updates must have been recorded in increasing position
// (a worker handles its declarations in input order).
func (t *Table) ApplyRecorded(recs []*Recorder) {
	inPositionOrder(len(recs), func(l int) int { return len(recs[l].ops) }, func(l, j int) int { return recs[l].ops[j].at }, func(l, j int) uint64 {
		return recs[l].ops[j].h % uint64(len(t.shards))
	}, func(l, j int) {
		op := &recs[l].ops[j]
		t.applyHashed(op.h, recs[l].keys[op.k0:op.k1], &op.op)
	})
	for _, r := range recs {
		r.ops, r.keys = r.ops[:0], r.keys[:0]
	}
}

// inPositionOrder visits the entries of logs logs (sizes by size, each
// sorted by position pos) in order of position; entries of one position
// (all in one log: a declaration has one worker) in their log's order.
// Entries of different shards (shard gives the index of the independent
// part of the state an entry changes: a shard of a table, a bucket of
// fastcache, each with its own lock and its own eviction) are independent:
// they are visited by one goroutine per core, each visiting the entries of
// its shards in that order, so each shard sees the same sequence as in one
// pass.
func inPositionOrder(logs int, size func(l int) int, pos func(l, j int) int, shard func(l, j int) uint64, visit func(l, j int)) {
	parts := uint64(min(runtime.GOMAXPROCS(0), 8))
	total := 0
	for l := range logs {
		total += size(l)
	}
	if total < 512 {
		parts = 1
	}
	lists := make([][][2]int32, parts)
	next := make([]int, logs)
	for {
		best := -1
		for l := range logs {
			if next[l] < size(l) && (best < 0 || pos(l, next[l]) < pos(best, next[best])) {
				best = l
			}
		}
		if best < 0 {
			break
		}
		for at := pos(best, next[best]); next[best] < size(best) && pos(best, next[best]) == at; next[best]++ {
			p := uint64(0)
			if parts > 1 {
				p = shard(best, next[best]) % parts
			}
			lists[p] = append(lists[p], [2]int32{int32(best), int32(next[best])})
		}
	}
	var wg sync.WaitGroup
	for _, list := range lists[1:] {
		wg.Go(func() {
			for _, e := range list {
				visit(int(e[0]), int(e[1]))
			}
		})
	}
	for _, e := range lists[0] {
		visit(int(e[0]), int(e[1]))
	}
	wg.Wait()
}

// Dropped is the number of entries dropped to stay within the cap.
func (t *Table) Dropped() uint64 { return t.dropped.Load() }

// Len is the number of entries held.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

// WriteTo writes every entry as (key length, key, value length, value), with
// 32-bit little-endian lengths, a shard at a time under its lock.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	var hdr [4]byte
	put := func(b []byte) error {
		binary.LittleEndian.PutUint32(hdr[:], uint32(len(b)))
		if _, err := bw.Write(hdr[:]); err != nil {
			return err
		}
		_, err := bw.Write(b)
		n += int64(4 + len(b))
		return err
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, e := range s.entries {
			if err := put([]byte(e.key)); err != nil {
				s.mu.Unlock()
				return n, err
			}
			if err := put(e.v); err != nil {
				s.mu.Unlock()
				return n, err
			}
		}
		s.mu.Unlock()
	}
	return n, bw.Flush()
}

// ReadFrom adds the entries written by WriteTo.
func (t *Table) ReadFrom(r io.Reader) (int64, error) {
	br := bufio.NewReader(r)
	var n int64
	get := func() ([]byte, error) {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, err
		}
		l := binary.LittleEndian.Uint32(hdr[:])
		if l > 1<<20 {
			return nil, fmt.Errorf("shared statistics file: entry of %d bytes", l)
		}
		b := make([]byte, l)
		_, err := io.ReadFull(br, b)
		n += int64(4 + l)
		return b, err
	}
	for {
		k, err := get()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		v, err := get()
		if err != nil {
			return n, fmt.Errorf("shared statistics file truncated: %w", err)
		}
		t.Put(k, v)
	}
}
