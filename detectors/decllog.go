package detectors

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/cespare/xxhash/v2"
)

// declRecords is where declaration records live until their outcomes
// arrive: a fastcache ring in memory (the default), or an append-only log
// on disk (state.pending_dir) whose only memory is an index, for outcome
// windows longer than memory can hold.
type declRecords interface {
	HasGet(dst, key []byte) ([]byte, bool)
	// Has reports whether key has a record, without reading it.
	Has(key []byte) bool
	Set(key, value []byte)
	Del(key []byte)
	// counts reports the records held and the bytes they take.
	counts() (entries, bytes uint64)
	// save writes what a checkpoint needs to dir.
	save(dir string) error
}

type ring struct{ *fastcache.Cache }

func (r ring) counts() (entries, bytes uint64) {
	var st fastcache.Stats
	r.UpdateStats(&st)
	return st.EntriesCount, st.BytesSize
}

func (r ring) save(dir string) error { return r.SaveToFileConcurrent(dir, 2) }

// declLog keeps declaration records in append-only segment files, in
// logShards shards by key hash, each capped at its share of the budget:
// when a shard passes it, its oldest segment is deleted (the oldest
// records go first, as in the ring). In memory there is only an index
// from key hash to where the record's latest copy starts, about 40 bytes a
// record, and each shard's unwritten tail. Outcomes are a few per cent of
// declarations, so reads (one pread each) are rare; writes are appends,
// written out in blocks.
//
// A shard is key hash mod logShards, and the micro-batch end writes each
// shard's records in input order on one goroutine (ApplyOverlays), so a
// shard's appends, and what its cap deletes, depend neither on the number of
// workers nor on GOMAXPROCS.
//
// The directory holds an id, written when a store starts without history;
// a checkpoint's mark names it, and a restart from a mark of another id
// (the directory was started afresh since) starts afresh too.
//
// A record on disk: crc32c of the rest, key length, value length (all
// uint32, little-endian; a value length of tombstone deletes the key), the
// key, the value.
type declLog struct {
	dir string
	id  string // of the directory's log, since its last fresh start
	// carried: the records are the checkpoint's (loadDeclLog reopened
	// them), not started afresh.
	carried bool
	note    string   // what opening it did, for the log (Store.DeclNote)
	lock    *os.File // flock'ed: one process per directory
	shards  [logShards]logShard
}

const (
	logShards   = 16
	logHeader   = 12
	tombstone   = ^uint32(0)
	flushBytes  = 64 << 10
	logSegments = 8 // a shard holds up to this many segments' worth of its cap; a segment is at most 1 GiB (its offsets are 32 bits)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type logShard struct {
	mu       sync.Mutex
	dir      string
	n        int
	segBytes int64
	capBytes int64
	segs     []*logSegment // oldest first; the last takes the appends
	index    map[uint64]uint64
	tail     []byte // appended to the last segment, not yet written
	bytes    int64  // in segs, tail included
	failed   error
	lost     atomic.Uint64
	scratch  []byte
	// Segments the cap deleted are only closed and forgotten while a
	// checkpoint may still need them (keep: the log was restored from one
	// or has been saved): their files go two saves later.
	keep    bool
	saves   uint64
	retired []retiredSegment
}

type retiredSegment struct {
	name  string
	saves uint64 // saves before it was retired
}

type logSegment struct {
	seq  uint32
	f    *os.File
	size int64 // written to the file
}

func segmentName(shard int, seq uint32) string { return fmt.Sprintf("decl-%02d-%08d.log", shard, seq) }

// openDeclLog opens the log in dir for a store that starts without
// history: records left there by an earlier run are deleted.
func openDeclLog(dir string, capMB int) (*declLog, error) {
	l, err := lockDeclLog(dir, capMB)
	if err != nil {
		return nil, err
	}
	if err := l.fresh(); err != nil {
		l.close()
		return nil, fmt.Errorf("state.pending_dir %s: %w", dir, err)
	}
	return l, nil
}

const logIDFile = "decl-log.id"

// fresh empties the directory's log and gives it a new id.
func (l *declLog) fresh() error {
	var removed int64
	for i := range l.shards {
		sh := &l.shards[i]
		for _, seq := range sh.existing() {
			name := filepath.Join(l.dir, segmentName(i, seq))
			if st, err := os.Stat(name); err == nil {
				removed += st.Size()
			}
			if err := os.Remove(name); err != nil {
				return err
			}
		}
		if err := sh.rotate(1); err != nil {
			return err
		}
	}
	var b [8]byte
	rand.Read(b[:])
	l.id = hex.EncodeToString(b[:])
	l.note = fmt.Sprintf("on disk in %s, started empty", l.dir)
	if removed > 0 {
		l.note += fmt.Sprintf(" (%.1f MB of an earlier run's records deleted: no checkpoint of this log to restore them from)", float64(removed)/(1<<20))
	}
	return os.WriteFile(filepath.Join(l.dir, logIDFile), []byte(l.id+"\n"), 0o644)
}

