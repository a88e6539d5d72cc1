package detectors

import (
	"os"
	"path/filepath"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/cespare/xxhash/v2"
)

// Store is the size-capped home of all per-entity and per-declaration
// detector state, in two parts:
//
//   - entity records (Get, Set, Update, Delete): what is kept about an
//     importer, a party, a route, updated in place in the entity table
//     (entityTable), whose size follows the number of entities; beyond its
//     cap it evicts old and unused records first, and counts them;
//   - declaration records (GetDecl, SetDecl): what is kept about an
//     assessed declaration until its outcome arrives (its entities, its
//     features, its treatment), written once, in a fastcache ring, which
//     drops the oldest first when full: an outcome that comes later than
//     the ring reaches back finds nothing, and its importer still learns.
//
// Either may lose a key at any time: a missing key means "no history",
// never "anomalous". Update is a read-modify-write under the shard's lock,
// so concurrent writers of the same key (two workers counting one
// declarant) do not lose each other's updates.
//
// A Store value is a handle: Deferred gives a handle whose writes go to an
// Overlay (micro-batch replay) and reach the store later, in input order.
type Store struct {
	*storeData
	ov  *Overlay // nil: writes go to the store at once
	tap *Tap     // when set, also told of every write
}

// A Tap is told of every write made through a handle (Tapped): stream mode
// hands the writes made while assessing an importer's declaration to the
// changelog of the importer's partition.
type Tap struct {
	Writes []Write
}

// Write is one write to the store: a key and its new value (nil: deleted),
// of an entity record or (Decl) a declaration record.
type Write struct {
	Key, Value []byte
	Decl       bool
}

func (t *Tap) add(key, val []byte, decl bool) {
	w := Write{Key: append([]byte(nil), key...), Decl: decl}
	if val != nil {
		w.Value = append([]byte{}, val...)
	}
	t.Writes = append(t.Writes, w)
}

// Tapped returns a handle on the same store that also tells t of its writes.
func (s *Store) Tapped(t *Tap) *Store { return &Store{storeData: s.storeData, tap: t} }

type storeData struct {
	ents *entityTable
	decl declRecords
	log  *declLog // decl, when the records are on disk
	note string   // DeclNote in memory
	// declCarried: in memory, the declaration records were loaded from a
	// checkpoint (see DeclCarried).
	declCarried bool
}

// NewStore returns a store whose entity records may take entityMB
// megabytes and declaration records declMB, in memory (fastcache's minimum
// is 32).
func NewStore(entityMB, declMB int) *Store {
	return &Store{storeData: &storeData{ents: newEntityTable(entityMB), decl: ring{fastcache.New(declMB << 20)}}}
}

// OpenStore is NewStore with the declaration records on disk, in declDir
// (state.pending_dir), where declMB caps their bytes; declDir "" keeps
// them in memory. Records an earlier run left in declDir are deleted: the
// store starts without history (LoadStore keeps them).
func OpenStore(entityMB, declMB int, declDir string) (*Store, error) {
	if declDir == "" {
		return NewStore(entityMB, declMB), nil
	}
	l, err := openDeclLog(declDir, declMB)
	if err != nil {
		return nil, err
	}
	return &Store{storeData: &storeData{ents: newEntityTable(entityMB), decl: l, log: l}}, nil
}

// Close releases the declaration log's files and its directory (a store
// kept in memory has nothing to release).
func (s *Store) Close() {
	if s.log != nil {
		s.log.close()
	}
}

// Get appends the entity record of key to dst; ok is false when the key is
// absent.
func (s *Store) Get(dst, key []byte) (v []byte, ok bool) {
	if s.ov != nil {
		if v, ok, found := s.ov.get(dst, key, false); found {
			return v, ok
		}
	}
	r := s.ents.ref(key)
	r.s.mu.Lock()
	v, ok = s.ents.read(r)
	dst = append(dst, v...)
	r.s.mu.Unlock()
	return dst, ok
}

