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
//
// A Store value is a handle: Deferred gives a handle whose writes go to an
// Overlay (micro-batch replay) and reach the cache later, in input order.
type Store struct {
	*storeData
	ov  *Overlay // nil: writes go to the cache at once
	tap *Tap     // when set, also told of every write
}

// A Tap is told of every write made through a handle (Tapped): stream mode
// hands the writes made while assessing an importer's declaration to the
// changelog of the importer's partition.
type Tap struct {
	Writes []Write
}

// Write is one write to the store: a key and its new value (nil: deleted).
type Write struct {
	Key, Value []byte
}

func (t *Tap) add(key, val []byte) {
	w := Write{Key: append([]byte(nil), key...)}
	if val != nil {
		w.Value = append([]byte{}, val...)
	}
	t.Writes = append(t.Writes, w)
}

// Tapped returns a handle on the same cache that also tells t of its writes.
func (s *Store) Tapped(t *Tap) *Store { return &Store{storeData: s.storeData, tap: t} }

type storeData struct {
	c     *fastcache.Cache
	locks [512]sync.Mutex
}

// NewStore returns a store capped at capacityMB megabytes.
func NewStore(capacityMB int) *Store {
	return &Store{storeData: &storeData{c: fastcache.New(capacityMB << 20)}}
}

// Get appends the value of key to dst; ok is false when the key is absent.
func (s *Store) Get(dst, key []byte) (v []byte, ok bool) {
	if s.ov != nil {
		if v, ok, found := s.ov.get(dst, key); found {
			return v, ok
		}
	}
	return s.c.HasGet(dst, key)
}

// Update replaces the value of key with f(old); old is nil when absent. buf is
// scratch space for the old value and is returned (possibly grown) for reuse.
func (s *Store) Update(key, buf []byte, f func(old []byte) []byte) []byte {
	if s.ov != nil {
		old, ok := s.Get(buf[:0], key)
		if !ok {
			old = nil
		}
		if nv := f(old); nv != nil {
			s.ov.set(key, nv, false)
		}
		if old != nil {
			return old[:0]
		}
		return buf
	}
	mu := &s.locks[xxhash.Sum64(key)%uint64(len(s.locks))]
	mu.Lock()
	old, ok := s.c.HasGet(buf[:0], key)
	if !ok {
		old = nil
	}
	nv := f(old)
	if nv != nil {
		s.c.Set(key, nv)
		if s.tap != nil {
			s.tap.add(key, nv)
		}
	}
	mu.Unlock()
	if old != nil {
		return old[:0]
	}
	return buf
}

// Set replaces the value of key.
func (s *Store) Set(key, value []byte) {
	if s.ov != nil {
		s.ov.set(key, value, false)
		return
	}
	s.c.Set(key, value)
	if s.tap != nil {
		s.tap.add(key, value)
	}
}

// Delete removes key.
func (s *Store) Delete(key []byte) {
	if s.ov != nil {
		s.ov.set(key, nil, true)
		return
	}
	s.c.Del(key)
	if s.tap != nil {
		s.tap.add(key, nil)
	}
}

// An Overlay holds one worker's writes during a micro-batch: the worker
// reads its own writes through it, and at the batch's end the writes of all
// workers reach the cache in input order (ApplyOverlays). fastcache evicts
// by the order of writes, so this keeps what is evicted, and therefore
// every later assessment, independent of the number of workers.
type Overlay struct {
	at   int
	vals map[string]int // key -> index of its latest write in log
	log  []overlayWrite
	buf  []byte // the written values, one after the other
}

type overlayWrite struct {
	at     int
	key    string
	v0, v1 int // the value is buf[v0:v1]
	del    bool
}

// At tags the writes that follow with the position of a declaration in its
// batch.
func (o *Overlay) At(i int) { o.at = i }

func (o *Overlay) get(dst, key []byte) (v []byte, ok, found bool) {
	i, found := o.vals[string(key)]
	if !found {
		return dst, false, false
	}
	w := &o.log[i]
	if w.del {
		return dst, false, true
	}
	return append(dst, o.buf[w.v0:w.v1]...), true, true
}

func (o *Overlay) set(key, val []byte, del bool) {
	if o.vals == nil {
		o.vals = map[string]int{}
	}
	k := string(key)
	o.vals[k] = len(o.log)
	v0 := len(o.buf)
	o.buf = append(o.buf, val...)
	o.log = append(o.log, overlayWrite{at: o.at, key: k, v0: v0, v1: len(o.buf), del: del})
}

// Deferred returns a handle on the same cache whose writes go to o.
func (s *Store) Deferred(o *Overlay) *Store { return &Store{storeData: s.storeData, ov: o} }

// ApplyOverlays writes the overlays' writes to the cache in order of
// position, and of writing within a position, and empties them. Each
// overlay's writes must have been made in increasing position.
func (s *Store) ApplyOverlays(ovs []*Overlay) {
	inPositionOrder(len(ovs), func(l int) int { return len(ovs[l].log) }, func(l, j int) int { return ovs[l].log[j].at }, func(l, j int) {
		w := &ovs[l].log[j]
		if w.del {
			s.c.Del([]byte(w.key))
		} else {
			s.c.Set([]byte(w.key), ovs[l].buf[w.v0:w.v1])
		}
	})
	for _, o := range ovs {
		clear(o.vals)
		clear(o.log)
		o.log, o.buf = o.log[:0], o.buf[:0]
	}
}

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
	return &Store{storeData: &storeData{c: c}}, nil
}
