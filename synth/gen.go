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
	// Importers, when > 0, sizes the trader population so that the stream
	// names about this many distinct importers: the regular population is
	// Importers traders on the same Zipf-like volume curve, the world of the
	// default population (about Count/25 traders: its AEOs, couriers and
	// fraud bands by rank) followed by a long tail of small occasional
	// importers with the tail's fraud propensity, and every one of them lodges
	// at least one declaration. The missing traders (about Count/1500) come on
	// top. Count must leave room for one declaration each. Ids then come from
	// a wider id space (IMP-dddddddd) so that none repeats. 0 keeps the
	// default population, and its bytes.
	Importers int
	// Days, when > 0, is the span of the stream in days (default
	// max(30, Count/300): 300 declarations a day).
	Days int
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

type modus uint8

const (
	honest modus = iota
	underval
	misclass
	transship
	understate
)

// The population is held compactly (about 110 bytes a trader, no pointers
// inside), so that ten million importers fit in about a gigabyte: countries
// and catalog entries are small indices, ids are numbers.

// supplier is one of an importer's exporters.
type supplier struct {
	exporter                  int   // id number, see gen.idString
	origin, country, dispatch uint8 // indices in countries
	ngoods                    uint8
	goods                     [3]uint8 // catalog indices, ngoods of them
}

type importer struct {
	id         int // id number, see gen.idString; the name is derived from it
	weight     float64
	priceLevel float64 // ln factor on every price: premium (>0) or discount (<0) traders
	fraudRate  float64
	start      time.Duration // offset from the stream start at which it appears
	suppliers  [4]supplier   // nsup of them
	nsup       uint8
	declarant  uint8 // DEC-%03d
	homeOffice uint8
	modus      modus
	aeo        bool
	courier    bool // an express courier: many small parcels
	eur        bool // declares in EUR, else USD
}

func (imp *importer) currency() string {
	if imp.eur {
		return "EUR"
	}
	return "USD"
}

type event struct {
	at   time.Duration
	imp  *importer
	arg  float64
	kind uint8 // 0 regular, 1 splitting burst member, 2 missing-trader declaration
	good uint8
}

// countries are the country codes a supplier can name; "" is 0.
var countries, countryIndex = func() ([]string, map[string]uint8) {
	list := []string{""}
	index := map[string]uint8{"": 0}
	add := func(cs ...string) {
		for _, c := range cs {
			if _, ok := index[c]; !ok {
				index[c] = uint8(len(list))
				list = append(list, c)
			}
		}
	}
	for _, c := range catalog {
		add(c.origins...)
	}
	add(hubs...)
	add(reroute...)
	add("CN", "US")
	return list, index
}()

func country(c string) uint8 {
	i, ok := countryIndex[c]
	if !ok {
		panic("synth: country " + c + " missing from the countries table")
	}
	return i
}

