package batch

import (
	"bytes"
	"io"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/internal/testkit"
	"github.com/riskmon/riskmon/pipeline/engine"
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
