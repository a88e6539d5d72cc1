package detectors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func logKey(i int) []byte { return []byte(fmt.Sprintf("decl\x00GT%08d", i)) }

func logValue(i, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }

// restart stops s, as a crash would, and opens its log in dir again from
// the checkpoint in ckpt; the store is closed when the test ends.
func restart(t *testing.T, s *Store, ckpt, dir string, capMB int) *Store {
	t.Helper()
	s.Close()
	l, err := LoadStore(ckpt, 8, capMB, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// wantHeld fails unless, of the records 0 to n-1, exactly those below held
// are found.
func wantHeld(t *testing.T, s *Store, n, held int) {
	t.Helper()
	for i := range n {
		if _, ok := s.GetDecl(nil, logKey(i)); ok != (i < held) {
			t.Fatalf("record %d (the checkpoint held the first %d): found %v after the restart", i, held, ok)
		}
	}
}

// Records written to the log on disk are read back, whether still in a
// shard's unwritten tail or in its files; a later write replaces, a
// delete removes.
func TestDeclLogKeepsRecords(t *testing.T) {
	s, err := OpenStore(8, 32, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 5000 // 5000 × 300 bytes: most written out, some in the tails
	for i := range n {
		s.SetDecl(logKey(i), logValue(i, 300))
	}
	s.SetDecl(logKey(7), []byte("again"))
	s.Restore(Write{Key: logKey(8), Decl: true}) // a handed-over delete
	for i := range n {
		v, ok := s.GetDecl(nil, logKey(i))
		switch {
		case i == 7:
			if string(v) != "again" {
				t.Fatalf("record 7: %q after its rewrite", v)
			}
		case i == 8:
			if ok {
				t.Fatalf("record 8 read after its delete")
			}
		case !ok || !bytes.Equal(v, logValue(i, 300)):
			t.Fatalf("record %d: %v, %d bytes; want 300 bytes of %d", i, ok, len(v), i)
		}
	}
	if _, ok := s.GetDecl(nil, logKey(n)); ok {
		t.Fatal("a record never written was found")
	}
	entries, size := s.DeclStats()
	if entries != n-1 || size < n*300 {
		t.Fatalf("DeclStats: %d records in %d bytes; want %d in at least %d", entries, size, n-1, n*300)
	}
	var unwritten int
	for i := range s.log.shards {
		unwritten += len(s.log.shards[i].tail)
	}
	if unwritten == 0 || unwritten >= int(size)/2 {
		t.Fatalf("%d of %d bytes not yet written out: the test should read both from files and from tails", unwritten, size)
	}
}

// At its cap the log deletes its oldest segments: the oldest records go,
// the newest stay, the bytes stay near the cap, and the index forgets the
// deleted records.
func TestDeclLogCapDropsOldestFirst(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(8, 1, dir) // 1 MB: 64 KB a shard, in 8 KB segments
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 20000 // 20000 × 227 bytes: 4.3 times the cap
	rec := uint64(logHeader + len(logKey(0)) + 200)
	for i := range n {
		s.SetDecl(logKey(i), logValue(i, 200))
	}
	for i := range 1000 {
		if _, ok := s.GetDecl(nil, logKey(i)); ok {
			t.Fatalf("record %d of %d still found: the oldest should have gone", i, n)
		}
	}
	for i := n - 1000; i < n; i++ {
		if v, ok := s.GetDecl(nil, logKey(i)); !ok || !bytes.Equal(v, logValue(i, 200)) {
			t.Fatalf("record %d of the newest 1000 lost", i)
		}
	}
	entries, size := s.DeclStats()
	if size > 1<<20+logShards*8<<10 || size < 1<<20*3/4 {
		t.Fatalf("%d bytes held; want about the 1 MB cap", size)
	}
	if entries != size/rec {
		t.Fatalf("%d records indexed for %d bytes of %d-byte records: the index keeps deleted records", entries, size, rec)
	}
	var onDisk int64
	files, _ := filepath.Glob(filepath.Join(dir, "decl-*.log"))
	for _, f := range files {
		st, _ := os.Stat(f)
		onDisk += st.Size()
	}
	if onDisk > int64(size) || onDisk < int64(size)/2 {
		t.Fatalf("%d bytes in %d files for %d bytes held: deleted segments left on disk", onDisk, len(files), size)
	}
}

// A restart from a checkpoint finds the log as the checkpoint left it: what
// was written before is read back, what was written after is gone (it
// comes again from the input), and a record damaged on disk ends its
// segment there without losing the records before it.
func TestDeclLogCheckpoint(t *testing.T) {
	dir, ckpt := t.TempDir(), t.TempDir()
	s, err := OpenStore(8, 32, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		s.SetDecl(logKey(i), logValue(i, 100))
	}
	if err := s.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	for i := 3000; i < 4000; i++ {
		s.SetDecl(logKey(i), logValue(i, 100))
	}
	s.SetDecl(logKey(5), []byte("after"))
	for i := range s.log.shards {
		s.log.shards[i].flush()
	}
	if _, err := LoadStore(ckpt, 8, 32, dir); err == nil || !strings.Contains(err.Error(), "in use by another riskmon process") {
		t.Fatalf("a second store on the same directory: %v; want it refused", err)
	}
	// Damage the last record of shard 3's first segment.
	sh := &s.log.shards[3]
	name := sh.segs[0].f.Name()
	var last int64 // where the last record written before the checkpoint starts
	for i := range 3000 {
		if h := xxhash.Sum64(logKey(i)); h%logShards == 3 && i != 5 {
			last = max(last, int64(uint32(sh.index[h])))
		}
	}
	s.Close()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, last+logHeader+20)
	f.Close()

	l, err := LoadStore(ckpt, 8, 32, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var damaged int
	for i := range 3000 {
		v, ok := l.GetDecl(nil, logKey(i))
		if !ok {
			damaged++
			continue
		}
		if !bytes.Equal(v, logValue(i, 100)) {
			t.Fatalf("record %d: %q after the restart, want its value at the checkpoint", i, v)
		}
	}
	if note := l.DeclNote(); !strings.Contains(note, "2999 records restored") {
		t.Errorf("the restart says %q; want the 2,999 records it restored", note)
	}
	if damaged != 1 {
		t.Fatalf("%d records lost to one damaged record at a segment's end; want 1", damaged)
	}
	for i := 3000; i < 4000; i++ {
		if _, ok := l.GetDecl(nil, logKey(i)); ok {
			t.Fatalf("record %d, written after the checkpoint, found after the restart", i)
		}
	}
	l.SetDecl(logKey(9999), []byte("new"))
	if v, _ := l.GetDecl(nil, logKey(9999)); string(v) != "new" {
		t.Fatalf("a write after the restart read back as %q", v)
	}
}

// A fresh store on a directory an earlier run wrote starts without its
// records, and without its files.
func TestDeclLogFreshStartForgets(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(8, 1, dir) // 8 KB segments
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 { // 250 KB: several segments a shard
		s.SetDecl(logKey(i), logValue(i, 100))
	}
	s.Save(t.TempDir())
	s.Close()
	s, err = OpenStore(8, 1, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2000 {
		if v, ok := s.GetDecl(nil, logKey(i)); ok {
			t.Fatalf("a fresh store read %q from an earlier run", v)
		}
	}
	if note := s.DeclNote(); !strings.Contains(note, "earlier run's records deleted") {
		t.Errorf("a fresh start that deleted records says %q", note)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "decl-*.log")); len(files) != logShards {
		t.Fatalf("%d segment files after a fresh start; want one a shard, %d", len(files), logShards)
	}
}

// Segments begun after the checkpoint are deleted by a restart from it.
func TestDeclLogCheckpointDropsLaterSegments(t *testing.T) {
	dir, ckpt := t.TempDir(), t.TempDir()
	s, err := OpenStore(8, 1, dir) // 8 KB segments, 64 KB a shard
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		s.SetDecl(logKey(i), logValue(i, 100))
	}
	if err := s.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	for i := 200; i < 2200; i++ { // 250 KB: two or three new segments a shard
		s.SetDecl(logKey(i), logValue(i, 100))
	}
	before, _ := filepath.Glob(filepath.Join(dir, "decl-*.log"))
	l := restart(t, s, ckpt, dir, 1)
	wantHeld(t, l, 2200, 200)
	after, _ := filepath.Glob(filepath.Join(dir, "decl-*.log"))
	if len(before) < 2*logShards || len(after) != logShards {
		t.Fatalf("%d segment files before the restart, %d after; want several a shard, then one", len(before), len(after))
	}
}

// The records the log keeps at its cap after a micro-batch end do not
// depend on how many goroutines apply it (GOMAXPROCS): each shard is
// appended to in input order by one of them.
func TestDeclLogBatchEndIndependentOfCores(t *testing.T) {
	kept := func(procs int) string {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		s, err := OpenStore(8, 1, t.TempDir()) // 1 MB: about 8,000 of these records
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ovs := []*Overlay{{}, {}, {}}
		for i := range 18000 {
			o := ovs[i%3]
			o.At(i)
			s.Deferred(o).SetDecl(logKey(i), logValue(i, 100))
		}
		s.ApplyOverlays(ovs)
		var b strings.Builder
		for i := range 18000 {
			if _, ok := s.GetDecl(nil, logKey(i)); ok {
				fmt.Fprint(&b, i, " ")
			}
		}
		return b.String()
	}
	one := kept(1)
	if n := strings.Count(one, " "); n < 5000 || n > 9000 {
		t.Fatalf("%d records kept of 18,000 at a 1 MB cap", n)
	}
	for _, procs := range []int{2, 3, 3, 6, 6} {
		if kept(procs) != one {
			t.Fatalf("GOMAXPROCS %d: the log kept other records than on one core", procs)
		}
	}
}

// A checkpoint's mark names the log it was taken of: once the directory
// was started afresh, a restart from that checkpoint does not take the
// new run's records for its own.
func TestDeclLogMarkOfAnotherRun(t *testing.T) {
	dir, ckpt := t.TempDir(), t.TempDir()
	s, err := OpenStore(8, 32, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		s.SetDecl(logKey(i), []byte("checkpointed"))
	}
	if err := s.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStore(8, 32, dir) // a start without the checkpoint
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		s.SetDecl(logKey(i), []byte("another run"))
	}
	s.Save(t.TempDir())
	s.Close()
	l, err := LoadStore(ckpt, 8, 32, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 200 {
		if v, ok := l.GetDecl(nil, logKey(i)); ok {
			t.Fatalf("record %d: %q read after restoring a checkpoint of an earlier run", i, v)
		}
	}
	if note := l.DeclNote(); !strings.Contains(note, "of another log") {
		t.Errorf("a restart from another log's checkpoint says %q", note)
	}
	l.SetDecl(logKey(1), []byte("new"))
	if v, _ := l.GetDecl(nil, logKey(1)); string(v) != "new" {
		t.Fatalf("a write after the restart read back as %q", v)
	}
}

// Segments the cap deletes after a checkpoint stay on disk until two saves
// later: a restart from the checkpoint finds every record it held, even
// those the cap has deleted since; and their files do go.
func TestDeclLogRestartKeepsWhatTheCapDeletedSince(t *testing.T) {
	dir, ckpt := t.TempDir(), t.TempDir()
	s, err := OpenStore(8, 1, dir) // 8 KB segments, 64 KB a shard
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 { // 250 KB: a quarter of the cap
		s.SetDecl(logKey(i), logValue(i, 100))
	}
	if err := s.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	for i := 2000; i < 14000; i++ { // 1.5 MB more: the first 2000 go
		s.SetDecl(logKey(i), logValue(i, 100))
	}
	if _, ok := s.GetDecl(nil, logKey(0)); ok {
		t.Fatal("the cap deleted nothing: the test does not exercise it")
	}
	l := restart(t, s, ckpt, dir, 1)
	wantHeld(t, l, 14000, 2000)
	for i := 20000; i < 40000; i++ {
		l.SetDecl(logKey(i), logValue(i, 100))
	}
	l.Save(t.TempDir())
	l.Save(t.TempDir())
	files, _ := filepath.Glob(filepath.Join(dir, "decl-*.log"))
	live := 0
	for i := range l.log.shards {
		live += len(l.log.shards[i].segs)
	}
	if len(files) != live {
		t.Fatalf("%d segment files, %d segments held, two saves after the cap deleted some", len(files), live)
	}
}
