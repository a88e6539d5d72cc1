package detectors

import (
	"bytes"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/synth"
)

// BenchmarkDetector measures each detector of the built-in configuration
// alone, Score then Learn, on generated declarations; one op is one
// declaration.
func BenchmarkDetector(b *testing.B) {
	var buf bytes.Buffer
	if err := synth.Write(synth.Options{Count: 20000, Seed: 9}, synth.Writers{Declarations: &buf}); err != nil {
		b.Fatal(err)
	}
	var decls []*declaration.Declaration
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		d, err := declaration.DecodeDeclaration(l)
		if err != nil {
			b.Fatal(err)
		}
		decls = append(decls, d)
	}
	cfg := config.Default()
	for i := range cfg.Detectors {
		dc := cfg.Detectors[i]
		b.Run(dc.Name, func(b *testing.B) {
			one := *cfg
			one.Detectors = []config.Detector{dc}
			dets, err := Build(&one, &Env{Config: &one, Store: NewStore(cfg.State.CapacityMB, cfg.State.PendingMB)})
			if err != nil {
				b.Fatal(err)
			}
			det := dets[0]
			a := &declaration.Assessment{SelectedBy: "score"}
			var fs []Finding
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := decls[i%len(decls)]
				fs = det.Score(d, fs[:0])
				det.Learn(d, a)
			}
		})
	}
}
