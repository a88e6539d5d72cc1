// Package synth writes a synthetic customs declaration stream with planted
// fraud patterns and legitimate look-alikes, the inspection outcomes an
// administration would know (a random inspected sample) and the ground truth
// for every declaration. Same seed, same records.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/riskmon/riskmon/declaration"
)

// Options control the generated stream.
type Options struct {
	Count int
	Seed  uint64
	// InspectRate is the share of declarations randomly inspected, whose
	// outcomes are emitted (default 0.03).
	InspectRate float64
	// IDPrefix starts every declaration id (default "GT26IM").
	IDPrefix string
}

// Record is one generated declaration with its ground truth; Inspected tells
// whether the administration's random sample inspected it (its outcome is
// then known to the monitor).
type Record struct {
	Decl      *declaration.Declaration
	Truth     *declaration.Outcome
	Inspected bool
}

// Offences planted by the generator, as written in truth records.
const (
	Undervaluation    = "undervaluation"
	Misclassification = "misclassification"
	Origin            = "origin"
	Quantity          = "quantity"
	Splitting         = "splitting"
	MissingTrader     = "missing_trader"
	Error             = "error" // an honest mistake found by inspection
)

// DeMinimis is the value below which a declaration pays no duties.
const DeMinimis = 1000.0

type modus int

const (
	honest modus = iota
	underval
	misclass
	transship
	understate
)

type supplier struct {
	exporter, country, dispatch string
	origin                      string
	goods                       []int // catalog indices
}

type importer struct {
	id, name   string
	aeo        bool
	declarant  string
	weight     float64
	priceLevel float64 // ln factor on every price: premium (>0) or discount (<0) traders
	suppliers  []supplier
	modus      modus
	fraudRate  float64
	start      time.Duration // offset from the stream start at which it appears
	courier    bool          // an express courier: many small parcels
	homeOffice int
	currency   string
}

type event struct {
	at   time.Duration
	imp  *importer
	kind int // 0 regular, 1 splitting burst member, 2 missing-trader declaration
	arg  float64
	good int
}

type gen struct {
	r         *rand.Rand
	opts      Options
	start     time.Time
	span      time.Duration
	importers []*importer
	ids       []int // shuffled id space for importers and exporters
	nextID    int
}

// Generate produces opts.Count records in lodgement order and hands each to
// emit.
func Generate(opts Options, emit func(Record) error) error {
	if opts.InspectRate == 0 {
		opts.InspectRate = 0.03
	}
	if opts.IDPrefix == "" {
		opts.IDPrefix = "GT26IM"
	}
	g := &gen{r: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)), opts: opts,
		start: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	days := max(30, opts.Count/300)
	g.span = time.Duration(days) * 24 * time.Hour
	g.ids = g.r.Perm(90000)
	g.makeImporters()
	events := g.plan()
	for i, ev := range events {
		rec := g.materialise(i+1, ev)
		if err := emit(rec); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) newID(prefix string) string {
	id := fmt.Sprintf("%s-%05d", prefix, 10000+g.ids[g.nextID%len(g.ids)])
	g.nextID++
	return id
}

func (g *gen) pickWeighted(w []float64) int {
	var s float64
	for _, x := range w {
		s += x
	}
	u := g.r.Float64() * s
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

func (g *gen) lognormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*g.r.NormFloat64())
}

func (g *gen) uniform(a, b float64) float64 { return a + (b-a)*g.r.Float64() }

func (g *gen) makeSupplier(imp *importer, goods []int) supplier {
	c := &catalog[goods[0]]
	origin := c.origins[g.pickWeighted(c.oweights)]
	s := supplier{exporter: g.newID("EXP"), origin: origin, country: origin, dispatch: origin, goods: goods}
	if g.r.Float64() < 0.12 { // legitimate hub routing
		s.dispatch = hubs[g.r.IntN(len(hubs))]
		if g.r.Float64() < 0.5 {
			s.country = s.dispatch
		}
	}
	if s.dispatch == "GT" {
		s.dispatch = ""
	}
	return s
}

func (g *gen) popularGood() int {
	w := make([]float64, len(catalog))
	for i, c := range catalog {
		w[i] = c.popular
	}
	return g.pickWeighted(w)
}

func (g *gen) makeImporter(weight float64) *importer {
	imp := &importer{id: g.newID("IMP"), weight: weight, declarant: fmt.Sprintf("DEC-%03d", 1+int(math.Min(199, g.lognormal(12, 1.2)))),
		homeOffice: g.r.IntN(len(offices)), currency: "USD"}
	imp.name = "Importadora " + imp.id[4:]
	imp.priceLevel = 0.12 * g.r.NormFloat64()
	switch u := g.r.Float64(); {
	case u < 0.04:
		imp.priceLevel = g.uniform(0.5, 1.0) // premium goods: legitimately expensive
	case u < 0.08:
		imp.priceLevel = -g.uniform(0.3, 0.6) // discounters, seconds, end-of-line stock
	}
	if g.r.Float64() < 0.04 {
		imp.currency = "EUR"
	}
	ns := 1 + g.r.IntN(3)
	for i := 0; i < ns; i++ {
		s := g.makeSupplier(imp, []int{g.popularGood()})
		// A supplier sells goods its country produces.
		for j := g.r.IntN(3); j > 0; j-- {
			if c := g.popularGood(); slices.Contains(catalog[c].origins, s.origin) {
				s.goods = append(s.goods, c)
			}
		}
		imp.suppliers = append(imp.suppliers, s)
	}
	return imp
}

