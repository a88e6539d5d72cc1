package batch

import (
	"bytes"
	"io"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/engine"
	"github.com/riskmon/riskmon/synth"
)

// BenchmarkReplay measures file-to-file replay (read, decode, engine, encode,
// write); one op is one declaration.
func BenchmarkReplay(b *testing.B) {
	_, raw := testkit.GenDecls(b, 20000, 7)
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		e, _ := engine.New(config.Default())
		st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(raw), InputName: "bench", Output: io.Discard, Errors: io.Discard})
		if err != nil || st.Assessed != 20000 {
			b.Fatal(err, st.Assessed)
		}
		done += st.Assessed
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "decl/s")
}

// BenchmarkEngineWithModel measures the engine with the learned model
// scoring (features, inference, explanation, remembering the features for
// the outcome); one op is one declaration. The model is trained first on a
// stream where a third of the declarations were inspected.
func BenchmarkEngineWithModel(b *testing.B) {
	var d, o bytes.Buffer
	if err := synth.Write(synth.Options{Count: 20000, Seed: 7, InspectRate: 0.3}, synth.Writers{Declarations: &d, Outcomes: &o}); err != nil {
		b.Fatal(err)
	}
	raw := d.Bytes()
	e, err := engine.New(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Replay(e, ReplayOptions{Input: bytes.NewReader(raw), InputName: "bench", Outcomes: &o, OutcomesName: "o", Output: io.Discard, Errors: io.Discard}); err != nil {
		b.Fatal(err)
	}
	if m := e.Model(); m == nil || !m.Active {
		b.Fatalf("no active model: %v", m)
	}
	decls, _ := testkit.GenDecls(b, 20000, 8)
	rounds := testkit.NewRounds(b, decls)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Assess(rounds.Next(i))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decl/s")
}
