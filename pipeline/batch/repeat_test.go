package batch

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/riskmon/riskmon/pipeline/engine"
)

// A declaration that comes again under an id already assessed (a
// redelivery after a crash, a resubmission) is assessed again but learned
// from once: the stream with repeats inserted assesses every other
// declaration as the stream without them, model included.
//
// One at a time (stream mode's path), in a stream of 4,000, the repeats are
// a window of 300 declarations delivered twice in a row (what a crash
// before the offset commit redelivers) and 100 early declarations
// resubmitted near the end, after most of their outcomes were learned. In
// micro-batches on 3 workers, in a stream of 6,000, they come as whole
// batches (so that the other declarations' batches stay as they were): the
// 256 declarations of batch 9 again after batch 10, and 128 of batch 20
// twice after batch 21, the second copies under another importer (another
// lane); there, in a closed loop too.
func TestRepeatLearnedOnce(t *testing.T) {
	decls, outcomes, truthLines := modelStream(t, 6000)
	truth := readTruthLines(t, truthLines)
	lines := bytes.SplitAfter(bytes.TrimSuffix(decls, []byte("\n")), []byte("\n"))
	for _, c := range []struct {
		name           string
		n              int // declarations of the stream
		batch, workers int
		after          map[int][][]byte // repeats inserted after line i
		loop           bool             // and in a closed loop
	}{
		{"one at a time", 4000, 1, 1, map[int][][]byte{2299: lines[2000:2300], 3600: lines[100:200]}, false},
		{"micro-batches", 6000, engine.BatchSize, 3, map[int][][]byte{
			11*256 - 1: lines[9*256 : 10*256],
			22*256 - 1: append(slices.Clone(lines[20*256:20*256+128]), func() (r [][]byte) {
				for _, l := range lines[20*256 : 20*256+128] {
					r = append(r, resubmit(l))
				}
				return r
			}()...),
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var in, orig []byte
			inserted := map[int]bool{} // output positions of the repeats
			n, repeats := 0, 0
			for i, l := range lines[:c.n] {
				orig = append(orig, l...)
				in = append(in, l...)
				n++
				for _, r := range c.after[i] {
					in = append(in, r...)
					inserted[n] = true
					n++
					repeats++
				}
			}
			replay := func(in []byte) ([][]byte, *ReplayStats, *engine.Engine) {
				e, err := engine.New(modelConfig(t))
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(in), InputName: "d", Outcomes: bytes.NewReader(outcomes), OutcomesName: "o",
					Output: &out, Errors: io.Discard, Batch: c.batch, Workers: c.workers})
				if err != nil {
					t.Fatal(err)
				}
				return bytes.Split(bytes.TrimSpace(assessedAt.ReplaceAll(out.Bytes(), nil)), []byte("\n")), st, e
			}
			want, wst, we := replay(orig)
			got, gst, ge := replay(in)
			if wst.Repeats != 0 || gst.Repeats != uint64(repeats) {
				t.Fatalf("repeats counted: %d without, %d with the %d repeats", wst.Repeats, gst.Repeats, repeats)
			}
			// Scoring reads refresh the peer groups' cached medians
			// (computed afresh when a group's count has moved by 1/64
			// since), so a repeat's reads move when some groups
			// recompute theirs: later scores may move by hundredths of a
			// point, never a channel. Learning the repeats again moves
			// scores by points and channels with them.
			type scored struct {
				Score   float64 `json:"score"`
				Channel string  `json:"channel"`
			}
			k, differ, moved := 0, 0, 0.0
			for i, l := range got {
				if inserted[i] {
					continue
				}
				if k < len(want) && !bytes.Equal(l, want[k]) {
					differ++
					var a, b scored
					if json.Unmarshal(l, &a) != nil || json.Unmarshal(want[k], &b) != nil {
						t.Fatalf("assessment %d: not JSON:\n%s\n%s", k+1, l, want[k])
					}
					if moved = max(moved, math.Abs(a.Score-b.Score)); a.Channel != b.Channel || math.Abs(a.Score-b.Score) > 0.1 {
						t.Errorf("assessment %d (line %d with the repeats): score %.2f, channel %s; without the repeats %.2f, %s",
							k+1, i+1, a.Score, a.Channel, b.Score, b.Channel)
					}
				}
				k++
			}
			t.Logf("%d repeats; %d of %d other assessments not byte for byte the same, scores moved by at most %.3f points", repeats, differ, len(want), moved)
			if k != len(want) {
				t.Fatalf("%d assessed besides the repeats, %d without them", k, len(want))
			}
			if we.Model() == nil || ge.Model() == nil || we.Model().Labels != ge.Model().Labels {
				t.Fatalf("the model at the end: %v without the repeats, %v with them", we.Model(), ge.Model())
			}
			// In a closed loop (inspections follow riskmon's channels), a
			// repeat is not inspected again, whatever its channel.
			loop := func(in []byte) int {
				e, err := engine.New(modelConfig(t))
				if err != nil {
					t.Fatal(err)
				}
				st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(in), InputName: "d", ClosedLoop: truth, InspectDelay: 7 * 24 * time.Hour,
					Output: io.Discard, Errors: io.Discard, Batch: c.batch, Workers: c.workers})
				if err != nil {
					t.Fatal(err)
				}
				return st.OutcomesRead
			}
			if w, g := 0, 0; c.loop {
				if w, g = loop(orig), loop(in); w != g {
					t.Errorf("closed loop: %d inspections with the repeats, %d without", g, w)
				}
			}
			if es, ed := we.Store().DeclStats(); true {
				if gs, gd := ge.Store().DeclStats(); gs != es || gd != ed {
					t.Errorf("declaration records: %d (%d bytes) with the repeats, %d (%d bytes) without", gs, gd, es, ed)
				}
			}
		})
	}
}

// resubmit is a declaration line again under another importer.
func resubmit(line []byte) []byte {
	return bytes.Replace(line, []byte(`"importer":{"id":"`), []byte(`"importer":{"id":"RESUBMIT-`), 1)
}
