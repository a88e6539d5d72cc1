package detectors

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// histTable holds the peer-group histograms. They are shared by every
// importer and read and updated on almost every item, so they live in place,
// in sharded maps under a lock each, rather than in the byte store (which
// would copy 928 bytes out and back in on every update). The table is bounded
// by a number of groups: beyond it, an arbitrary group is dropped, and a
// dropped group means "no history", like an evicted key in the Store.
type histTable struct {
	shards [64]histShard
	max    int // per shard
}

type histShard struct {
	mu sync.Mutex
	m  map[string]*[histBytes]byte
}

func newHistTable(maxGroups int) *histTable {
	t := &histTable{max: max(1, maxGroups/64)}
	for i := range t.shards {
		t.shards[i].m = map[string]*[histBytes]byte{}
	}
	return t
}

func (t *histTable) shard(key []byte) *histShard {
	return &t.shards[xxhash.Sum64(key)%uint64(len(t.shards))]
}

// view calls f with the histogram of key (nil when there is none) under the
// shard's lock; f must not keep it.
func (t *histTable) view(key []byte, f func(h []byte)) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.m[string(key)]; ok {
		f(h[:])
		return
	}
	f(nil)
}

// update calls f with the histogram of key (nil when there is none) and
// stores what it returns, under the shard's lock.
func (t *histTable) update(key []byte, f func(old []byte) []byte) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.m[string(key)]
	var old []byte
	if ok {
		old = h[:]
	}
	nv := f(old)
	if ok {
		if &nv[0] != &h[0] {
			copy(h[:], nv)
		}
		return
	}
	if len(s.m) >= t.max {
		for k := range s.m { // drop an arbitrary group
			delete(s.m, k)
			break
		}
	}
	h = new([histBytes]byte)
	copy(h[:], nv)
	s.m[string(key)] = h
}

// len is the number of groups held.
func (t *histTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
