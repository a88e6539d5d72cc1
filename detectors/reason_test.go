package detectors

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// formatNumberFmt is FormatNumber as it was written with fmt: the reference
// the strconv version must match.
func formatNumberFmt(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		s := fmt.Sprintf("%.0f", a)
		var out []byte
		for i := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		if v < 0 {
			return "-" + string(out)
		}
		return string(out)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// TestFormatsMatchFmt checks that the strconv formatting of reasons writes
// what fmt wrote, on awkward values (halves, boundaries, tiny, huge,
// infinities, NaN, negative zero) and random ones.
func TestFormatsMatchFmt(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 0.5, 1.5, 2.5, -0.5, 0.05, 0.15, 0.25, 0.95, 0.995, 0.9995, 9.995, 99.95, 999.5, 999.4999,
		1000, 1e6, 12345678.5, 1e21, 1e22, 1e300, 5e-324, 1e-7, 0.000123456, math.Inf(1), math.Inf(-1), math.NaN(), math.MaxFloat64, -1234.5, -0.001}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		v := math.Exp(r.Float64()*40 - 20)
		if r.Intn(2) == 0 {
			v = -v
		}
		if r.Intn(4) == 0 {
			v = math.Round(v*100) / 100
		}
		vals = append(vals, v, float64(float32(v)))
	}
	for _, v := range vals {
		if got, want := FormatNumber(v), formatNumberFmt(v); got != want {
			t.Fatalf("FormatNumber(%v) = %q, fmt gives %q", v, got, want)
		}
		for prec := 0; prec <= 3; prec++ {
			if got, want := string(appendF(nil, v, prec)), fmt.Sprintf("%.*f", prec, v); got != want {
				t.Fatalf("appendF(%v, %d) = %q, fmt gives %q", v, prec, got, want)
			}
		}
		if got, want := string(appendE1(nil, v)), fmt.Sprintf("%.1e", v); got != want {
			t.Fatalf("appendE1(%v) = %q, fmt gives %q", v, got, want)
		}
	}
	for _, n := range []int{0, 1, -1, 42, math.MaxInt, math.MinInt} {
		if got, want := string(appendInt(nil, n)), fmt.Sprintf("%d", n); got != want {
			t.Fatalf("appendInt(%d) = %q, fmt gives %q", n, got, want)
		}
	}
}
