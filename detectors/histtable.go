package detectors

import (
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
// it, an arbitrary entry of the shard is dropped, and a dropped entry means
// "no history", like an evicted key in the Store.
type Table struct {
	shards  [64]tableShard
	max     int // per shard
	dropped atomic.Uint64
}

type tableShard struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewTable returns a table holding at most maxEntries entries.
func NewTable(maxEntries int) *Table {
	t := &Table{max: max(1, maxEntries/64)}
	for i := range t.shards {
		t.shards[i].m = map[string][]byte{}
	}
	return t
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
	f(s.m[string(key)])
}

// update calls f with the value of key (nil when there is none) and stores
// what it returns, under the shard's lock. f may modify old in place and
// return it.
func (t *Table) update(key []byte, f func(old []byte) []byte) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[string(key)]
	nv := f(old)
	if ok && len(nv) == len(old) && (len(nv) == 0 || &nv[0] == &old[0]) {
		return // updated in place
	}
	if !ok && len(s.m) >= t.max {
		for k := range s.m { // drop an arbitrary entry
			delete(s.m, k)
			t.dropped.Add(1)
			break
		}
	}
	s.m[string(key)] = append([]byte(nil), nv...)
}

// Dropped is the number of entries dropped to stay within the cap.
func (t *Table) Dropped() uint64 { return t.dropped.Load() }

// Len is the number of entries held.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
