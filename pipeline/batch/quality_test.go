package batch

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/synth"
)

// TestDetectionQuality replays generated streams of 100,000 declarations with
// their outcomes through the built-in configuration and scores the second half
// against the truth. On every seed, inspecting the top 5 % must find hits at 5
// times the base rate or more. On seeds 2, 3 and 4, which were never used to
// choose the defaults (seeds 1 and 5 were), precision at 5 % must be at least
// 0.60 and the revenue share at 10 % at least 0.65. It takes about ten seconds
// without the race detector and is run by .ci/run with RISKMON_QUALITY=1
// (go test -race ./... skips it).
func TestDetectionQuality(t *testing.T) {
	if os.Getenv("RISKMON_QUALITY") == "" {
		t.Skip("set RISKMON_QUALITY=1 to run (.ci/run does)")
	}
	for _, seed := range []uint64{1, 5, 2, 3, 4} {
		untuned := seed >= 2 && seed <= 4
		var d, o, tr bytes.Buffer
		if err := synth.Write(synth.Options{Count: 100000, Seed: seed}, synth.Writers{Declarations: &d, Outcomes: &o, Truth: &tr}); err != nil {
			t.Fatal(err)
		}
		truth := map[string]*declaration.Outcome{}
		for _, l := range bytes.Split(bytes.TrimSpace(tr.Bytes()), []byte("\n")) {
			oc, err := declaration.DecodeOutcome(l)
			if err != nil {
				t.Fatal(err)
			}
			truth[oc.DeclarationID] = oc
		}
		e, err := engine.New(config.Default())
		if err != nil {
			t.Fatal(err)
		}
		st, err := Replay(e, ReplayOptions{Input: &d, InputName: "gen", Outcomes: &o, OutcomesName: "outcomes",
			Output: io.Discard, Errors: io.Discard, KeepScores: true})
		if err != nil {
			t.Fatal(err)
		}
		ev := Evaluate(st.Scores, truth, 0.5)
		t.Logf("seed %d:\n%s", seed, ev.Table())
		if r := ev.Rows[2]; r.Lift < 5 {
			t.Errorf("seed %d: precision@5%% %.3f is %.1f times the base rate %.4f, want >= 5", seed, r.Precision, r.Lift, ev.BaseRate)
		}
		if p := ev.Rows[2].Precision; untuned && p < 0.60 {
			t.Errorf("seed %d: precision@5%% %.3f, want >= 0.60", seed, p)
		}
		if r := ev.Rows[3].RevenueShare; untuned && r < 0.65 {
			t.Errorf("seed %d: revenue share@10%% %.3f, want >= 0.65", seed, r)
		}
	}
}