type gen struct {
	r         *rand.Rand
	opts      Options
	start     time.Time
	span      time.Duration
	importers []*importer
	ids       []int // shuffled id space for importers and exporters
	nextID    int
	// With Options.Importers, ids are idMul·k + idAdd mod idSpace (a
	// permutation of [0, idSpace), idMul coprime with it), idWidth digits.
	idSpace, idMul, idAdd uint64
	idWidth               int
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
	if opts.Days > 0 {
		days = opts.Days
	}
	g.span = time.Duration(days) * 24 * time.Hour
	if opts.Importers > 0 {
		g.wideIDs()
	} else {
		g.ids = g.r.Perm(90000)
	}
	g.makeImporters()
	events, err := g.plan()
	if err != nil {
		return err
	}
	for i, ev := range events {
		rec := g.materialise(i+1, ev)
		if err := emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// newID draws the next importer or exporter id number.
func (g *gen) newID() int {
	k := g.nextID
	g.nextID++
	if g.idSpace > 0 {
		return int((g.idMul*uint64(k) + g.idAdd) % g.idSpace)
	}
	return 10000 + g.ids[k%len(g.ids)]
}

// idString formats an id number drawn by newID: IMP-12345 (the default id
// space of 90,000 ids, reused beyond) or, with Options.Importers, IMP- and
// idWidth digits.
func (g *gen) idString(prefix string, id int) string {
	if g.idSpace > 0 {
		return fmt.Sprintf("%s-%0*d", prefix, g.idWidth, id)
	}
	return fmt.Sprintf("%s-%05d", prefix, id)
}

// wideIDs sets up an id space of at least 8 digits and room for ten ids per
// importer (each has up to four exporters) and for the missing traders, in
// which ids never repeat: an affine permutation of the counter, so no table
// of 10^8 entries is needed.
func (g *gen) wideIDs() {
	need := 10 * uint64(g.opts.Importers+g.opts.Count/100+100)
	g.idSpace, g.idWidth = 1e8, 8
	for g.idSpace < need {
		g.idSpace *= 10
		g.idWidth++
	}
	for {
		// Coprime with a power of ten: odd and not a multiple of 5.
		g.idMul = g.idSpace/3 + g.r.Uint64N(g.idSpace/2)
		if g.idMul%2 != 0 && g.idMul%5 != 0 {
			break
		}
	}
	g.idAdd = g.r.Uint64N(g.idSpace)
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

func (g *gen) makeSupplier(imp *importer, good int) supplier {
	c := &catalog[good]
	origin := country(c.origins[g.pickWeighted(c.oweights)])
	s := supplier{exporter: g.newID(), origin: origin, country: origin, dispatch: origin, ngoods: 1, goods: [3]uint8{uint8(good)}}
	if g.r.Float64() < 0.12 { // legitimate hub routing
		s.dispatch = country(hubs[g.r.IntN(len(hubs))])
		if g.r.Float64() < 0.5 {
			s.country = s.dispatch
		}
	}
	if s.dispatch == country("GT") {
		s.dispatch = 0
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
	imp := &importer{id: g.newID(), weight: weight, declarant: uint8(1 + int(math.Min(199, g.lognormal(12, 1.2)))),
		homeOffice: uint8(g.r.IntN(len(offices)))}
	imp.priceLevel = 0.12 * g.r.NormFloat64()
	switch u := g.r.Float64(); {
	case u < 0.04:
		imp.priceLevel = g.uniform(0.5, 1.0) // premium goods: legitimately expensive
	case u < 0.08:
		imp.priceLevel = -g.uniform(0.3, 0.6) // discounters, seconds, end-of-line stock
	}
	if g.r.Float64() < 0.04 {
		imp.eur = true
	}
	ns := 1 + g.r.IntN(3)
	for i := 0; i < ns; i++ {
		s := g.makeSupplier(imp, g.popularGood())
		// A supplier sells goods its country produces.
		for j := g.r.IntN(3); j > 0; j-- {
			if c := g.popularGood(); slices.Contains(catalog[c].origins, countries[s.origin]) {
				s.goods[s.ngoods] = uint8(c)
				s.ngoods++
			}
		}
		imp.suppliers[imp.nsup] = s
		imp.nsup++
	}
	return imp
}

// makeImporters builds the trader population: Zipf-like volumes, some AEOs,
// some who appear mid-stream, a few couriers and some fraudsters. The bands
// by rank (the largest 5 % may be AEOs, fraud is likeliest among the
// medium-sized) are those of the default population, about Count/25 traders;
// with Options.Importers the ranks beyond it are a tail of small traders.
func (g *gen) makeImporters() {
	n := max(60, g.opts.Count/25)
	bands := n
	if g.opts.Importers > 0 {
		n = g.opts.Importers
		bands = min(bands, n)
		g.importers = make([]*importer, 0, n)
	}
	for rank := 1; rank <= n; rank++ {
		imp := g.makeImporter(1 / math.Pow(float64(rank), 1.05))
		if g.r.Float64() < 0.1 { // legitimately new traders, appearing later
			imp.start = time.Duration(g.r.Float64() * 0.9 * float64(g.span))
		}
		imp.aeo = rank <= bands/20 && g.r.Float64() < 0.5 || g.r.Float64() < 0.03
		g.importers = append(g.importers, imp)
	}
	// Express couriers: many small parcels, legitimately under the de minimis.
	for i := 0; i < 3; i++ {
		imp := g.importers[5+i*7]
		imp.courier = true
	}
	// Fraudsters: not among the largest (who are audited) and not AEOs.
	for i, imp := range g.importers[bands/50:] {
		p := 0.08
		if i < bands/4 {
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
	s := g.makeSupplier(imp, good)
	if imp.modus == transship {
		cn := country("CN")
		s.origin, s.country, s.dispatch = cn, cn, cn
	}
	copy(imp.suppliers[1:], imp.suppliers[:imp.nsup])
	imp.suppliers[0] = s
	imp.nsup++
}

func (g *gen) plan() ([]event, error) {
	n := g.opts.Count
	var events []event
	if g.opts.Importers > 0 {
		events = make([]event, 0, n+32) // the bursts may overshoot by a few
	}
	// Consignments split into bursts of small declarations below the de
	// minimis, by small traders, on small high-value goods.
	smallGoods := goods("950300", "330499", "910211", "611020", "420221", "640399")
	for len(events) < n/120 {
		imp := g.importers[len(g.importers)/4+g.r.IntN(len(g.importers)*3/4)]
		at := time.Duration(g.r.Float64() * float64(g.span))
		good := smallGoods[g.r.IntN(len(smallGoods))]
		k := 3 + g.r.IntN(6)
		for j := 0; j < k; j++ {
			events = append(events, event{at: at + time.Duration(g.r.Float64()*6*float64(time.Hour)), imp: imp, kind: 1, good: uint8(good)})
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
				good: uint8(good), arg: g.uniform(0.3, 0.7)})
		}
	}
	// With Options.Importers, every trader of the population lodges at least
	// once, at a time of its presence, whatever its volume.
	if g.opts.Importers > 0 {
		if len(events)+len(g.importers) > n {
			return nil, fmt.Errorf("%d importers need at least %d declarations (one each, and %d in splitting bursts and of missing traders), got %d",
				len(g.importers), len(events)+len(g.importers), len(events), n)
		}
		for _, imp := range g.importers {
			events = append(events, event{at: imp.start + time.Duration(g.r.Float64()*float64(g.span-imp.start)), imp: imp})
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
	return events, nil
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