// makeImporters builds the trader population: Zipf-like volumes, some AEOs,
// some who appear mid-stream, a few couriers and some fraudsters.
func (g *gen) makeImporters() {
	n := max(60, g.opts.Count/25)
	for rank := 1; rank <= n; rank++ {
		imp := g.makeImporter(1 / math.Pow(float64(rank), 1.05))
		if g.r.Float64() < 0.1 { // legitimately new traders, appearing later
			imp.start = time.Duration(g.r.Float64() * 0.9 * float64(g.span))
		}
		imp.aeo = rank <= n/20 && g.r.Float64() < 0.5 || g.r.Float64() < 0.03
		g.importers = append(g.importers, imp)
	}
	// Express couriers: many small parcels, legitimately under the de minimis.
	for i := 0; i < 3; i++ {
		imp := g.importers[5+i*7]
		imp.courier = true
	}
	// Fraudsters: not among the largest (who are audited) and not AEOs.
	for i, imp := range g.importers[n/50:] {
		p := 0.08
		if i < n/4 {
			p = 0.25 // medium-sized traders carry most of the fraud by value
		}
		if imp.aeo || imp.courier || g.r.Float64() >= p {
			continue
		}
		imp.modus = modus(1 + g.pickWeighted([]float64{4, 2.5, 1.5, 2}))
		imp.fraudRate = g.uniform(0.4, 0.9)
		g.equipFraudster(imp)
	}
}

// equipFraudster makes sure the trader deals in goods its modus works on.
func (g *gen) equipFraudster(imp *importer) {
	var pool []int
	for i, c := range catalog {
		switch imp.modus {
		case underval:
			if c.duty >= 0.1 {
				pool = append(pool, i)
			}
		case misclass:
			if c.lowDuty >= 0 {
				pool = append(pool, i)
			}
		case transship:
			if c.tradeDefence > 0 {
				pool = append(pool, i)
			}
		case understate:
			if c.excise {
				pool = append(pool, i)
			}
		}
	}
	good := pool[g.r.IntN(len(pool))]
	s := g.makeSupplier(imp, []int{good})
	if imp.modus == transship {
		s.origin, s.country, s.dispatch = "CN", "CN", "CN"
	}
	imp.suppliers = append([]supplier{s}, imp.suppliers...)
}

func (g *gen) plan() []event {
	n := g.opts.Count
	var events []event
	// Consignments split into bursts of small declarations below the de
	// minimis, by small traders, on small high-value goods.
	smallGoods := goods("950300", "330499", "910211", "611020", "420221", "640399")
	for len(events) < n/120 {
		imp := g.importers[len(g.importers)/4+g.r.IntN(len(g.importers)*3/4)]
		at := time.Duration(g.r.Float64() * float64(g.span))
		good := smallGoods[g.r.IntN(len(smallGoods))]
		k := 3 + g.r.IntN(6)
		for j := 0; j < k; j++ {
			events = append(events, event{at: at + time.Duration(g.r.Float64()*6*float64(time.Hour)), imp: imp, kind: 1, good: good})
		}
	}
	// Missing traders: new importers with a burst of high-duty goods who
	// then disappear.
	highDuty := goods("240220", "220830", "870323", "640399", "852872", "871120", "220840")
	for target := len(events) + n/150; len(events) < target; {
		imp := g.makeImporter(0)
		imp.start = time.Duration(g.r.Float64() * 0.95 * float64(g.span))
		good := highDuty[g.r.IntN(len(highDuty))]
		k := 5 + g.r.IntN(11)
		window := time.Duration(g.uniform(3, 20) * 24 * float64(time.Hour))
		for j := 0; j < k; j++ {
			events = append(events, event{at: imp.start + time.Duration(g.r.Float64()*float64(window)), imp: imp, kind: 2,
				good: good, arg: g.uniform(0.3, 0.7)})
		}
	}
	// Regular traffic.
	w := make([]float64, len(g.importers))
	for i, imp := range g.importers {
		w[i] = imp.weight * (1 - float64(imp.start)/float64(g.span))
		if imp.courier {
			w[i] = 0.4 * g.importers[0].weight
		}
	}
	cum := make([]float64, len(w))
	var s float64
	for i, x := range w {
		s += x
		cum[i] = s
	}
	for len(events) < n {
		i, _ := slices.BinarySearch(cum, g.r.Float64()*s)
		imp := g.importers[min(i, len(g.importers)-1)]
		at := imp.start + time.Duration(g.r.Float64()*float64(g.span-imp.start))
		events = append(events, event{at: at, imp: imp})
	}
	events = events[:n]
	slices.SortStableFunc(events, func(a, b event) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	return events
}

// goods returns the catalog indices of the given HS subheadings.
func goods(hs6 ...string) []int {
	var out []int
	for _, h := range hs6 {
		for i, c := range catalog {
			if c.hs[:6] == h {
				out = append(out, i)
			}
		}
	}
	if len(out) != len(hs6) {
		panic("synth: catalog lacks one of " + fmt.Sprint(hs6))
	}
	return out
}
