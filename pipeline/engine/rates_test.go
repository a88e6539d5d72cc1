package engine

import (
	"os"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
)

// Inspection-rate targets hold the red and yellow shares (random picks
// apart) near the targets, before and after a reload that changes the
// score scale halfway; fixed thresholds, given the same reload, do not.
//
// 30,000 declarations; 100,000 with RISKMON_QUALITY=1 (.ci/run sets it).
func TestRateTargets(t *testing.T) {
	n := 30000
	if os.Getenv("RISKMON_QUALITY") != "" {
		n = 100000
	}
	decls, _ := testkit.GenDecls(t, n, 5)
	half := len(decls) / 2
	// The reload: unit_value's weight up, route's down, splitting's up.
	heavier := func(c *config.Config) {
		for i := range c.Detectors {
			switch c.Detectors[i].Name {
			case "unit_value", "splitting":
				w := 100.0
				c.Detectors[i].Weight = &w
			case "route":
				w := 5.0
				c.Detectors[i].Weight = &w
			}
		}
	}
	run := func(rates bool) (shares [2][3]float64) {
		cfg := config.Default()
		cfg.Model.Enabled = false // the scale changes by the reload alone
		if rates {
			if err := cfg.SetRates(0.03, 0.07); err != nil {
				t.Fatal(err)
			}
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var n [2]float64
		for i, d := range decls {
			if i == half {
				next := config.Default()
				next.Model.Enabled = false
				heavier(next)
				if rates {
					if err := next.SetRates(0.03, 0.07); err != nil {
						t.Fatal(err)
					}
				}
				if err := e.Reload(next); err != nil {
					t.Fatal(err)
				}
			}
			a := e.Assess(d)
			// Judged after the warm-up, and after the first 2,000
			// declarations of the new scale.
			part := 0
			if i >= half {
				part = 1
			}
			if a.SelectedBy == "random" || i < 2000 || (i >= half && i < half+2000) {
				continue
			}
			shares[part][a.Channel]++
			n[part]++
		}
		for p := range shares {
			for c := range shares[p] {
				shares[p][c] /= n[p]
			}
		}
		return shares
	}
	targeted, fixed := run(true), run(false)
	for p, name := range []string{"before the reload", "after the reload"} {
		t.Logf("%s: with targets red %.2f%% yellow %.2f%%; fixed thresholds red %.2f%% yellow %.2f%%", name,
			100*targeted[p][declaration.Red], 100*targeted[p][declaration.Yellow], 100*fixed[p][declaration.Red], 100*fixed[p][declaration.Yellow])
		if r := targeted[p][declaration.Red]; r < 0.027 || r > 0.033 {
			t.Errorf("%s: red share %.4f, target 0.03", name, r)
		}
		if y := targeted[p][declaration.Yellow]; y < 0.063 || y > 0.077 {
			t.Errorf("%s: yellow share %.4f, target 0.07", name, y)
		}
	}
	// The reload really moves the scale: fixed thresholds' red share moves by
	// more than half.
	if r0, r1 := fixed[0][declaration.Red], fixed[1][declaration.Red]; r1 < 1.5*r0 && r1 > r0/1.5 {
		t.Errorf("the reload hardly changed the fixed thresholds' red share (%.4f, %.4f): the test shows nothing", r0, r1)
	}
}

// quantile, which skips the bins never counted in, finds the cut a scan of
// every bin finds.
func TestQuantileSkipsEmptyBins(t *testing.T) {
	var k rateKeeper
	rng := uint64(7)
	for i := range 3000 {
		rng = rng*6364136223846793005 + 1442695040888963407
		score := float64(rng>>40) / (1 << 24) * 30 // low scores, as usual
		if i%50 == 0 {
			score = 100 // the top bin
		}
		k.observe(score, 0, false, 0, nil)
		if i%700 == 0 {
			k.decay(decayStep)
		}
	}
	scan := func(n float64) cut {
		n = max(n, 0)
		above := 0.0
		for i := rateBins - 1; i >= 0; i-- {
			if b := k.bins[i]; b > 0 && above+b > n {
				return cut{edge: float64(i) * rateBinWidth, frac: (n - above) / b}
			}
			above += k.bins[i]
		}
		return cut{0, 1}
	}
	for _, share := range []float64{0, 0.001, 0.01, 0.05, 0.2, 0.5, 0.99, 1, 2} {
		if got, want := k.quantile(share*k.total), scan(share*k.total); got != want {
			t.Errorf("share %g: cut %+v, want %+v", share, got, want)
		}
	}
}