// Update replaces the entity record of key with f(old); old is nil when
// absent, and f returns nil to leave it. buf is scratch space for the old
// value and is returned (possibly grown) for reuse.
func (s *Store) Update(key, buf []byte, f func(old []byte) []byte) []byte {
	if s.ov != nil {
		old, ok := s.Get(buf[:0], key)
		if !ok {
			old = nil
		}
		if nv := f(old); nv != nil {
			s.ov.set(key, nv, false, false)
		}
		if old != nil {
			return old[:0]
		}
		return buf
	}
	return s.updateAt(s.ents.ref(key), key, buf, f)
}

// UpdateEach runs Update on every key of keys, f told which, on every core:
// the keys of different shards of the entity table are independent, and
// each shard's are updated in their order in keys, so the store ends as
// after one pass in order, whatever the number of cores. f is called
// concurrently (for keys of different shards) and returns a value the
// store copies; bufs are scratch space, one for each key. A handle with an
// overlay or a tap updates one key after the other, in order (an overlay
// logs them all at its current position).
func (s *Store) UpdateEach(keys [][]byte, bufs [][]byte, f func(i int, old []byte) []byte) {
	if s.ov != nil || s.tap != nil {
		for i, k := range keys {
			s.Update(k, bufs[i], func(old []byte) []byte { return f(i, old) })
		}
		return
	}
	refs := make([]entityRef, len(keys))
	for i, k := range keys {
		refs[i] = s.ents.ref(k)
	}
	inPositionOrder(1, func(int) int { return len(keys) }, func(_, i int) int { return i },
		func(_, i int) uint64 { return refs[i].h % entityShards },
		func(_, i int) {
			s.updateAt(refs[i], keys[i], bufs[i], func(old []byte) []byte { return f(i, old) })
		})
}

// updateAt is Update of the store itself at a place already found (ref).
func (s *Store) updateAt(r entityRef, key, buf []byte, f func(old []byte) []byte) []byte {
	r.s.mu.Lock()
	var old []byte
	v, ok := s.ents.read(r)
	if ok {
		old = append(buf[:0], v...)
		if old == nil {
			old = []byte{} // held, and empty
		}
	}
	nv := f(old)
	if nv != nil {
		if ok && len(nv) == len(v) {
			copy(v, nv) // where it is (read marked it used, as a write would)
		} else {
			s.ents.write(r, nv)
		}
		if s.tap != nil {
			s.tap.add(key, nv, false)
		}
	}
	r.s.mu.Unlock()
	if old != nil {
		return old[:0]
	}
	return buf
}

// Set replaces the entity record of key.
func (s *Store) Set(key, value []byte) {
	if s.ov != nil {
		s.ov.set(key, value, false, false)
		return
	}
	s.setEntity(key, value)
	if s.tap != nil {
		s.tap.add(key, value, false)
	}
}

// setEntity sets the entity record of key, or with value nil deletes it.
func (s *Store) setEntity(key, value []byte) { s.writeEntity(s.ents.ref(key), value) }

// writeEntity is setEntity at a place already found (ref).
func (s *Store) writeEntity(r entityRef, value []byte) {
	r.s.mu.Lock()
	s.ents.write(r, value)
	r.s.mu.Unlock()
}

// Delete removes the entity record of key.
func (s *Store) Delete(key []byte) {
	if s.ov != nil {
		s.ov.set(key, nil, true, false)
		return
	}
	s.setEntity(key, nil)
	if s.tap != nil {
		s.tap.add(key, nil, false)
	}
}

// GetDecl appends the declaration record of key to dst; ok is false when
// the key is absent.
func (s *Store) GetDecl(dst, key []byte) (v []byte, ok bool) {
	if s.ov != nil {
		if v, ok, found := s.ov.get(dst, key, true); found {
			return v, ok
		}
	}
	return s.decl.HasGet(dst, key)
}

// HasDecl reports whether key has a declaration record.
func (s *Store) HasDecl(key []byte) bool {
	if s.ov != nil {
		if w := s.ov.find(key, true); w != nil {
			return !w.del
		}
	}
	return s.decl.Has(key)
}

// SetDecl replaces the declaration record of key.
func (s *Store) SetDecl(key, value []byte) {
	if s.ov != nil {
		s.ov.set(key, value, false, true)
		return
	}
	s.decl.Set(key, value)
	if s.tap != nil {
		s.tap.add(key, value, true)
	}
}

