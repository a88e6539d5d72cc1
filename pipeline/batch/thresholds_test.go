package batch

import (
	"fmt"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/pipeline/engine"
)

// A score exactly at a threshold takes that threshold's channel ("at or
// above"), and a score just below it does not. The profiles' points are
// chosen so that the noisy-OR gives the thresholds exactly in floating
// point (1 - 0.5 and 1 - 0.75 are exact).
func TestScoreAtThresholds(t *testing.T) {
	cfg, err := config.Parse([]byte(`name: thresholds
scoring: {yellow: 50, red: 75}
random: {rate: 0}
model: {enabled: false}
detectors:
  - name: p
    kind: profile
    params:
      profiles:
        - {id: Y, reason: at yellow, match: {importer: [AT-YELLOW]}, points: 50}
        - {id: R, reason: at red, match: {importer: [AT-RED]}, points: 75}
        - {id: BY, reason: below yellow, match: {importer: [BELOW-YELLOW]}, points: 49.99}
        - {id: BR, reason: below red, match: {importer: [BELOW-RED]}, points: 74.99}
`), "thresholds")
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := func(importer string, score float64, want declaration.Channel) {
		t.Helper()
		d, err := declaration.DecodeDeclaration([]byte(fmt.Sprintf(`{"id":"D-%s","lodged_at":"2026-11-02T09:14:05Z","office":"O1","importer":{"id":%q},"currency":"USD",
			"items":[{"line":1,"hs_code":"851713","origin":"CN","gross_mass_kg":5,"customs_value":100}]}`, importer, importer)))
		if err != nil {
			t.Fatal(err)
		}
		a := e.Assess(d)
		if a.Score != score || a.Channel != want || a.SelectedBy != "score" {
			t.Errorf("%s: score %v, channel %v selected by %s; want score %v, channel %v by score", importer, a.Score, a.Channel, a.SelectedBy, score, want)
		}
	}
	f("AT-YELLOW", 50, declaration.Yellow)
	f("AT-RED", 75, declaration.Red)
	f("BELOW-YELLOW", 49.99, declaration.Green)
	f("BELOW-RED", 74.99, declaration.Yellow)
	f("NONE", 0, declaration.Green)
}
