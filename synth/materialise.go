package synth

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/riskmon/riskmon/declaration"
)

var ftaOrigins = []string{"US", "MX", "SV", "HN", "NI", "DO", "PA", "CL"}

type itemTruth struct {
	revenue float64
	offence string
}

// materialise turns a planned event into a declaration and its truth.
func (g *gen) materialise(seq int, ev event) Record {
	imp := ev.imp
	d := &declaration.Declaration{
		ID:          fmt.Sprintf("%s%07d", g.opts.IDPrefix, seq),
		Type:        "import",
		LodgedAt:    g.start.Add(ev.at).Truncate(time.Second),
		DeclarantID: fmt.Sprintf("DEC-%03d", imp.declarant),
		Importer:    declaration.Importer{ID: g.idString("IMP", imp.id), AEO: imp.aeo},
		Procedure:   "4000",
		Currency:    imp.currency(),
	}
	d.Importer.Name = "Importadora " + d.Importer.ID[4:]
	var truth itemTruth
	fraud := ev.kind == 0 && imp.modus != honest && g.r.Float64() < imp.fraudRate
	switch {
	case ev.kind == 1:
		g.splitParcel(d, imp, int(ev.good), &truth)
	case ev.kind == 2:
		g.missingTrader(d, imp, ev, &truth)
	case imp.courier:
		g.courierParcel(d, imp)
	default:
		g.regular(d, imp, fraud, &truth)
	}
	if d.Currency == "EUR" {
		for i := range d.Items {
			d.Items[i].CustomsValue = round2(d.Items[i].CustomsValue * 0.92)
			d.Items[i].Duties = round2(d.Items[i].Duties * 0.92)
		}
		truth.revenue *= 0.92
	}
	// An honest mistake, found when the goods are inspected but invisible in
	// the declaration: the noise floor of any targeting.
	if truth.offence == "" && g.r.Float64() < 0.005 {
		truth = itemTruth{offence: Error, revenue: round2(d.TotalValue() * g.uniform(0.01, 0.05))}
	}
	delay := time.Duration(g.uniform(1, 21) * 24 * float64(time.Hour)).Truncate(time.Minute)
	out := &declaration.Outcome{DeclarationID: d.ID, ImporterID: d.Importer.ID, InspectedAt: d.LodgedAt.Add(delay)}
	if truth.offence != "" {
		out.Hit, out.Offence, out.Revenue = true, truth.offence, round2(truth.revenue)
	}
	return Record{Decl: d, Truth: out, Inspected: g.r.Float64() < g.opts.InspectRate}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// item builds an honest goods item of commodity c at the trader's price level.
func (g *gen) item(line, ci int, origin string, priceLevel float64) declaration.Item {
	c := &catalog[ci]
	it := declaration.Item{Line: line, HSCode: c.hs, Description: c.desc, Origin: origin, QuantityUnit: c.unit}
	var q float64
	if c.kgUnit >= 10 && c.unit != "KGM" {
		q = math.Max(1, math.Round(g.lognormal(c.mass/c.kgUnit, 0.8)))
		it.GrossMassKg = q * c.kgUnit * g.uniform(0.95, 1.1)
	} else {
		it.GrossMassKg = math.Max(0.2, g.lognormal(c.mass, 0.9))
		q = it.GrossMassKg * c.netRatio / c.kgUnit * g.uniform(0.95, 1.05)
	}
	it.GrossMassKg = math.Round(it.GrossMassKg*10) / 10
	if it.GrossMassKg <= 0 {
		it.GrossMassKg = 0.1
	}
	switch c.unit {
	case "KGM":
		q = it.GrossMassKg * c.netRatio
	case "LTR", "MTK":
		q = math.Round(q*10) / 10
	default:
		q = math.Max(1, math.Round(q))
	}
	it.Quantity = math.Round(q*1000) / 1000
	if slices.Contains(ftaOrigins, origin) && g.r.Float64() < 0.7 {
		it.Preference = "FTA-CAFTA"
	}
	if g.r.Float64() < 0.85 {
		it.NetMassKg, it.HasNetMass = math.Round(it.GrossMassKg*c.netRatio*g.uniform(0.97, 1.0)*10)/10, true
	}
	uv := c.perKg * math.Exp(priceLevel+c.sigma*g.r.NormFloat64())
	it.CustomsValue = round2(it.GrossMassKg * uv)
	return it
}

// dutyRate is the ad valorem rate an honest declaration of item it, of
// commodity c, pays: none under a free-trade preference, plus the
// anti-dumping duty on goods of Chinese origin under trade defence.
func dutyRate(c *commodity, it *declaration.Item) float64 {
	if it.Preference != "" {
		return 0
	}
	r := c.duty
	if it.Origin == "CN" {
		r += c.tradeDefence
	}
	return r
}

func (g *gen) setDuties(d *declaration.Declaration, it *declaration.Item, rate, specific float64) {
	if d.TotalValue() < DeMinimis && it.CustomsValue < DeMinimis {
		rate, specific = 0, 0
	}
	if g.r.Float64() < 0.9 {
		it.Duties, it.HasDuties = round2(it.CustomsValue*rate+it.Quantity*specific), true
	}
}

// header fills the parties, the route and the office; exporter is an id
// number (see gen.idString).
func (g *gen) header(d *declaration.Declaration, imp *importer, exporter int, country, dispatch, mode string) {
	d.Exporter = declaration.Exporter{ID: g.idString("EXP", exporter), Country: country}
	d.DispatchCountry = dispatch
	d.TransportMode = mode
	off := int(imp.homeOffice)
	if !slices.Contains(offices[off].modes, mode) || g.r.Float64() < 0.15 {
		var ok []int
		for i, o := range offices {
			if slices.Contains(o.modes, mode) {
				ok = append(ok, i)
			}
		}
		off = ok[g.r.IntN(len(ok))]
	}
	d.Office = offices[off].code
}

func (g *gen) itemCount() int {
	switch u := g.r.Float64(); {
	case u < 0.55:
		return 1
	case u < 0.85:
		return 2 + g.r.IntN(2)
	default:
		return 4 + g.r.IntN(5)
	}
}

func (g *gen) regular(d *declaration.Declaration, imp *importer, fraud bool, truth *itemTruth) {
	si := 0
	if imp.nsup > 1 && !(fraud && g.r.Float64() < 0.85) {
		si = g.r.IntN(int(imp.nsup))
	}
	s := &imp.suppliers[si]
	c0 := &catalog[s.goods[0]]
	g.header(d, imp, s.exporter, countries[s.country], countries[s.dispatch], c0.modes[g.r.IntN(len(c0.modes))])
	n := g.itemCount()
	for line := 1; line <= n; line++ {
		ci := int(s.goods[g.r.IntN(int(s.ngoods))])
		origin := countries[s.origin]
		if g.r.Float64() < 0.01 { // a legitimately new commodity
			ci = g.popularGood()
			origin = catalog[ci].origins[g.pickWeighted(catalog[ci].oweights)]
		}
		d.Items = append(d.Items, g.item(line, ci, origin, imp.priceLevel))
	}
	for i := range d.Items {
		it := &d.Items[i]
		ci := catalogIndex(it.HSCode)
		c := &catalog[ci]
		rate := dutyRate(c, it)
		if fraud {
			g.commit(d, imp, it, ci, truth)
			continue
		}
		g.setDuties(d, it, rate, c.specific)
	}
}

// commit applies the trader's modus to one item (when it applies to it) and
// records the duties evaded.
func (g *gen) commit(d *declaration.Declaration, imp *importer, it *declaration.Item, ci int, truth *itemTruth) {
	c := &catalog[ci]
	rate := dutyRate(c, it)
	switch {
	case imp.modus == underval && rate >= 0.05:
		f := g.uniform(0.2, 0.55)
		trueValue := it.CustomsValue
		it.CustomsValue = round2(trueValue * f)
		truth.revenue += (trueValue - it.CustomsValue) * rate
		truth.offence = Undervaluation
	case imp.modus == misclass && c.lowDuty >= 0:
		low := &catalog[c.lowDuty]
		it.HSCode, it.Description = low.hs, low.desc
		if low.unit != it.QuantityUnit {
			it.QuantityUnit, it.Quantity = low.unit, math.Round(it.GrossMassKg*low.netRatio*1000)/1000
		}
		truth.revenue += it.CustomsValue*(rate-dutyRate(low, it)) + it.Quantity*c.specific
		truth.offence = Misclassification
		g.setDuties(d, it, dutyRate(low, it), low.specific)
		return
	case imp.modus == transship && c.tradeDefence > 0 && it.Origin == "CN":
		fake := reroute[g.r.IntN(len(reroute))]
		it.Origin = fake
		if g.r.Float64() < 0.6 {
			d.DispatchCountry = fake
		}
		if g.r.Float64() < 0.5 {
			d.Exporter.Country = fake
		}
		truth.revenue += it.CustomsValue * c.tradeDefence
		truth.offence = Origin
		g.setDuties(d, it, c.duty, 0)
		return
	case imp.modus == understate && c.excise:
		f := g.uniform(0.35, 0.65)
		trueQ, trueV := it.Quantity, it.CustomsValue
		it.Quantity = math.Max(1, math.Round(trueQ*f))
		it.CustomsValue = round2(trueV * f * g.uniform(0.9, 1.1))
		truth.revenue += (trueV-it.CustomsValue)*rate + (trueQ-it.Quantity)*c.specific
		truth.offence = Quantity
	}
	g.setDuties(d, it, rate, c.specific)
}

func catalogIndex(hs string) int {
	for i := range catalog {
		if catalog[i].hs == hs {
			return i
		}
	}
	panic("synth: unknown HS code " + hs)
}

// splitParcel is one of a burst of declarations, each just under the de
// minimis, that together carry one consignment.
func (g *gen) splitParcel(d *declaration.Declaration, imp *importer, ci int, truth *itemTruth) {
	c := &catalog[ci]
	origin := c.origins[0]
	g.header(d, imp, imp.suppliers[0].exporter, origin, origin, []string{"air", "post"}[g.r.IntN(2)])
	it := g.item(1, ci, origin, 0)
	it.Preference = ""
	scaleTo(&it, c, DeMinimis*g.uniform(0.9, 0.995))
	d.Items = []declaration.Item{it}
	g.setDuties(d, &d.Items[0], 0, 0)
	truth.revenue = it.CustomsValue * dutyRate(c, &it)
	truth.offence = Splitting
}

// scaleTo resizes an item to a target customs value, keeping its unit value,
// mass per unit and net/gross ratio.
func scaleTo(it *declaration.Item, c *commodity, target float64) {
	scale := target / it.CustomsValue
	it.CustomsValue = round2(target)
	it.GrossMassKg = math.Max(0.1, math.Round(it.GrossMassKg*scale*10)/10)
	if it.HasNetMass {
		it.NetMassKg = math.Min(it.GrossMassKg, math.Round(it.NetMassKg*scale*10)/10)
	}
	if it.QuantityUnit != "KGM" {
		it.Quantity = math.Max(1, math.Round(it.Quantity*scale))
	} else {
		it.Quantity = math.Round(it.GrossMassKg*c.netRatio*1000) / 1000
	}
}

// courierGoods are what express couriers carry.
var courierGoods = goods("851713", "330499", "910211", "611020", "420221", "640399", "950300", "850440")

// courierParcel is a legitimate low-value e-commerce consignment.
func (g *gen) courierParcel(d *declaration.Declaration, imp *importer) {
	ci := courierGoods[g.r.IntN(len(courierGoods))]
	c := &catalog[ci]
	origin := c.origins[g.pickWeighted(c.oweights)]
	g.header(d, imp, imp.suppliers[0].exporter, "US", "US", []string{"air", "post"}[g.r.IntN(2)])
	it := g.item(1, ci, origin, imp.priceLevel)
	scaleTo(&it, c, math.Min(g.lognormal(180, 0.9), 3000))
	d.Items = []declaration.Item{it}
	g.setDuties(d, &d.Items[0], dutyRate(c, &it), c.specific)
}

// missingTrader is one declaration of a new importer's short burst of
// undervalued high-duty goods.
func (g *gen) missingTrader(d *declaration.Declaration, imp *importer, ev event, truth *itemTruth) {
	c := &catalog[ev.good]
	origin, dispatch := c.origins[0], c.origins[0]
	if g.r.Float64() < 0.5 {
		dispatch = hubs[g.r.IntN(len(hubs))]
	}
	g.header(d, imp, imp.suppliers[0].exporter, origin, dispatch, c.modes[0])
	n := 1 + g.r.IntN(3)
	for line := 1; line <= n; line++ {
		it := g.item(line, int(ev.good), origin, 0)
		it.Preference = "" // a short-lived trader claims no preference it would have to prove
		rate := dutyRate(c, &it)
		trueValue := it.CustomsValue
		it.CustomsValue = round2(trueValue * ev.arg)
		truth.revenue += (trueValue - it.CustomsValue) * rate
		d.Items = append(d.Items, it)
		g.setDuties(d, &d.Items[len(d.Items)-1], rate, c.specific)
	}
	truth.offence = MissingTrader
}