// Restore writes a handed-over record (a Write) into the store.
func (s *Store) Restore(w Write) {
	switch {
	case w.Decl && w.Value == nil:
		s.decl.Del(w.Key)
	case w.Decl:
		s.decl.Set(w.Key, w.Value)
	default:
		s.setEntity(w.Key, w.Value)
	}
}

// An Overlay holds one lane's writes during a micro-batch: the lane reads
// its own writes through it, and at the batch's end the writes of all
// lanes reach the cache in input order (ApplyOverlays). fastcache evicts
// by the order of writes, so this keeps what is evicted, and therefore
// every later assessment, independent of the number of workers.
type Overlay struct {
	ents *entityTable
	at   int
	vals [2]map[string]int // entity, declaration key -> index of its latest write in log
	log  []overlayWrite
	buf  []byte // the written values, one after the other
}

type overlayWrite struct {
	at     int
	key    string
	v0, v1 int // the value is buf[v0:v1]
	del    bool
	decl   bool
	ref    entityRef // where an entity write goes, found by the worker
	bucket uint64    // the fastcache bucket of a declaration write
}

// At tags the writes that follow with the position of a declaration in its
// batch.
func (o *Overlay) At(i int) { o.at = i }

func ns(decl bool) int {
	if decl {
		return 1
	}
	return 0
}

func (o *Overlay) get(dst, key []byte, decl bool) (v []byte, ok, found bool) {
	w := o.find(key, decl)
	if w == nil || w.del {
		return dst, false, w != nil
	}
	return append(dst, o.buf[w.v0:w.v1]...), true, true
}

// find is the overlay's last write of key (a deletion included), or nil.
func (o *Overlay) find(key []byte, decl bool) *overlayWrite {
	i, found := o.vals[ns(decl)][string(key)]
	if !found {
		return nil
	}
	return &o.log[i]
}

func (o *Overlay) set(key, val []byte, del, decl bool) {
	m := &o.vals[ns(decl)]
	if *m == nil {
		*m = map[string]int{}
	}
	k := string(key)
	(*m)[k] = len(o.log)
	v0 := len(o.buf)
	o.buf = append(o.buf, val...)
	w := overlayWrite{at: o.at, key: k, v0: v0, v1: len(o.buf), del: del, decl: decl}
	// The key is hashed here, on the worker's core, rather than at the
	// batch's end.
	if decl {
		w.bucket = xxhash.Sum64(key) % 512
	} else {
		w.ref = o.ents.ref(key)
	}
	o.log = append(o.log, w)
}

// Deferred returns a handle on the same cache whose writes go to o.
func (s *Store) Deferred(o *Overlay) *Store {
	o.ents = s.ents
	return &Store{storeData: s.storeData, ov: o}
}

// ApplyOverlays writes the overlays' writes to the cache in order of
// position, and of writing within a position, and empties them. Each
// overlay's writes must have been made in increasing position.
//
// An entity write that a later write of the same key in the same overlay
// supersedes is left out: the store ends the batch with the same records,
// and what it evicts still depends on the batch alone (an entity written
// while assessing is its importer's, and one importer's declarations are
// in one overlay however many there are). A declaration's record is
// written in full: two declarations of one id may be of two importers.
func (s *Store) ApplyOverlays(ovs []*Overlay) {
	inPositionOrder(len(ovs), func(l int) int { return len(ovs[l].log) }, func(l, j int) int { return ovs[l].log[j].at }, func(l, j int) uint64 {
		w := &ovs[l].log[j]
		if w.decl {
			// By log shard (state.pending_dir), which is a set of whole
			// fastcache buckets: each is written in input order by one
			// goroutine, whatever the number of them, so what either
			// holds and drops at its cap does not depend on it.
			return w.bucket % logShards
		}
		return w.ref.h % entityShards
	}, func(l, j int) {
		o := ovs[l]
		w := &o.log[j]
		if !w.decl && o.vals[0][w.key] != j {
			return // superseded
		}
		var v []byte
		if !w.del {
			v = o.buf[w.v0:w.v1]
		}
		if w.decl {
			s.Restore(Write{Key: []byte(w.key), Value: v, Decl: true})
			return
		}
		s.writeEntity(w.ref, v)
	})
	for _, o := range ovs {
		clear(o.vals[0])
		clear(o.vals[1])
		clear(o.log)
		o.log, o.buf = o.log[:0], o.buf[:0]
	}
}

