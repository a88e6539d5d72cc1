package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFormatProgress(t *testing.T) {
	f := func(want, label, unit string, count, done, total int64, byBytes bool, elapsed time.Duration) {
		t.Helper()
		if got := formatProgress(label, unit, count, done, total, byBytes, elapsed); got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	}
	f("replay: 0 declarations, 0% of 68.8 MB", "replay", "declarations", 0, 0, 72140324, true, 0)
	f("replay: 45,312 declarations, 25% of 68.8 MB, 22,656/s, ETA 6s", "replay", "declarations", 45312, 72140324/4, 72140324, true, 2*time.Second)
	f("gen: 1,000 of 4,000 declarations (25%), 10,000/s", "gen", "declarations", 1000, 0, 4000, false, 100*time.Millisecond)
	f("gen: 1,000 of 4,000 declarations (25%), 1,000/s, ETA 3s", "gen", "declarations", 1000, 0, 4000, false, time.Second)
	f("replay: 1,234,567 declarations, 12,345/s", "replay", "declarations", 1234567, 1<<30, 0, true, 100*time.Second)
	f("train: 10 declarations, 0% of 2.0 GB, 4/s, ETA 1h22m", "train", "declarations", 10, 1<<20, 2<<30, true, 2432*time.Millisecond)
	f("replay: 10 declarations, 100% of 1.0 kB, 1/s", "replay", "declarations", 10, 2048, 1024, true, 10*time.Second)
	for d, want := range map[time.Duration]string{59 * time.Second: "59s", 61 * time.Second: "1m01s", 3599 * time.Second: "59m59s", 7260 * time.Second: "2h01m"} {
		if got := fmtETA(d); got != want {
			t.Errorf("fmtETA(%v) = %q, want %q", d, got, want)
		}
	}
}

// On a terminal the line is drawn at once, redrawn in place, wiped before
// a message and at the end.
func TestProgressDrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, true, "gen", "declarations", 100, false)
	w := p.writer(&bytes.Buffer{})
	fmt.Fprint(w, "a\nb\n")
	time.Sleep(3 * progressEvery / 2)
	p.mu.Lock()
	c := &clearingWriter{p: p, w: &buf}
	p.mu.Unlock()
	c.Write([]byte("a message\n"))
	p.finish()
	p.finish() // twice is harmless
	s := buf.String()
	if !strings.HasPrefix(s, "\rgen: 0 of 100 declarations (0%)\x1b[K") {
		t.Errorf("first frame: %q", s)
	}
	if !strings.Contains(s, "\rgen: 2 of 100 declarations (2%)") {
		t.Errorf("no redraw with the count: %q", s)
	}
	if !strings.Contains(s, "\r\x1b[Ka message\n") {
		t.Errorf("the message does not start on a wiped line: %q", s)
	}
	if strings.Contains(s, "\n") && strings.Count(s, "\n") != 1 {
		t.Errorf("the line is not redrawn in place: %q", s)
	}
	if !strings.HasSuffix(s, "\r\x1b[K") && !strings.HasSuffix(s, "a message\n") {
		t.Errorf("the line is not wiped at the end: %q", s)
	}
	if p.count.Load() != 2 || p.bytes.Load() != 4 {
		t.Errorf("count %d bytes %d", p.count.Load(), p.bytes.Load())
	}
	// Off: nothing is written, whatever happens.
	buf.Reset()
	q := newProgress(&buf, false, "gen", "declarations", 100, false)
	fmt.Fprint(q.writer(&bytes.Buffer{}), "a\n")
	q.finish()
	if buf.Len() != 0 {
		t.Errorf("progress off wrote %q", buf.String())
	}
}

// With stderr a file (not a terminal), the batch commands print nothing
// extra: gen nothing at all, the others no progress line.
func TestNoProgressWithoutTerminal(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	code, out, e := capture(t, "gen", "--count", "3000", "--output", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--truth", p("t.jsonl"))
	if code != 0 || e != "" || out != "" {
		t.Fatalf("gen: exit %d, stdout %q, stderr %q", code, out, e)
	}
	check := func(args ...string) string {
		t.Helper()
		code, _, e := capture(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, e)
		}
		if strings.ContainsAny(e, "\r\x1b") || strings.Contains(e, "ETA") || strings.Contains(e, "/s,") {
			t.Errorf("%v: progress on a non-terminal stderr: %q", args, e)
		}
		return e
	}
	e = check("replay", "--input", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--output", p("a.jsonl"))
	if !strings.HasPrefix(e, "replay: 3000 declarations read") {
		t.Errorf("replay's stderr does not start with its summary: %q", e)
	}
	// 3,000 declarations hold 49 labels: below the built-in min_labels.
	def, err := os.ReadFile("../../config/default.yml")
	if err != nil {
		t.Fatal(err)
	}
	low := strings.Replace(string(def), "min_labels: 500", "min_labels: 20", 1)
	if err := os.WriteFile(p("low.yml"), []byte(low), 0o644); err != nil {
		t.Fatal(err)
	}
	e = check("train", "--input", p("d.jsonl"), "--outcomes", p("o.jsonl"), "--output", p("m.bin"), "--config", p("low.yml"))
	if !strings.HasPrefix(e, "train: 3000 declarations") {
		t.Errorf("train's stderr does not start with its summary: %q", e)
	}
	// A model loaded from its file says so, without the training's figures
	// the file does not keep.
	e = check("replay", "--input", p("d.jsonl"), "--output", p("a2.jsonl"), "--model", p("m.bin"), "--config", p("low.yml"))
	if !strings.Contains(e, "loaded from "+p("m.bin")+", trained on ") || strings.Contains(e, "NaN") {
		t.Errorf("replay --model: %q", e)
	}
	if e = check("compare", "--input", p("d.jsonl"), "--candidate", "../../config/default.yml"); e != "" {
		t.Errorf("compare's stderr: %q", e)
	}
}
