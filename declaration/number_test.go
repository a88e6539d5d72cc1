package declaration

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// numberCases are values where a shortcut would go wrong: halves at every
// precision (which strconv rounds by the exact binary value), values just
// beside them, negative zero and small negatives, carries into a new digit,
// magnitudes at and beyond the fast paths' bounds, and non-finite values.
func numberCases() []float64 {
	vs := []float64{0, math.Copysign(0, -1), -0.001, -0.004, 0.005, 0.015, 0.025, 0.125, 0.375, 1.005, 2.675,
		9.995, 99.95, 999.5, 0.5, 1.5, 2.5, -2.5, 1e-7, 123456.785, 1 << 40, 1<<40 - 0.5, 1e15, 1e15 - 1, 9.9999999e14,
		1e300, -1e300, 5e-324, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN()}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var v float64
		switch r.IntN(4) {
		case 0: // scores, points, shares
			v = r.Float64() * 100
		case 1: // money and masses
			v = math.Exp(r.Float64()*40) - 1
		case 2: // exact halves and neighbours
			v = float64(r.IntN(1<<20)) / 8
			v = math.Nextafter(v, v+float64(r.IntN(3)-1))
		default:
			v = (r.Float64() - 0.5) * math.Pow10(r.IntN(16))
		}
		vs = append(vs, v)
	}
	return vs
}

func TestAppendFixedIsStrconv(t *testing.T) {
	for _, v := range numberCases() {
		for prec := range fastPrec + 2 {
			got := string(AppendFixed(nil, v, prec))
			if want := strconv.FormatFloat(v, 'f', prec, 64); got != want {
				t.Fatalf("AppendFixed(%v, %d) = %q, strconv writes %q", v, prec, got, want)
			}
		}
	}
}

func TestAppendRoundedIsStrconv(t *testing.T) {
	for _, v := range numberCases() {
		for prec := range fastPrec + 2 {
			p := math.Pow10(prec)
			got := string(AppendRounded(nil, v, prec))
			if want := strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64); got != want {
				t.Fatalf("AppendRounded(%v, %d) = %q, strconv writes %q", v, prec, got, want)
			}
		}
	}
}