// evictions is how many entity records the store has lost to its cap so
// far (Stats' evicted).
func (s *Store) evictions() uint64 { return s.ents.evicted.Load() }

// Stats reports the entity records held, the bytes allocated for them and
// how many were evicted to stay within the cap.
func (s *Store) Stats() (entries, bytes, evicted uint64) {
	entries, bytes = s.ents.stats()
	return entries, bytes, s.ents.evicted.Load()
}

// Evicted is the number of entity records evicted to keep the store
// within its cap since it was made (Stats' third figure).
func (s *Store) Evicted() uint64 { return s.ents.evicted.Load() }

// DeclStats reports the declaration records held (in memory, superseded
// copies included: fastcache cannot tell them apart) and the bytes they
// use (on disk: in the log's files).
func (s *Store) DeclStats() (entries, bytes uint64) { return s.decl.counts() }

// DeclLost reports the declaration records lost to disk errors (always 0
// in memory).
func (s *Store) DeclLost() uint64 {
	if s.log == nil {
		return 0 // the ring in memory has no disk to fail
	}
	var lost uint64
	for i := range s.log.shards {
		lost += s.log.shards[i].lost.Load()
	}
	return lost
}

// Save writes the store to a directory (the entity records to
// entities.bin, the declaration records in fastcache's format, or for a
// log on disk how far it reached), safe to call while the store is in use.
func (s *Store) Save(dir string) error {
	if err := s.decl.save(dir); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "entities.bin"))
	if err != nil {
		return err
	}
	if err := s.ents.writeTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadStore reads a store saved by Save, with its declaration records in
// declDir as OpenStore; a missing or unreadable directory gives an error,
// so a caller can say it starts without history.
func LoadStore(dir string, entityMB, declMB int, declDir string) (*Store, error) {
	s := &Store{storeData: &storeData{ents: newEntityTable(entityMB)}}
	f, err := os.Open(filepath.Join(dir, "entities.bin"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := s.ents.readFrom(f); err != nil {
		return nil, err
	}
	// A checkpoint written with the records kept the other way (in memory,
	// on disk) keeps its entity records; its declaration records are not
	// carried over.
	_, err = os.Stat(filepath.Join(dir, logMarkFile))
	onDisk := err == nil
	switch {
	case declDir == "" && onDisk:
		s.decl = ring{fastcache.New(declMB << 20)}
		s.note = "in memory, started empty: the checkpoint kept them on disk (state.pending_dir), and they are not carried over"
	case declDir == "":
		c, err := fastcache.LoadFromFileMaxBytes(dir, declMB<<20)
		if err != nil {
			return nil, err
		}
		s.decl, s.declCarried = ring{c}, true
	default:
		var l *declLog
		if onDisk {
			l, err = loadDeclLog(dir, declDir, declMB)
		} else {
			l, err = openDeclLog(declDir, declMB)
		}
		if err != nil {
			return nil, err
		}
		s.decl, s.log = l, l
		if !onDisk {
			l.note += "; the checkpoint kept them in memory, and they are not carried over"
		}
	}
	return s, nil
}

// DeclCarried reports whether the declaration records are a checkpoint's,
// carried over by LoadStore (false when they started empty, and for a
// store not loaded from a checkpoint).
func (s *Store) DeclCarried() bool {
	if s.log != nil {
		return s.log.carried
	}
	return s.declCarried
}

// DeclErr returns the disk error that stopped a shard of the declaration
// log, if one did (nil in memory).
func (s *Store) DeclErr() error {
	if s.log == nil {
		return nil
	}
	for i := range s.log.shards {
		sh := &s.log.shards[i]
		sh.mu.Lock()
		err := sh.failed
		sh.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// DeclNote says where the declaration records are kept and what opening
// the store did to them ("" in memory without a checkpoint), for the log.
func (s *Store) DeclNote() string {
	if s.log != nil {
		return s.log.note
	}
	return s.note
}