func lockDeclLog(dir string, capMB int) (*declLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state.pending_dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state.pending_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state.pending_dir %s is in use by another riskmon process (%w): each instance needs a directory of its own; stop the other one or choose another directory", dir, err)
	}
	l := &declLog{dir: dir, lock: f}
	capShard := int64(capMB) << 20 / logShards
	for i := range l.shards {
		l.shards[i] = logShard{dir: dir, n: i, capBytes: capShard, segBytes: min(max(capShard/logSegments, 4<<10), 1<<30), index: map[uint64]uint64{}}
	}
	return l, nil
}

// existing lists the shard's segment files in dir, oldest first.
func (sh *logShard) existing() []uint32 {
	names, _ := filepath.Glob(filepath.Join(sh.dir, fmt.Sprintf("decl-%02d-*.log", sh.n)))
	var seqs []uint32
	for _, n := range names {
		var shard int
		var seq uint32
		if _, err := fmt.Sscanf(filepath.Base(n), "decl-%02d-%08d.log", &shard, &seq); err == nil && shard == sh.n {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs
}

// close releases the files and the directory's lock.
func (l *declLog) close() {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, s := range sh.segs {
			s.f.Close()
		}
		sh.segs = nil
		clear(sh.index)
		sh.mu.Unlock()
	}
	l.lock.Close()
}

func (l *declLog) shard(h uint64) *logShard { return &l.shards[h%logShards] }

// Has looks at the index only (no read from disk): a key of the same
// 64-bit hash would answer for it.
func (l *declLog) Has(key []byte) bool {
	h := xxhash.Sum64(key)
	sh := l.shard(h)
	sh.mu.Lock()
	_, ok := sh.index[h]
	sh.mu.Unlock()
	return ok
}

func (l *declLog) HasGet(dst, key []byte) ([]byte, bool) {
	h := xxhash.Sum64(key)
	sh := l.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	loc, ok := sh.index[h]
	if !ok {
		return dst, false
	}
	rec, err := sh.read(loc)
	if err != nil || len(rec) < logHeader {
		return dst, false
	}
	kl, vl := binary.LittleEndian.Uint32(rec[4:]), binary.LittleEndian.Uint32(rec[8:])
	if string(rec[logHeader:logHeader+kl]) != string(key) || vl == tombstone {
		return dst, false // another key of the same hash, or deleted
	}
	return append(dst, rec[logHeader+kl:]...), true
}

// read returns the record at loc (segment sequence << 32 | offset), in
// scratch space valid until the next call.
func (sh *logShard) read(loc uint64) ([]byte, error) {
	seq, off := uint32(loc>>32), int64(uint32(loc))
	if len(sh.segs) == 0 || seq < sh.segs[0].seq {
		return nil, io.EOF
	}
	if int(seq-sh.segs[0].seq) >= len(sh.segs) || sh.segs[seq-sh.segs[0].seq].seq != seq {
		return nil, io.EOF
	}
	s := sh.segs[seq-sh.segs[0].seq]
	if s == sh.segs[len(sh.segs)-1] && off >= s.size {
		rec := sh.tail[off-s.size:]
		n := logHeader + int(binary.LittleEndian.Uint32(rec[4:]))
		if vl := binary.LittleEndian.Uint32(rec[8:]); vl != tombstone {
			n += int(vl)
		}
		return rec[:n], nil
	}
	var hdr [logHeader]byte
	if _, err := s.f.ReadAt(hdr[:], off); err != nil {
		return nil, err
	}
	n := logHeader + int(binary.LittleEndian.Uint32(hdr[4:]))
	if vl := binary.LittleEndian.Uint32(hdr[8:]); vl != tombstone {
		n += int(vl)
	}
	if off+int64(n) > s.size {
		return nil, errors.New("damaged record header")
	}
	sh.scratch = slices.Grow(sh.scratch[:0], n)[:n]
	if _, err := s.f.ReadAt(sh.scratch, off); err != nil {
		return nil, err
	}
	if crc32.Checksum(sh.scratch[4:], castagnoli) != binary.LittleEndian.Uint32(sh.scratch) {
		return nil, errors.New("damaged record")
	}
	return sh.scratch, nil
}

func (l *declLog) Set(key, value []byte) { l.append(key, value, uint32(len(value))) }

func (l *declLog) Del(key []byte) { l.append(key, nil, tombstone) }

func (l *declLog) append(key, value []byte, vl uint32) {
	h := xxhash.Sum64(key)
	sh := l.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.failed != nil || len(sh.segs) == 0 { // failed, or closed
		if vl != tombstone {
			sh.lost.Add(1)
		}
		return
	}
	last := sh.segs[len(sh.segs)-1]
	off := last.size + int64(len(sh.tail))
	at := len(sh.tail)
	sh.tail = binary.LittleEndian.AppendUint32(sh.tail, 0)
	sh.tail = binary.LittleEndian.AppendUint32(sh.tail, uint32(len(key)))
	sh.tail = binary.LittleEndian.AppendUint32(sh.tail, vl)
	sh.tail = append(append(sh.tail, key...), value...)
	binary.LittleEndian.PutUint32(sh.tail[at:], crc32.Checksum(sh.tail[at+4:], castagnoli))
	sh.bytes += int64(len(sh.tail) - at)
	if vl == tombstone {
		delete(sh.index, h)
	} else {
		sh.index[h] = uint64(last.seq)<<32 | uint64(off)
	}
	if len(sh.tail) >= flushBytes || off+int64(len(sh.tail)-at) >= sh.segBytes {
		sh.fail(sh.flush())
	}
	if sh.failed == nil && last.size >= sh.segBytes {
		sh.fail(sh.rotate(last.seq + 1))
	}
}

// fail stops the shard after a disk error: what it held is lost (counted),
// and so is every later write. A missing record means "no history".
func (sh *logShard) fail(err error) {
	if err == nil {
		return
	}
	sh.failed = err
	sh.lost.Add(uint64(len(sh.index)))
	clear(sh.index)
	sh.bytes -= int64(len(sh.tail))
	sh.tail = sh.tail[:0]
}

// flush writes the unwritten tail to the last segment.
func (sh *logShard) flush() error {
	if len(sh.tail) == 0 {
		return nil
	}
	last := sh.segs[len(sh.segs)-1]
	n, err := last.f.WriteAt(sh.tail, last.size)
	last.size += int64(n)
	sh.tail = sh.tail[:copy(sh.tail, sh.tail[n:])]
	return err
}

// rotate starts segment seq and deletes the oldest while the shard is over
// its cap, with the index entries that point into them.
func (sh *logShard) rotate(seq uint32) error {
	f, err := os.OpenFile(filepath.Join(sh.dir, segmentName(sh.n, seq)), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	sh.segs = append(sh.segs, &logSegment{seq: seq, f: f})
	return sh.trim()
}

func (sh *logShard) trim() error {
	for len(sh.segs) > 1 && sh.bytes > sh.capBytes {
		old := sh.segs[0]
		sh.segs = sh.segs[1:]
		sh.bytes -= old.size
		for h, loc := range sh.index {
			if uint32(loc>>32) == old.seq {
				delete(sh.index, h)
			}
		}
		old.f.Close()
		if sh.keep {
			sh.retired = append(sh.retired, retiredSegment{old.f.Name(), sh.saves})
			continue
		}
		if err := os.Remove(old.f.Name()); err != nil {
			return err
		}
	}
	return nil
}

// saved counts a checkpoint's save of the shard and deletes the segments
// retired before the one before it: a restart is from the newest
// checkpoint, or from the one before if the newest was not completed.
func (sh *logShard) saved() {
	sh.saves++
	sh.keep = true
	n := 0
	for _, r := range sh.retired {
		if r.saves+2 <= sh.saves {
			os.Remove(r.name)
			continue
		}
		sh.retired[n] = r
		n++
	}
	sh.retired = sh.retired[:n]
}

func (l *declLog) counts() (entries, bytes uint64) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		entries += uint64(len(sh.index))
		bytes += uint64(sh.bytes)
		sh.mu.Unlock()
	}
	return entries, bytes
}

