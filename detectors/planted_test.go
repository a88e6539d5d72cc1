package detectors

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/riskmon/riskmon/declaration"
)

// An honest stream for planting patterns into: 60 established importers, each
// with two goods from their usual origin, prices with a 30 % spread, masses
// per unit with a 5 % spread, values spread over several orders of magnitude.
type honest struct {
	r   *rand.Rand
	at  time.Time
	seq int
}

var goodsBook = []struct {
	hs, origin, unit string
	perKg, kgUnit    float64
	duty             float64
}{
	{"6403990000", "CN", "PR", 40, 1.1, 0.25},
	{"8517130000", "CN", "PCE", 450, 0.35, 0},
	{"2208300000", "GB", "LTR", 11, 1.45, 0.4},
	{"7208510000", "BR", "KGM", 0.8, 1, 0.05},
	{"9503000000", "CN", "KGM", 7, 1, 0.1},
	{"0901110000", "HN", "KGM", 3.2, 1, 0.15},
}

func newHonest(seed uint64) *honest {
	return &honest{r: rand.New(rand.NewPCG(seed, 1)), at: time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)}
}

func (h *honest) item(line, g int) declaration.Item {
	b := goodsBook[g]
	mass := 50 * math.Exp(1.2*h.r.NormFloat64())
	value := mass * b.perKg * math.Exp(0.3*h.r.NormFloat64())
	it := declaration.Item{Line: line, HSCode: b.hs, Origin: b.origin, GrossMassKg: math.Round(mass*10)/10 + 0.1,
		NetMassKg: mass * 0.9, HasNetMass: true, CustomsValue: math.Round(value*100) / 100, QuantityUnit: b.unit,
		Duties: math.Round(value*b.duty*100) / 100, HasDuties: true}
	it.Quantity = math.Max(1, math.Round(it.GrossMassKg/b.kgUnit*math.Exp(0.05*h.r.NormFloat64())))
	return it
}

// next returns an honest declaration, a few hours after the previous one.
func (h *honest) next() *declaration.Declaration {
	h.seq++
	h.at = h.at.Add(time.Duration(h.r.IntN(40)+1) * time.Minute)
	imp := h.r.IntN(60)
	g := imp % len(goodsBook)
	d := decl(fmt.Sprintf("H%d", h.seq), h.at, h.item(1, g))
	if h.r.IntN(3) == 0 {
		d.Items = append(d.Items, h.item(2, (g+1)%len(goodsBook)))
	}
	d.Importer.ID = fmt.Sprintf("IMP-%d", imp)
	d.DeclarantID = fmt.Sprintf("DEC-%d", imp%7)
	d.Exporter = declaration.Exporter{ID: fmt.Sprintf("EXP-%d", imp), Country: d.Items[0].Origin}
	d.DispatchCountry = d.Items[0].Origin
	return d
}

// run feeds n honest declarations through det (score, then learn) and
// returns the share that got a finding of at least minStrength after the
// first warm declarations.
func (h *honest) run(det Detector, n, warm int, minStrength float64) float64 {
	flagged, judged := 0, 0
	for i := 0; i < n; i++ {
		d := h.next()
		fs := det.Score(d, nil)
		if i >= warm {
			judged++
			if maxStrength(fs) >= minStrength {
				flagged++
			}
		}
		det.Learn(d, nil)
	}
	return float64(flagged) / float64(max(judged, 1))
}

func maxStrength(fs []Finding) float64 {
	m := 0.0
	for _, f := range fs {
		m = max(m, f.Score)
	}
	return m
}

// planted scores planted declarations (learning from each) and returns how
// many got a finding of at least minStrength, and the reasons.
func planted(det Detector, ds []*declaration.Declaration, minStrength float64) (int, []string) {
	hits := 0
	var reasons []string
	for _, d := range ds {
		fs := det.Score(d, nil)
		if maxStrength(fs) >= minStrength {
			hits++
			reasons = append(reasons, fs[0].Reason)
		}
		det.Learn(d, nil)
	}
	return hits, reasons
}

