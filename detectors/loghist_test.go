package detectors

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The histogram's median and MAD agree with the exact ones of the sample to
// within a bin, for a normal, a skewed and a two-point sample.
func TestHistStats(t *testing.T) {
	f := func(name string, xs []float64) {
		t.Helper()
		var h []byte
		for _, x := range xs {
			h = histAdd(h, x)
		}
		med, mad := histStats(h)
		wantMed := median(xs)
		dev := make([]float64, len(xs))
		for i, x := range xs {
			dev[i] = math.Abs(x - wantMed)
		}
		wantMAD := median(dev)
		if math.Abs(med-wantMed) > histWidth || math.Abs(mad-wantMAD) > histWidth {
			t.Errorf("%s: median %.3f MAD %.3f, want %.3f and %.3f", name, med, mad, wantMed, wantMAD)
		}
		if histCount(h) != len(xs) {
			t.Errorf("%s: count %d, want %d", name, histCount(h), len(xs))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	normal := make([]float64, 2000)
	for i := range normal {
		normal[i] = 3 + 0.4*r.NormFloat64()
	}
	f("normal", normal)
	skewed := make([]float64, 1500)
	for i := range skewed {
		skewed[i] = math.Log(0.5 + r.ExpFloat64())
	}
	f("skewed", skewed)
	f("two points", []float64{1, 1, 1, 2, 2, 2, 2})
}

// Beyond histDecayAt observations old ones fade: after a price change the
// median follows the new prices.
func TestHistDecay(t *testing.T) {
	var h []byte
	for i := 0; i < 5000; i++ {
		h = histAdd(h, 2)
	}
	for i := 0; i < 8000; i++ {
		h = histAdd(h, 4)
	}
	if med, _ := histStats(h); math.Abs(med-4) > histWidth {
		t.Errorf("median %.2f after the shift, want about 4", med)
	}
	if n := histCount(h); n > histDecayAt {
		t.Errorf("count %d above the decay bound %d", n, histDecayAt)
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
