// Package batch is riskmon's batch mode: it replays a file of declarations
// (and the outcomes that came back) through the engine in file order, writes
// the assessments and dead letters, and evaluates the ranking against ground
// truth (precision, recall and revenue at fixed inspection rates).
package batch

import (
	"bufio"
	"bytes"
	"container/heap"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// ReplayOptions are the inputs and outputs of a replay.
type ReplayOptions struct {
	Input     io.Reader // declarations, JSON Lines
	InputName string    // for messages and dead letters ("-" for stdin)
	// Outcomes, when not nil, are applied as they would have arrived: each
	// once the stream's event time (the latest lodged_at seen) reaches its
	// inspected_at.
	Outcomes     io.Reader
	OutcomesName string
	Output       io.Writer // assessments, JSON Lines
	Errors       io.Writer // one line per invalid input line
	DeadLetters  io.Writer // optional: one dead-letter record per invalid line (of the declarations and of the outcomes)
	// KeepScores records (id, score) of every assessment, for evaluation.
	KeepScores bool
	// KeepFindings, with KeepScores, also keeps each assessment's findings
	// in its Scored record, for compare and the report.
	KeepFindings bool
	// ClosedLoop, when not nil, makes the inspections follow riskmon's own
	// channels: every declaration it sends to yellow or red (the random
	// compliance sample included) gets its true outcome after InspectDelay,
	// and no other declaration gets one. It shows what riskmon learns when
	// its own selection decides what it learns from (selection bias).
	ClosedLoop   map[string]*declaration.Outcome
	InspectDelay time.Duration
	// Workers assess each micro-batch in parallel, by importer (0: one per
	// core). The assessments do not depend on it.
	Workers int
	// Batch is the number of declarations in a micro-batch (0:
	// engine.BatchSize). 1 assesses one declaration at a time, exactly as
	// stream mode's single worker does, on one core.
	Batch int
}

// Scored is what evaluation needs of one assessment.
type Scored struct {
	ID         string
	Score      float64
	Channel    declaration.Channel
	SelectedBy string
	LodgedAt   time.Time
	Findings   []declaration.Finding // with ReplayOptions.KeepFindings
}

// ReplayStats summarises a replay.
type ReplayStats struct {
	Lines, Assessed, Invalid                   int
	Repeats                                    uint64 // assessed again under an id assessed before: not learned again
	OutcomesRead, OutcomesApplied, OutcomesBad int
	Channels                                   [3]int
	SelectedBy                                 map[string]int
	Fired                                      map[string]int // declarations each detector fired on
	Elapsed                                    time.Duration
	Scores                                     []Scored
	StateEntries, StateBytes, StateEvicted     uint64 // entity records at the end, and evicted
	PendingEntries, PendingBytes               uint64 // declaration records at the end
	PendingLost                                uint64 // declaration records lost to disk errors (state.pending_dir)
	PendingOnDisk                              bool
	SharedEntries                              int // in-memory statistics held at the end
	Monitor                                    *Monitor
	Rates                                      engine.RateState // channel thresholds and shares at the end
	// Assessments the learned model scored, and those of them sent red by
	// their score (the summary warns when red stopped selecting by score).
	ModelScored, ModelRedByScore int
}

type rawRec struct {
	line     int
	data     []byte
	tooLarge int // the record's size when it exceeded the limit, else 0
}

type decodedRec struct {
	rawRec
	d   *declaration.Declaration
	err error
}

const chunkSize = 256

// Replay pushes a file of declarations through the engine, in file order, one
// declaration at a time, so the result is deterministic. Decoding and encoding
// run in parallel around the engine.
func Replay(e *engine.Engine, o ReplayOptions) (*ReplayStats, error) {
	start, repeats0 := time.Now(), e.Repeats()
	// A batch run trades memory for CPU: collect garbage less often (about
	// 30 MB more at peak for 100,000 declarations, 10 % less CPU).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	e.TrainInline()
	st := &ReplayStats{SelectedBy: map[string]int{}, Fired: map[string]int{}, Monitor: newMonitor()}
	var outcomes []*declaration.Outcome
	if o.Outcomes != nil {
		var err error
		outcomes, err = readOutcomes(o, st)
		if err != nil {
			return nil, err
		}
	}
	limit := e.Config().Engine.MaxMessageBytes
	workers := max(runtime.GOMAXPROCS(0)-1, 1) // leave a core to the engine, the bottleneck

	chunks := make(chan []rawRec, workers)
	var readErr error
	go func() {
		defer close(chunks)
		readErr = readLines(o.Input, limit, chunks)
	}()
	decoded := ordered(chunks, workers, func(c []rawRec) []decodedRec {
		out := make([]decodedRec, len(c))
		for i, r := range c {
			out[i].rawRec = r
			if r.tooLarge > 0 {
				out[i].err = &declaration.Error{Kind: "size", Msg: fmt.Sprintf("message of %d bytes is larger than the %d-byte limit (engine.max_message_bytes)", r.tooLarge, limit)}
				continue
			}
			out[i].d, out[i].err = declaration.DecodeDeclaration(r.data)
		}
		return out
	})

	type assessedChunk []*declaration.Assessment
	assessedCh := make(chan assessedChunk, workers)
	errw := bufio.NewWriter(o.Errors)
	var dlw *bufio.Writer
	var dls io.Writer // dlw, or nil without dead letters
	if o.DeadLetters != nil {
		dlw = bufio.NewWriter(o.DeadLetters)
		dls = dlw
	}
	go func() {
		defer close(assessedCh)
		due := &outcomeQueue{}
		for _, oc := range outcomes {
			due.push(oc)
		}
		var eventTime time.Time
		size := o.Batch
		if size <= 0 {
			size = engine.BatchSize
		}
		engineWorkers := o.Workers
		if engineWorkers <= 0 {
			engineWorkers = runtime.GOMAXPROCS(0)
		}
		var batch []*declaration.Declaration
		applyDue := func() {
			for due.Len() > 0 && !due.peek().InspectedAt.After(eventTime) {
				oc := due.pop()
				st.Monitor.Observe(oc, e.ApplyOutcome(oc))
				st.OutcomesApplied++
			}
		}
		// flush assesses a batch after the outcomes due by the time its
		// first declaration was lodged (outcomes never arrive early).
		flush := func() {
			if len(batch) == 0 {
				return
			}
			if batch[0].LodgedAt.After(eventTime) {
				eventTime = batch[0].LodgedAt
			}
			applyDue()
			var out assessedChunk
			if size == 1 {
				out = assessedChunk{e.Assess(batch[0])}
			} else {
				out = e.AssessBatch(batch, engineWorkers)
			}
			for i, a := range out {
				d := batch[i]
				if d.LodgedAt.After(eventTime) {
					eventTime = d.LodgedAt
				}
				// A repeat is not inspected again: its first assessment's
				// channel decided (and its outcome is attributed to it).
				if t := o.ClosedLoop[a.DeclarationID]; t != nil && a.Channel != declaration.Green && !a.Repeat {
					oc := *t
					oc.InspectedAt = d.LodgedAt.Add(o.InspectDelay)
					due.push(&oc)
					st.OutcomesRead++
				}
				st.Assessed++
				st.Channels[a.Channel]++
				st.SelectedBy[a.SelectedBy]++
				if a.Model != "" {
					st.ModelScored++
					if a.Channel == declaration.Red && a.SelectedBy == "score" {
						st.ModelRedByScore++
					}
				}
				for j := range a.Findings { // declarations, not findings: profiles may give several
					det := a.Findings[j].Detector
					if !slices.ContainsFunc(a.Findings[:j], func(f declaration.Finding) bool { return f.Detector == det }) {
						st.Fired[det]++
					}
				}
				if o.KeepScores {
					sc := Scored{ID: a.DeclarationID, Score: a.Score, Channel: a.Channel, SelectedBy: a.SelectedBy, LodgedAt: a.LodgedAt}
					if o.KeepFindings {
						sc.Findings = a.Findings
					}
					st.Scores = append(st.Scores, sc)
				}
			}
			assessedCh <- out
			batch = batch[:0:0]
		}
		for c := range decoded {
			for i := range c {
				r := &c[i]
				st.Lines++
				if r.err != nil {
					st.Invalid++
					reject(errw, dls, o.InputName, r.line, r.err, r.data) // dlw's errors stay for its Flush
					continue
				}
				if batch = append(batch, r.d); len(batch) == size {
					flush()
				}
			}
		}
		flush()
		applyDue() // the stream ends at its last event time: what was due by then came
	}()
	encoded := ordered(assessedCh, workers, func(c assessedChunk) []byte {
		var b []byte
		for _, a := range c {
			b = append(a.AppendJSON(b), '\n')
		}
		return b
	})
	w := bufio.NewWriterSize(o.Output, 1<<16)
	var werr error
	for b := range encoded {
		if werr == nil {
			_, werr = w.Write(b)
		}
	}
	if werr == nil {
		werr = w.Flush()
	}
	errw.Flush()
	if dlw != nil {
		dlw.Flush()
	}
	st.Elapsed = time.Since(start)
	st.Repeats = e.Repeats() - repeats0
	st.StateEntries, st.StateBytes, st.StateEvicted = e.Store().Stats()
	st.PendingEntries, st.PendingBytes = e.Store().DeclStats()
	st.PendingLost, st.PendingOnDisk = e.Store().DeclLost(), e.Config().State.PendingDir != ""
	st.SharedEntries = e.Shared().Len()
	st.Rates = e.Rates()
	if readErr != nil {
		return st, fmt.Errorf("reading %s: %w", o.InputName, readErr)
	}
	if werr != nil {
		return st, fmt.Errorf("writing assessments: %w", werr)
	}
	return st, nil
}

// readLines splits r into lines and sends them in chunks. A line longer than
// limit is not kept: it is reported by size. Blank lines are skipped.
func readLines(r io.Reader, limit int, out chan<- []rawRec) error {
	br := bufio.NewReaderSize(r, 1<<16)
	chunk := make([]rawRec, 0, chunkSize)
	lineNo := 0
	for {
		lineNo++
		var line []byte
		size := 0
		var err error
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			size += len(frag)
			if size <= limit+2 { // +2: room for the line ending
				line = append(line, frag...)
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return err
		}
		if err == nil {
			size-- // the newline is not part of the message
		}
		line = bytes.TrimRight(line, "\r\n")
		if size > limit+1 || len(line) > limit {
			chunk = append(chunk, rawRec{line: lineNo, tooLarge: size})
		} else if len(bytes.TrimSpace(line)) > 0 {
			chunk = append(chunk, rawRec{line: lineNo, data: line})
		}
		if len(chunk) == chunkSize || (err == io.EOF && len(chunk) > 0) {
			out <- chunk
			chunk = make([]rawRec, 0, chunkSize)
		}
		if err == io.EOF {
			return nil
		}
	}
}

// reject reports an invalid line of a file on errs and, when dls is not
// nil, writes its dead letter there (the error is the dead letter's write's).
func reject(errs, dls io.Writer, source string, line int, err error, original []byte) error {
	fmt.Fprintf(errs, "%s line %d: %v\n", source, line, err)
	if dls == nil {
		return nil
	}
	dl := declaration.DeadLetter{Source: source, Line: line, Reason: err.Error(), Kind: declaration.ErrorKind(err), Original: original}
	_, werr := dls.Write(append(dl.AppendJSON(nil), '\n'))
	return werr
}

// readOutcomes reads the whole outcomes file, in file order; the replay's
// outcome queue orders them by inspected_at, file order breaking ties.
func readOutcomes(o ReplayOptions, st *ReplayStats) ([]*declaration.Outcome, error) {
	var list []*declaration.Outcome
	sc := bufio.NewScanner(o.Outcomes)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		oc, err := declaration.DecodeOutcome(b)
		if err != nil {
			st.OutcomesBad++
			// Read before the declarations' dead letters are written.
			if err := reject(o.Errors, o.DeadLetters, o.OutcomesName, line, err, b); err != nil {
				return nil, fmt.Errorf("dead letters: %w", err)
			}
			continue
		}
		list = append(list, oc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s line %d: %w", o.OutcomesName, line+1, err)
	}
	st.OutcomesRead = len(list)
	return list, nil
}

// Summary is the replay summary printed on stderr.
func (st *ReplayStats) Summary(ruleset string, detectors []string) string {
	var b strings.Builder
	rate := float64(st.Lines) / math.Max(st.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(&b, "replay: %d declarations read, %d assessed, %d invalid, in %.2fs (%s/s), ruleset %s\n",
		st.Lines, st.Assessed, st.Invalid, st.Elapsed.Seconds(), fmtInt(rate), ruleset)
	if st.Repeats > 0 {
		fmt.Fprintf(&b, "repeated ids: %d declarations came under an id assessed before; assessed again, not learned from again\n", st.Repeats)
	}
	if st.Assessed > 0 {
		fmt.Fprintf(&b, "channels: green %d (%.1f%%), yellow %d (%.1f%%), red %d (%.1f%%)\n",
			st.Channels[0], pct(st.Channels[0], st.Assessed), st.Channels[1], pct(st.Channels[1], st.Assessed),
			st.Channels[2], pct(st.Channels[2], st.Assessed))
		fmt.Fprintf(&b, "selected by: score %d, profile %d, random %d\n", st.SelectedBy["score"], st.SelectedBy["profile"], st.SelectedBy["random"])
		r := st.Rates
		fmt.Fprintf(&b, "thresholds at the end: yellow %.2f, red %.2f", r.Yellow, r.Red)
		if r.Targets {
			fmt.Fprintf(&b, ", following inspection-rate targets red %.1f%% yellow %.1f%%; recent shares by score or profile red %.1f%% yellow %.1f%%",
				100*r.TargetRed, 100*r.TargetYel, 100*r.Shares[2], 100*r.Shares[1])
		} else {
			b.WriteString(" (fixed)")
		}
		b.WriteString("\n")
		if !r.Targets && st.ModelScored >= 1000 && st.ModelRedByScore*1000 < st.ModelScored {
			fmt.Fprintf(&b, "warning: of the %d assessments the learned model scored, %d reached red by score: its scores rarely reach the fixed red threshold (%.2f) here, so red held mostly random picks and profiles; an inspection-rate target (--red-rate, scoring.rates) holds the red load whatever the score's scale\n",
				st.ModelScored, st.ModelRedByScore, r.Red)
		}
	}
	if st.OutcomesRead+st.OutcomesBad > 0 {
		fmt.Fprintf(&b, "outcomes: %d read, %d applied, %d not yet due at the end of the stream, %d invalid\n",
			st.OutcomesRead, st.OutcomesApplied, st.OutcomesRead-st.OutcomesApplied, st.OutcomesBad)
	}
	where := ""
	if st.PendingOnDisk {
		where = fmt.Sprintf(" on disk (%d lost to disk errors)", st.PendingLost)
	}
	fmt.Fprintf(&b, "state: %d entity records in %.1f MB, %d evicted; %d declaration records in %.1f MB%s; %d shared statistics\n",
		st.StateEntries, float64(st.StateBytes)/(1<<20), st.StateEvicted, st.PendingEntries, float64(st.PendingBytes)/(1<<20), where, st.SharedEntries)
	b.WriteString("findings by detector:")
	for _, d := range detectors {
		fmt.Fprintf(&b, " %s %d (%.1f%%),", d, st.Fired[d], pct(st.Fired[d], st.Assessed))
	}
	if n := st.Fired["aeo"]; n > 0 {
		fmt.Fprintf(&b, " aeo reduction %d,", n)
	}
	s := strings.TrimSuffix(b.String(), ",")
	return s + "\n"
}

func pct(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}

// fmtInt writes x rounded to a whole number, with thousands separators.
func fmtInt(x float64) string {
	s := strconv.Itoa(int(math.Round(x)))
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// outcomeQueue holds outcomes until the stream's event time reaches them,
// earliest inspected_at first and, among equal times, in arrival order.
type outcomeQueue struct {
	items []queued
	seq   int
}

type queued struct {
	o   *declaration.Outcome
	seq int
}

func (q *outcomeQueue) Len() int { return len(q.items) }
func (q *outcomeQueue) Less(i, j int) bool {
	a, b := q.items[i], q.items[j]
	if !a.o.InspectedAt.Equal(b.o.InspectedAt) {
		return a.o.InspectedAt.Before(b.o.InspectedAt)
	}
	return a.seq < b.seq
}
func (q *outcomeQueue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *outcomeQueue) Push(x any)    { q.items = append(q.items, x.(queued)) }
func (q *outcomeQueue) Pop() any {
	x := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return x
}

func (q *outcomeQueue) push(o *declaration.Outcome) {
	heap.Push(q, queued{o: o, seq: q.seq})
	q.seq++
}
func (q *outcomeQueue) peek() *declaration.Outcome { return q.items[0].o }
func (q *outcomeQueue) pop() *declaration.Outcome  { return heap.Pop(q).(queued).o }