// quietOnHonest builds a detector of the kind, feeds it n honest
// declarations, reports the share of those after warm that got a finding of
// strength 0.3 or more, and fails the test above maxRate.
func quietOnHonest(t *testing.T, kind, params string, seed uint64, n, warm int, maxRate float64) (Detector, *honest) {
	t.Helper()
	det := build(t, kindConfig(kind, params))[0]
	h := newHonest(seed)
	fp := h.run(det, n, warm, 0.3)
	t.Logf("%s: %.2f%% of %d honest declarations flagged", kind, 100*fp, n-warm)
	if fp > maxRate {
		t.Errorf("%s: false-positive rate %.3f, want <= %.3f", kind, fp, maxRate)
	}
	return det, h
}

func kindConfig(kind, params string) string {
	return fmt.Sprintf("name: t\nlists: {producers: [CN, BR, MX]}\ndetectors: [{name: %s, kind: %s, params: {%s}}]\n", kind, kind, params)
}

func TestPlantedMassQuantity(t *testing.T) {
	det, h := quietOnHonest(t, "mass_quantity", "", 1, 3000, 500, 0.01)
	var ds []*declaration.Declaration
	for i := 0; i < 20; i++ {
		d := h.next()
		it := &d.Items[0]
		if it.QuantityUnit == "KGM" {
			it.NetMassKg = it.GrossMassKg * 1.3 // net above gross
		} else {
			it.Quantity = math.Max(1, math.Round(it.Quantity*0.45)) // quantity understated
		}
		ds = append(ds, d)
	}
	if n, reasons := planted(det, ds, 0.3); n < 19 {
		t.Errorf("flagged %d of 20 planted; %q", n, reasons)
	} else if !strings.Contains(strings.Join(reasons, "|"), "the quantity may be understated") || !strings.Contains(strings.Join(reasons, "|"), "is above gross mass") {
		t.Errorf("reasons: %q", reasons)
	}
}

func TestPlantedRoute(t *testing.T) {
	det, h := quietOnHonest(t, "route", `trade_defence_goods: [{hs_prefix: ["7208"], traditional_origins: ["list:producers"]}]`, 2, 12000, 500, 0.01) // about half a year, so the long-run origin mix is mature
	var ds []*declaration.Declaration
	for i := 0; i < 30; i++ {
		d := h.next()
		d.Items = d.Items[:1]
		d.Items[0].HSCode, d.Items[0].Origin = "7208510000", "VN" // steel re-routed through VN
		d.DispatchCountry = "CN"
		ds = append(ds, d)
	}
	n, reasons := planted(det, ds, 0.3)
	if n < 29 {
		t.Errorf("flagged %d of 30 planted: %q", n, reasons)
	}
	for _, want := range []string{"origin VN makes 0.0% of HS 720851", "is under trade-defence duties and VN is not a traditional origin", "dispatched from CN"} {
		if !strings.Contains(reasons[0], want) {
			t.Errorf("reason %q lacks %q", reasons[0], want)
		}
	}
	// Thirty re-routed consignments in a few days: the recent origin mix shifts.
	if !strings.Contains(reasons[len(reasons)-1], "rose to") {
		t.Errorf("no origin shift reported: %q", reasons[len(reasons)-1])
	}
}

func TestPlantedImporterBehaviour(t *testing.T) {
	det, h := quietOnHonest(t, "importer_behaviour", "", 3, 4000, 1500, 0.01)
	// A missing trader: a new importer with five declarations of spirits.
	var ds []*declaration.Declaration
	for i := 0; i < 5; i++ {
		d := h.next()
		d.Importer.ID = "IMP-NEW"
		d.Items = []declaration.Item{h.item(1, 2)}
		ds = append(ds, d)
	}
	if n, reasons := planted(det, ds, 0.3); n != 5 || !strings.Contains(reasons[0], "new importer (first declaration) declaring duties of 40% of value") {
		t.Errorf("flagged %d of 5: %q", n, reasons)
	}
	// An established importer declares, for the first time, a new heading.
	d := h.next()
	d.Importer.ID = "IMP-7"
	d.Items = []declaration.Item{h.item(1, 5)}
	d.Items[0].HSCode = "8703230000"
	if fs := det.Score(d, nil); len(fs) != 1 || !strings.Contains(fs[0].Reason, "first declaration of HS 8703") {
		t.Errorf("new commodity: %+v", fs)
	}
}

