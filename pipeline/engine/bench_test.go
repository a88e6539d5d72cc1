package engine

import (
	"bytes"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
)

// BenchmarkEngine measures the engine alone (every default detector, scoring,
// learning) on generated declarations; one op is one declaration.
func BenchmarkEngine(b *testing.B) {
	decls, _ := testkit.GenDecls(b, 20000, 7)
	rounds := testkit.NewRounds(b, decls)
	e, err := New(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Assess(rounds.Next(i))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decl/s")
}

func BenchmarkDecode(b *testing.B) {
	_, raw := testkit.GenDecls(b, 2000, 7)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := declaration.DecodeDeclaration(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}
