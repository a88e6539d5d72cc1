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
		for k, v := range s.m {
			if err := put([]byte(k)); err != nil {
				s.mu.Unlock()
				return n, err
			}
			if err := put(v); err != nil {
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
		t.update(k, func([]byte) []byte { return v })
	}
}
