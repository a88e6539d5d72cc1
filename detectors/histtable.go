package detectors

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

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
	mu      sync.Mutex
	m       map[string]int32 // key -> slot
	entries []tableEntry     // slots, in the clock's order
	hand    int
}

type tableEntry struct {
	key  string
	v    []byte
	used bool // read or updated since the clock hand passed
}

// NewTable returns a table holding at most maxEntries entries.
func NewTable(maxEntries int) *Table {
	t := &Table{tableData: &tableData{max: max(1, maxEntries/64)}}
	for i := range t.shards {
		t.shards[i].m = map[string]int32{}
	}
	return t
}

// lookup returns the entry of key, marked used, or nil.
func (s *tableShard) lookup(key []byte) *tableEntry {
	i, ok := s.m[string(key)]
	if !ok {
		return nil
	}
	e := &s.entries[i]
	e.used = true
	return e
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

func (t *Table) shard(key []byte) *tableShard {
	return &t.shards[xxhash.Sum64(key)%uint64(len(t.shards))]
}

// view calls f with the value of key (nil when there is none) under the
// shard's lock; f may update cached fields of the value in place but must not
// keep it.
func (t *Table) view(key []byte, f func(v []byte)) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	var v []byte
	if e := s.lookup(key); e != nil {
		v = e.v
	}
	f(v)
}

// update calls f with the value of key (nil when there is none) and stores
// what it returns, under the shard's lock. f may modify old in place and
// return it. On a deferred handle f runs later (see Recorder): it must not
// depend on anything the caller changes after update returns.
func (t *Table) update(key []byte, f func(old []byte) []byte) {
	if t.rec != nil {
		t.rec.record(key, f)
		return
	}
	t.apply(key, f)
}

func (t *Table) apply(key []byte, f func(old []byte) []byte) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(key); e != nil {
		nv := f(e.v)
		if len(nv) != len(e.v) || (len(nv) > 0 && &nv[0] != &e.v[0]) {
			e.v = append([]byte(nil), nv...)
		}
		return
	}
	nv := append([]byte(nil), f(nil)...)
	if len(s.entries) < t.max {
		s.m[string(key)] = int32(len(s.entries))
		s.entries = append(s.entries, tableEntry{key: string(key), v: nv})
		return
	}
	i := s.victim()
	delete(s.m, s.entries[i].key)
	t.dropped.Add(1)
	s.entries[i] = tableEntry{key: string(key), v: nv}
	s.m[s.entries[i].key] = int32(i)
}

// Get returns a copy of the value of key, or nil.
func (t *Table) Get(key []byte) []byte {
	var v []byte
	t.view(key, func(b []byte) {
		if b != nil {
			v = append([]byte{}, b...)
		}
	})
	return v
}

// Put sets the value of key (a state handover: see ImporterState).
func (t *Table) Put(key, value []byte) {
	t.apply(key, func([]byte) []byte { return value })
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
	at, k0, k1 int // position; the key is keys[k0:k1]
	f          func(old []byte) []byte
}

// Deferred returns a handle on the same statistics whose updates go to r.
func (t *Table) Deferred(r *Recorder) *Table { return &Table{tableData: t.tableData, rec: r} }

// At tags the updates that follow with the position of a declaration in
// its batch.
func (r *Recorder) At(i int) { r.at = i }

func (r *Recorder) record(key []byte, f func(old []byte) []byte) {
	k0 := len(r.keys)
	r.keys = append(r.keys, key...)
	r.ops = append(r.ops, recordedOp{at: r.at, k0: k0, k1: len(r.keys), f: f})
}

// ApplyRecorded applies the updates of every recorder to t in order of
// position, and of recording within a position, and empties the recorders.
// Each recorder's updates must have been recorded in increasing position
// (a worker handles its declarations in input order).
func (t *Table) ApplyRecorded(recs []*Recorder) {
	inPositionOrder(len(recs), func(l int) int { return len(recs[l].ops) }, func(l, j int) int { return recs[l].ops[j].at }, func(l, j int) {
		op := &recs[l].ops[j]
		t.apply(recs[l].keys[op.k0:op.k1], op.f)
		op.f = nil
	})
	for _, r := range recs {
		r.ops, r.keys = r.ops[:0], r.keys[:0]
	}
}

// inPositionOrder visits the entries of logs logs (sizes by size, each
// sorted by position pos) in order of position; entries of one position
// (all in one log: a declaration has one worker) in their log's order.
func inPositionOrder(logs int, size func(l int) int, pos func(l, j int) int, visit func(l, j int)) {
	next := make([]int, logs)
	for {
		best := -1
		for l := range logs {
			if next[l] < size(l) && (best < 0 || pos(l, next[l]) < pos(best, next[best])) {
				best = l
			}
		}
		if best < 0 {
			return
		}
		for at := pos(best, next[best]); next[best] < size(best) && pos(best, next[best]) == at; next[best]++ {
			visit(best, next[best])
		}
	}
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
		t.apply(k, func([]byte) []byte { return v })
	}
}
