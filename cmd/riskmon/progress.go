package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress is the status line of a long batch command (gen, replay, compare,
// train) on stderr: count, rate and, when the total is known, how far and
// the time left. It is drawn only when stderr is a terminal, redrawn in
// place a few times a second, and wiped when the work ends; with stderr a
// file or a pipe (CI, scripts) nothing extra is written.
type progress struct {
	label, unit string
	// total is the work to do in bytes (byBytes) or in units; 0: unknown.
	total   int64
	byBytes bool
	// passes is how many times the input is read (compare reads it twice):
	// the count shown is per pass.
	passes int64

	count, bytes atomic.Int64
	start        time.Time

	mu    sync.Mutex // guards out and drawn
	out   io.Writer
	drawn bool
	stop  chan struct{}
	done  chan struct{}
}

// progressEvery is how often the line is redrawn.
const progressEvery = 250 * time.Millisecond

// startProgress starts the status line on stderr if stderr is a terminal;
// otherwise the progress it returns counts and draws nothing.
func startProgress(label, unit string, total int64, byBytes bool) *progress {
	return newProgress(os.Stderr, isTerminal(os.Stderr), label, unit, total, byBytes)
}

func newProgress(out io.Writer, on bool, label, unit string, total int64, byBytes bool) *progress {
	p := &progress{label: label, unit: unit, total: total, byBytes: byBytes, passes: 1, start: time.Now(), out: out}
	if !on {
		return p
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.draw()
	go func() {
		defer close(p.done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// on reports whether the line is drawn.
func (p *progress) on() bool { return p.stop != nil }

func (p *progress) draw() {
	line := formatProgress(p.label, p.unit, p.count.Load()/p.passes, p.bytes.Load(), p.total, p.byBytes, time.Since(p.start))
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "\r%s\x1b[K", line)
	p.drawn = true
}

// clearLocked wipes the line, so that other output starts on a clean line.
func (p *progress) clearLocked() {
	if p.drawn {
		io.WriteString(p.out, "\r\x1b[K")
		p.drawn = false
	}
}

// finish stops the redrawing and wipes the line.
func (p *progress) finish() {
	if !p.on() {
		return
	}
	select {
	case <-p.stop:
		return // already finished
	default:
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	p.clearLocked()
	p.mu.Unlock()
}

// add counts b's bytes and lines.
func (p *progress) add(b []byte) {
	p.bytes.Add(int64(len(b)))
	p.count.Add(int64(bytes.Count(b, []byte{'\n'})))
}

// reader counts the bytes and lines read through it.
func (p *progress) reader(r io.Reader) io.Reader { return &countingReader{r: r, p: p} }

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.add(b[:n])
	return n, err
}

// writer counts the lines written through it (gen's declarations).
func (p *progress) writer(w io.Writer) io.Writer { return &countingWriter{w: w, p: p} }

type countingWriter struct {
	w io.Writer
	p *progress
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.add(b[:n])
	return n, err
}

// stderr is stderr for messages written while the line is shown: each write
// first wipes the line, which the next tick redraws below the message.
func (p *progress) stderr() io.Writer {
	if !p.on() {
		return os.Stderr
	}
	return &clearingWriter{p: p, w: os.Stderr}
}

type clearingWriter struct {
	p *progress
	w io.Writer
}

func (c *clearingWriter) Write(b []byte) (int, error) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	c.p.clearLocked()
	return c.w.Write(b)
}

// formatProgress is the status line: "replay: 45,312 declarations, 31% of
// 68.8 MB, 21,978/s, ETA 5s", or "gen: 1,000 of 4,000 declarations (25%),
// ...". done is in bytes when byBytes, else
// the count is the work done; total 0 means unknown, and then only the
// count and the rate are shown.
func formatProgress(label, unit string, count, doneBytes, total int64, byBytes bool, elapsed time.Duration) string {
	var b strings.Builder
	done := count
	if byBytes {
		done = doneBytes
	}
	frac := 0.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	switch {
	case total > 0 && !byBytes:
		fmt.Fprintf(&b, "%s: %s of %s %s (%d%%)", label, groupDigits(count), groupDigits(total), unit, int(100*frac))
	case total > 0:
		fmt.Fprintf(&b, "%s: %s %s, %d%% of %s", label, groupDigits(count), unit, int(100*frac), fmtBytes(total))
	default:
		fmt.Fprintf(&b, "%s: %s %s", label, groupDigits(count), unit)
	}
	secs := elapsed.Seconds()
	if secs >= 0.1 && count > 0 {
		fmt.Fprintf(&b, ", %s/s", groupDigits(int64(float64(count)/secs)))
	}
	if secs >= 0.5 && frac > 0 && frac < 1 {
		left := time.Duration(float64(elapsed) * (1 - frac) / frac)
		fmt.Fprintf(&b, ", ETA %s", fmtETA(left))
	}
	return b.String()
}

// groupDigits writes n with thousands separators.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// fmtETA rounds the time left to what a reader needs: seconds under a
// minute, then minutes and seconds, then hours and minutes.
func fmtETA(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, (s%3600)/60)
}

// inputSize is the size of a regular input file, for the ETA; 0 for stdin,
// a pipe or an unreadable path.
func inputSize(path string) int64 {
	if path == "-" || path == "" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	return fi.Size()
}
