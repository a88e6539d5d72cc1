package detectors

import (
	"bytes"
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Records of one importer live together: the detectors and the model keep
// several small records per importer (its behaviour, recent values, digit
// counts, inspection counts), and in the entity table each record of its
// own would cost an index cell and a slot header (about 40 bytes) besides
// its value. A key made by ImporterKey names a section of the importer's
// one combined record instead: the record is a list of sections (a 32-bit
// tag, the hash of the rest of the key; the value's length; the value), and
// reading or writing a section reads or rewrites the record in place, under
// its shard's lock. Everything else (overlays, taps, the changelog) sees
// such keys as any other key.

// ImporterKey appends the key of a section of importerID's combined record
// to dst: parts joined as appendKey joins them name the section. An
// importer id longer than 255 bytes gets a record of its own.
func ImporterKey(dst []byte, importerID string, parts ...string) []byte {
	if len(importerID) > 255 {
		return appendKey(append(appendKey(dst, parts...), 0), importerID)
	}
	dst = append(append(dst, 0xff, 'g', byte(len(importerID))), importerID...)
	return appendKey(dst, parts...)
}

// ImporterRecordKey is the key of importerID's whole combined record (what
// ImporterKey gives without parts): Get gives the record with all its
// sections, Set replaces it (a state handover moves an importer's records
// in one piece). It is nil for an importer id longer than 255 bytes.
func ImporterRecordKey(importerID string) []byte {
	if len(importerID) > 255 {
		return nil
	}
	return ImporterKey(nil, importerID)
}

// InRecord reports whether key names a section of the combined record of
// record key rk.
func InRecord(key, rk []byte) bool {
	return rk != nil && len(key) > len(rk) && bytes.HasPrefix(key, rk)
}

// splitGroupKey splits a key made by ImporterKey into the key of the
// combined record and the section's name (ok is false for a key of a
// record of its own, and for a whole combined record's key).
func splitGroupKey(key []byte) (group, section []byte, ok bool) {
	if len(key) < 3 || key[0] != 0xff || key[1] != 'g' || len(key) <= 3+int(key[2]) {
		return nil, nil, false
	}
	n := 3 + int(key[2])
	return key[:n], key[n:], true
}

// entityRef is where a key's record lives: its shard, the hash of the
// record's key and, for a section, the section's tag.
type entityRef struct {
	s       *entityShard
	h       uint64
	tag     uint32
	section bool
}

func (t *entityTable) ref(key []byte) entityRef {
	if g, sec, ok := splitGroupKey(key); ok {
		h := keyHash(g)
		return entityRef{s: t.shardOf(h), h: h, tag: uint32(xxhash.Sum64(sec)), section: true}
	}
	h := keyHash(key)
	return entityRef{s: t.shardOf(h), h: h}
}

// read returns the value of r (in the arena: valid until the shard's lock,
// which the caller holds, is released), marked used.
func (t *entityTable) read(r entityRef) ([]byte, bool) {
	ci := r.s.find(r.h)
	if ci < 0 {
		return nil, false
	}
	v := r.s.value(ci)
	if !r.section {
		return v, true
	}
	_, v0, v1 := findSection(v, r.tag)
	if v0 < 0 {
		return nil, false
	}
	return v[v0:v1], true
}

// write sets (or with v nil deletes) the value of r; the caller holds the
// shard's lock.
func (t *entityTable) write(r entityRef, v []byte) {
	if !r.section {
		if v == nil {
			t.del(r.s, r.h)
		} else {
			t.set(r.s, r.h, v)
		}
		return
	}
	var rec []byte
	if ci := r.s.find(r.h); ci >= 0 {
		rec = r.s.value(ci)
	}
	at, v0, v1 := findSection(rec, r.tag)
	if at >= 0 && v != nil && v1-v0 == len(v) {
		copy(rec[v0:v1], v) // in place
		return
	}
	// A section rewritten keeps its place, so that the sections first
	// written (an importer's first declaration writes every detector's)
	// stay first, before those added one by one later (its counts by HS6,
	// which may number hundreds): findSection reads from the start.
	nr := r.s.scratch[:0]
	if at < 0 {
		at, v1 = len(rec), len(rec)
	}
	nr = append(nr, rec[:at]...)
	if v != nil {
		nr = binary.LittleEndian.AppendUint32(nr, r.tag)
		nr = binary.AppendUvarint(nr, uint64(len(v)))
		nr = append(nr, v...)
	}
	nr = append(nr, rec[v1:]...)
	r.s.scratch = nr
	switch {
	case len(nr) > maxEntity:
		t.evicted.Add(1) // the section does not fit: it is not kept
	case len(nr) == 0:
		t.del(r.s, r.h)
	default:
		t.set(r.s, r.h, nr)
	}
}

// findSection finds the section tagged tag in rec: where it starts and
// where its value lies, or -1s (also for a malformed record).
func findSection(rec []byte, tag uint32) (at, v0, v1 int) {
	for i := 0; i+4 < len(rec); {
		l, n := binary.Uvarint(rec[i+4:])
		if n <= 0 || uint64(len(rec)-i-4-n) < l {
			break
		}
		s := i + 4 + n
		if binary.LittleEndian.Uint32(rec[i:]) == tag {
			return i, s, s + int(l)
		}
		i = s + int(l)
	}
	return -1, -1, -1
}