func TestPlantedSplitting(t *testing.T) {
	det, h := quietOnHonest(t, "splitting", "", 4, 3000, 200, 0.01)
	var ds []*declaration.Declaration
	for _, v := range []float64{962, 988, 975, 991} {
		d := h.next()
		d.Importer.ID = "IMP-SPLIT"
		d.Items = d.Items[:1]
		d.Items[0].CustomsValue = v
		ds = append(ds, d)
	}
	n, reasons := planted(det, ds, 0.2)
	// The first of a burst has nothing to be compared with yet.
	if n != 3 || !strings.Contains(reasons[2], "4 of the 4 declarations of importer IMP-SPLIT within 48 hours are each valued just under 1,000 (991, 962, 988, 975; together 3,916)") {
		t.Errorf("flagged %d of 4: %q", n, reasons)
	}
}

func TestPlantedHistory(t *testing.T) {
	f := func(entities string) (imp13, others, hs6Named int, imp13Strength float64) {
		det := build(t, kindConfig("history", entities))[0]
		learner := det.(OutcomeLearner)
		h := newHonest(5)
		var ds []*declaration.Declaration
		var pend [][]byte
		for i := 0; i < 3000; i++ {
			d := h.next()
			det.Learn(d, nil)
			ds, pend = append(ds, d), append(pend, learner.Pending(d, nil, nil))
		}
		// Inspections: a 10 % random sample; importer IMP-13's inspected
		// declarations are all hits, every other one is clean.
		for i, d := range ds {
			if i%10 == 0 {
				learner.LearnOutcome(&declaration.Outcome{DeclarationID: d.ID, ImporterID: d.Importer.ID,
					InspectedAt: d.LodgedAt.Add(48 * time.Hour), Hit: d.Importer.ID == "IMP-13"}, pend[i])
			}
		}
		imp13Strength = 1
		for i := 0; i < 1000; i++ {
			d := h.next()
			fs := det.Score(d, nil)
			switch {
			case d.Importer.ID == "IMP-13":
				imp13++
				if len(fs) == 0 || !strings.Contains(fs[0].Reason, "importer IMP-13: ") {
					t.Fatalf("IMP-13 not flagged: %+v", fs)
				}
				imp13Strength = min(imp13Strength, fs[0].Score)
			case maxStrength(fs) >= 0.3:
				others++
			}
			if len(fs) > 0 && d.Importer.ID != "IMP-13" && strings.Contains(fs[0].Reason, "hs6 851713: ") {
				hs6Named++
			}
		}
		return
	}
	// Importer and exporter only: no one else shares anything with IMP-13.
	n, fp, _, s := f("entities: {declarant: 0, office: 0, hs6: 0, origin: 0, hs6_origin: 0}")
	t.Logf("history: IMP-13 flagged on all %d of its declarations (strength >= %.2f); %d of %d others flagged", n, s, fp, 1000-n)
	if s < 0.7 || fp > 0 {
		t.Errorf("IMP-13 strength %.2f, others flagged %d", s, fp)
	}
	// All entities: IMP-13's commodity (smartphones) carries some of its risk
	// to other importers of it.
	if _, _, named, _ := f(""); named == 0 {
		t.Error("no other importer of HS 851713 inherited its risk")
	}
}

func TestPlantedBenford(t *testing.T) {
	det, h := quietOnHonest(t, "benford", "", 6, 6000, 3000, 0.01)
	var ds []*declaration.Declaration
	for i := 0; i < 60; i++ {
		d := h.next()
		d.Importer.ID = "IMP-INVENTED"
		d.Items = d.Items[:1]
		d.Items[0].CustomsValue = 900 + float64(h.r.IntN(99)) // every value starts with 9
		ds = append(ds, d)
	}
	n, reasons := planted(det, ds, 0.3)
	if n < 20 || !strings.Contains(reasons[len(reasons)-1], "9 makes 100% of them, against 4.6% expected") {
		t.Errorf("flagged %d of 60: %q", n, reasons)
	}
}

func TestPlantedUnitValue(t *testing.T) {
	det, h := quietOnHonest(t, "unit_value", "", 7, 3000, 500, 0.03)
	var ds []*declaration.Declaration
	for i := 0; i < 20; i++ {
		d := h.next()
		d.Items = d.Items[:1]
		if d.Items[0].Duties == 0 {
			d.Items[0] = h.item(1, 0)
		}
		d.Items[0].CustomsValue *= 0.25
		ds = append(ds, d)
	}
	if n, reasons := planted(det, ds, 0.3); n < 18 {
		t.Errorf("flagged %d of 20 undervalued by 75%%: %q", n, reasons)
	}
}
