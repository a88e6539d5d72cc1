package pipeline

import (
	"bytes"
	"io"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/synth"
)

func genDecls(tb testing.TB, n int, seed uint64) (decls []*declaration.Declaration, raw []byte) {
	tb.Helper()
	var buf bytes.Buffer
	if err := synth.Write(synth.Options{Count: n, Seed: seed}, synth.Writers{Declarations: &buf}); err != nil {
		tb.Fatal(err)
	}
	raw = buf.Bytes()
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		d, err := declaration.DecodeDeclaration(l)
		if err != nil {
			tb.Fatal(err)
		}
		decls = append(decls, d)
	}
	return decls, raw
}

// BenchmarkEngine measures the engine alone (every default detector, scoring,
// learning) on generated declarations; one op is one declaration.
func BenchmarkEngine(b *testing.B) {
	decls, _ := genDecls(b, 20000, 7)
	e, err := NewEngine(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Assess(decls[i%len(decls)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decl/s")
}

// BenchmarkReplay measures file-to-file replay (read, decode, engine, encode,
// write); one op is one declaration.
func BenchmarkReplay(b *testing.B) {
	_, raw := genDecls(b, 20000, 7)
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		e, _ := NewEngine(config.Default())
		st, err := Replay(e, ReplayOptions{Input: bytes.NewReader(raw), InputName: "bench", Output: io.Discard, Errors: io.Discard})
		if err != nil || st.Assessed != 20000 {
			b.Fatal(err, st.Assessed)
		}
		done += st.Assessed
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "decl/s")
}

func BenchmarkDecode(b *testing.B) {
	_, raw := genDecls(b, 2000, 7)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := declaration.DecodeDeclaration(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}
