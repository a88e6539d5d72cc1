package detectors

import (
	"sync"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/cespare/xxhash/v2"
)

// Store is the size-capped home of all per-entity detector state. Values are
// small byte strings; when the store is full, fastcache drops its oldest
// chunk, so a key can vanish at any time: a missing key means "no history",
// never "anomalous".
//
// Update is a read-modify-write under a striped lock, so concurrent writers of
// the same key (two workers updating one HS code's statistics) do not lose
// each other's updates.
type Store struct {
	c     *fastcache.Cache
	locks [512]sync.Mutex
}

// NewStore returns a store capped at capacityMB megabytes.
func NewStore(capacityMB int) *Store {
	return &Store{c: fastcache.New(capacityMB << 20)}
}

// Get appends the value of key to dst; ok is false when the key is absent.
func (s *Store) Get(dst, key []byte) (v []byte, ok bool) {
	return s.c.HasGet(dst, key)
}

// Update replaces the value of key with f(old); old is nil when absent. buf is
// scratch space for the old value and is returned (possibly grown) for reuse.
func (s *Store) Update(key, buf []byte, f func(old []byte) []byte) []byte {
	mu := &s.locks[xxhash.Sum64(key)%uint64(len(s.locks))]
	mu.Lock()
	old, ok := s.c.HasGet(buf[:0], key)
	if !ok {
		old = nil
	}
	nv := f(old)
	if nv != nil {
		s.c.Set(key, nv)
	}
	mu.Unlock()
	if old != nil {
		return old[:0]
	}
	return buf
}

// Set replaces the value of key.
func (s *Store) Set(key, value []byte) { s.c.Set(key, value) }

// Delete removes key.
func (s *Store) Delete(key []byte) { s.c.Del(key) }

// Stats reports the store's entry count and bytes in use.
func (s *Store) Stats() (entries, bytes uint64) {
	var st fastcache.Stats
	s.c.UpdateStats(&st)
	return st.EntriesCount, st.BytesSize
}

// Reset drops all state.
func (s *Store) Reset() { s.c.Reset() }

// Save writes the store to a directory (fastcache's format), safe to call
// while the store is in use.
func (s *Store) Save(dir string) error { return s.c.SaveToFileConcurrent(dir, 2) }

// LoadStore reads a store saved by Save; a missing or unreadable directory
// gives an error, so a caller can say it starts without history.
func LoadStore(dir string, capacityMB int) (*Store, error) {
	c, err := fastcache.LoadFromFileMaxBytes(dir, capacityMB<<20)
	if err != nil {
		return nil, err
	}
	return &Store{c: c}, nil
}
