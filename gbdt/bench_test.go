package gbdt

import (
	"sync"
	"testing"
)

// benchModel is a model of 200 trees of depth 6 on 40 features, trained
// once for the prediction benchmarks. The small MinLeafWeight lets nearly
// every node split (about 120 of 127); Logit walks every tree for the full
// depth anyway, leaves being fixed points.
var benchModel = sync.OnceValues(func() (*Model, Dataset) {
	d := synthData(50000, 40, 31)
	p := DefaultParams()
	p.EarlyStoppingRounds, p.ValidationShare, p.MinLeafWeight = 0, 0, 0.1
	m, _, err := Train(d, p)
	if err != nil {
		panic(err)
	}
	return m, d
})

func loadBenchModel(b *testing.B) (*Model, [][]float64) {
	m, d := benchModel()
	if m.NumTrees() != 200 || m.depth != 6 {
		b.Fatalf("%d trees of depth %d, want 200 of depth 6", m.NumTrees(), m.depth)
	}
	return m, d.X[:4096]
}

// BenchmarkPredict measures one row through 200 trees of depth 6.
func BenchmarkPredict(b *testing.B) {
	m, rows := loadBenchModel(b)
	b.ReportAllocs()
	b.ResetTimer()
	sum := 0.0
	for i := 0; b.Loop(); i++ {
		sum += m.Predict(rows[i%len(rows)])
	}
	_ = sum
	// How full the trees are: a full tree of depth 6 has 127 nodes.
	b.ReportMetric(float64(len(m.nodes))/float64(m.NumTrees()), "nodes/tree")
}

func BenchmarkContributions(b *testing.B) {
	m, rows := loadBenchModel(b)
	out := make([]float64, len(m.names))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m.Contributions(rows[i%len(rows)], out)
	}
}

// BenchmarkTrain50k trains on 50,000 rows of 40 features with the default
// parameters (early stopping on the last 20%).
func BenchmarkTrain50k(b *testing.B) {
	d := synthData(50000, 40, 32)
	var rep Report
	for b.Loop() {
		var err error
		if _, rep, err = Train(d, DefaultParams()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rep.Trees), "trees")
	b.ReportMetric(rep.ValidAUC, "validAUC")
}
