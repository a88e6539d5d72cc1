package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Every binary16 comes back from its float32 unchanged.
func TestHalfRoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := fromHalf(uint16(h))
		if math.IsNaN(float64(f)) {
			if got := fromHalf(toHalf(f)); !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: NaN came back as %v", h, got)
			}
			continue
		}
		if got := toHalf(f); got != uint16(h) {
			t.Fatalf("%#04x (%g) came back as %#04x", h, f, got)
		}
	}
}

// toHalf gives the nearest binary16 (ties to the even one), found here by
// search over every finite binary16; beyond the largest it gives the
// largest.
func TestHalfRounding(t *testing.T) {
	var finite []float64 // every finite non-negative binary16, ascending
	for h := 0; h < 0x7c00; h++ {
		finite = append(finite, float64(fromHalf(uint16(h))))
	}
	nearest := func(x float64) float64 {
		if x >= finite[len(finite)-1] {
			return finite[len(finite)-1]
		}
		i := 0
		for lo, hi := 0, len(finite)-1; lo <= hi; {
			mid := (lo + hi) / 2
			if finite[mid] <= x {
				i, lo = mid, mid+1
			} else {
				hi = mid - 1
			}
		}
		a, b := finite[i], finite[min(i+1, len(finite)-1)]
		switch {
		case x-a < b-x:
			return a
		case x-a > b-x:
			return b
		case i%2 == 0: // a tie: the even encoding
			return a
		}
		return b
	}
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []float32{0, 1, 2049, 2051, 65504, 65519, 65520, 1e9, 5.960464477539063e-8, 2.9802322387695312e-8, 2.98023259e-8, 1e-10, 6.1035156e-05, 6.097555e-05, 0.1, 1.0 / 3}
	for i := 0; i < 200000; i++ {
		cases = append(cases, float32(math.Exp(rng.Float64()*40-25)))
	}
	for _, f := range cases {
		for _, x := range []float32{f, -f} {
			want := nearest(math.Abs(float64(x)))
			if x < 0 {
				want = -want
			}
			if got := float64(fromHalf(toHalf(x))); got != want && !(got == 0 && want == 0) {
				t.Fatalf("%g: rounded to %g, nearest binary16 is %g", x, got, want)
			}
		}
	}
	if !math.IsInf(float64(fromHalf(toHalf(float32(math.Inf(-1))))), -1) || !math.IsNaN(float64(fromHalf(toHalf(float32(math.NaN()))))) {
		t.Error("infinity or NaN not kept")
	}
}
