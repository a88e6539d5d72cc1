package batch

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"testing"

	"github.com/riskmon/riskmon/pipeline/engine"
)

// A declaration that comes again under an id already assessed (a
// redelivery after a crash, a resubmission) is assessed again but learned
// from once: the stream with repeats inserted assesses every other
// declaration exactly as the stream without them, model included. The
// repeats: a window of 300 declarations delivered twice in a row (what a
// crash before the offset commit redelivers), and 100 early declarations
// resubmitted near the end, after most of their outcomes were learned.
func TestRepeatLearnedOnce(t *testing.T) {
	decls, outcomes, _ := modelStream(t, 6000)
	lines := bytes.SplitAfter(decls, []byte("\n"))
	var repeated []byte
	inserted := map[int]bool{} // output positions of the repeats
	n := 0
	add := func(l []byte, repeat bool) {
		repeated = append(repeated, l...)
		inserted[n] = repeat
		n++
	}
	for i, l := range lines {
		if len(l) == 0 {
			continue
		}
		add(l, false)
		if i == 2299 {
			for _, r := range lines[2000:2300] {
				add(r, true)
			}
		}
		if i == 5000 {
			for _, r := range lines[100:200] {
				add(r, true)
			}
		}
	}
	replay := func(in []byte) ([][]byte, *ReplayStats, *engine.Engine) {
		e, err := engine.New(modelConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(in), InputName: "d", Outcomes: bytes.NewReader(outcomes), OutcomesName: "o",
			Output: &out, Errors: io.Discard, Batch: 1})
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Split(assessedAt.ReplaceAll(out.Bytes(), nil), []byte("\n")), st, e
	}
	want, wst, we := replay(decls)
	got, gst, ge := replay(repeated)
	if wst.Repeats != 0 || gst.Repeats != 400 {
		t.Fatalf("repeats counted: %d without, %d with the 400 repeats", wst.Repeats, gst.Repeats)
	}
	// Scoring reads refresh the peer groups' cached medians (computed
	// afresh when a group's count has moved by 1/64 since), so a repeat's
	// reads move when a few groups recompute theirs: a handful of later
	// scores move by hundredths of a point. Learning the repeats again
	// moves thousands.
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
	t.Logf("%d of %d assessments not byte for byte the same, scores moved by at most %.3f points", differ, len(want), moved)
	if k != len(want) || differ > len(want)/100 {
		t.Fatalf("%d of %d assessments differ (at most 1%% may); %d assessed besides the repeats, %d without them", differ, len(want), k, len(want))
	}
	if we.Model() == nil || ge.Model() == nil || we.Model().Labels != ge.Model().Labels {
		t.Fatalf("the model at the end: %v without the repeats, %v with them", we.Model(), ge.Model())
	}
	if es, ed := we.Store().DeclStats(); true {
		if gs, gd := ge.Store().DeclStats(); gs != es || gd != ed {
			t.Errorf("declaration records: %d (%d bytes) with the repeats, %d (%d bytes) without", gs, gd, es, ed)
		}
	}
}