// logMark is how far each shard's log reached when a checkpoint was
// taken: a restart from that checkpoint cuts the log back to it.
type logMark struct {
	ID    string   `json:"id"`    // the log's (decl-log.id)
	First []uint32 `json:"first"` // per shard: the oldest segment held
	Last  []uint32 `json:"last"`  // the segment appended to
	Size  []int64  `json:"size"`  // and its size
}

const logMarkFile = "decl-log.json"

// save writes the shards' tails to disk, syncs them and records how far
// they reach in dir.
func (l *declLog) save(dir string) error {
	m := logMark{ID: l.id, First: make([]uint32, logShards), Last: make([]uint32, logShards), Size: make([]int64, logShards)}
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		if len(sh.segs) == 0 {
			sh.mu.Unlock()
			return errors.New("state.pending_dir: the declaration log is closed")
		}
		err := sh.flush()
		sh.fail(err)
		last := sh.segs[len(sh.segs)-1]
		m.First[i], m.Last[i], m.Size[i] = sh.segs[0].seq, last.seq, last.size
		sh.saved()
		sh.mu.Unlock()
		// Synced outside the lock, so that the shard's writers do not wait
		// for the disk. A segment the cap deleted meanwhile needs no sync.
		if err == nil {
			if err = last.f.Sync(); errors.Is(err, os.ErrClosed) {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("state.pending_dir: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(m)
	return os.WriteFile(filepath.Join(dir, logMarkFile), b, 0o644)
}

// loadDeclLog opens the log in logDir as the checkpoint in dir left it:
// what was appended after the checkpoint is cut off (the records it
// restores come again from the input), and the index is rebuilt by
// reading the segments in order.
func loadDeclLog(dir, logDir string, capMB int) (*declLog, error) {
	b, err := os.ReadFile(filepath.Join(dir, logMarkFile))
	if err != nil {
		return nil, fmt.Errorf("the checkpoint has no declaration log mark (was it written with state.pending_dir?): %w", err)
	}
	var m logMark
	if err := json.Unmarshal(b, &m); err != nil || len(m.First) != logShards || len(m.Last) != logShards || len(m.Size) != logShards {
		return nil, fmt.Errorf("unreadable %s", logMarkFile)
	}
	l, err := lockDeclLog(logDir, capMB)
	if err != nil {
		return nil, err
	}
	id, _ := os.ReadFile(filepath.Join(logDir, logIDFile))
	if l.id = strings.TrimSpace(string(id)); l.id == "" || l.id != m.ID {
		// The directory was started afresh after the checkpoint (or was
		// never this log's): its records are another run's.
		err = l.fresh()
		if err == nil {
			l.note += "; the checkpoint's mark is of another log (the directory was started afresh since)"
		}
	} else {
		var n int
		for i := range l.shards {
			if err = l.shards[i].reopen(m.First[i], m.Last[i], m.Size[i]); err != nil {
				break
			}
			n += len(l.shards[i].index)
		}
		l.note = fmt.Sprintf("on disk in %s, %d records restored as the checkpoint left them", logDir, n)
		l.carried = err == nil
	}
	if err != nil {
		l.close()
		return nil, fmt.Errorf("state.pending_dir %s: %w", logDir, err)
	}
	return l, nil
}

// reopen opens the shard's segments from first to last (cut to size),
// deletes the others (retired before the checkpoint, or begun after it)
// and reads them into the index.
func (sh *logShard) reopen(first, last uint32, size int64) error {
	for _, seq := range sh.existing() {
		name := filepath.Join(sh.dir, segmentName(sh.n, seq))
		if seq < first || seq > last {
			if err := os.Remove(name); err != nil {
				return err
			}
			continue
		}
		f, err := os.OpenFile(name, os.O_RDWR, 0o644)
		if err != nil {
			return err
		}
		s := &logSegment{seq: seq, f: f}
		if seq == last {
			if err := f.Truncate(size); err != nil {
				f.Close()
				return err
			}
		}
		if err := sh.scan(s); err != nil {
			f.Close()
			return err
		}
		sh.segs = append(sh.segs, s)
		sh.bytes += s.size
	}
	sh.keep = true // the checkpoint restored from needs what the cap deletes next
	if len(sh.segs) == 0 || sh.segs[len(sh.segs)-1].seq != last {
		// The checkpoint's last segment is gone: start the next one.
		return sh.rotate(last + 1)
	}
	return sh.trim()
}

// scan reads a segment's records into the index; a damaged record ends the
// segment there (it was being written when the process stopped).
func (sh *logShard) scan(s *logSegment) error {
	st, err := s.f.Stat()
	if err != nil {
		return err
	}
	r := io.NewSectionReader(s.f, 0, st.Size())
	buf := make([]byte, 0, 1<<10)
	var off int64
	var hdr [logHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		kl, vl := binary.LittleEndian.Uint32(hdr[4:]), binary.LittleEndian.Uint32(hdr[8:])
		n := int64(kl)
		if vl != tombstone {
			n += int64(vl)
		}
		if off+logHeader+n > st.Size() {
			break
		}
		buf = slices.Grow(buf[:0], logHeader+int(n))[:logHeader+int(n)]
		copy(buf, hdr[:])
		if _, err := io.ReadFull(r, buf[logHeader:]); err != nil {
			break
		}
		if crc32.Checksum(buf[4:], castagnoli) != binary.LittleEndian.Uint32(buf) {
			break
		}
		h := xxhash.Sum64(buf[logHeader : logHeader+kl])
		if vl == tombstone {
			delete(sh.index, h)
		} else {
			sh.index[h] = uint64(s.seq)<<32 | uint64(off)
		}
		off += logHeader + n
	}
	if off < st.Size() {
		if err := s.f.Truncate(off); err != nil {
			return err
		}
	}
	s.size = off
	return nil
}
