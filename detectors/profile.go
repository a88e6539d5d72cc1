package detectors

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// profile runs analyst-written risk profiles (targeting rules). A profile
// matches a declaration when its header criteria hold and at least one item
// meets its item criteria (and not its except block); it then adds its points,
// forces a channel, or both. Profiles are stateless and never fire outside
// their validity window, judged on the declaration's lodged_at.

func init() {
	registerKind("profile", 50, func() *ProfileParams { return &ProfileParams{} }, newProfile)
}

// ProfileParams configures a profile detector: a list of profiles.
type ProfileParams struct {
	Profiles []Profile `yaml:"profiles"`
}

// Profile is one targeting rule.
type Profile struct {
	ID          string `yaml:"id"`
	Reason      string `yaml:"reason"`      // why this is a risk, for the officer
	Instruction string `yaml:"instruction"` // what the officer should check
	// ValidFrom (inclusive) and ValidTo (inclusive when a date, exclusive
	// when a timestamp) bound when the profile applies; empty means open.
	ValidFrom time.Time `yaml:"valid_from"`
	ValidTo   time.Time `yaml:"valid_to"`
	Match     Criteria  `yaml:"match"`
	Except    *Criteria `yaml:"except"`
	// Points the profile adds at full strength; default: the detector weight.
	Points *float64 `yaml:"points"`
	// Channel, when set, forces at least this channel.
	Channel string `yaml:"channel"`
}

// Criteria are ANDed; the values of one list criterion are ORed. A value
// "list:NAME" stands for every member of the named list.
type Criteria struct {
	HSPrefix        []string `yaml:"hs_prefix"`
	Origin          []string `yaml:"origin"`
	Preference      []string `yaml:"preference"`
	DispatchCountry []string `yaml:"dispatch_country"`
	ExporterCountry []string `yaml:"exporter_country"`
	Exporter        []string `yaml:"exporter"`
	Importer        []string `yaml:"importer"`
	Declarant       []string `yaml:"declarant"`
	Office          []string `yaml:"office"`
	Procedure       []string `yaml:"procedure"`
	TransportMode   []string `yaml:"transport_mode"`
	Type            []string `yaml:"type"`
	Currency        []string `yaml:"currency"` // of the declared values (ISO 4217)
	AEO             *bool    `yaml:"aeo"`
	// OriginNotDispatch: the item's origin differs from the dispatch
	// country (set to false to require that they agree).
	OriginNotDispatch *bool `yaml:"origin_not_dispatch"`
	// OriginNotExporterCountry: the item's origin differs from the
	// exporter's country.
	OriginNotExporterCountry *bool `yaml:"origin_not_exporter_country"`
	// Numeric ranges, per item except declaration_value.
	CustomsValue     *Range `yaml:"customs_value"`
	DeclarationValue *Range `yaml:"declaration_value"`
	UnitValueKg      *Range `yaml:"unit_value_kg"`
	UnitValueUnit    *Range `yaml:"unit_value_unit"`
	GrossMassKg      *Range `yaml:"gross_mass_kg"`
	NetMassKg        *Range `yaml:"net_mass_kg"`
	DutyRatio        *Range `yaml:"duty_ratio"`
}

// Range is an inclusive numeric interval; either end may be open.
type Range struct {
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

func (r *Range) holds(v float64) bool {
	return (r.Min == nil || v >= *r.Min) && (r.Max == nil || v <= *r.Max)
}

// Validate checks every profile and that every list it names exists.
func (p *ProfileParams) Validate(pc *config.ParamsContext) {
	if len(p.Profiles) == 0 {
		pc.Problemf("profiles", "must list at least one profile")
	}
	ids := map[string]int{}
	for i := range p.Profiles {
		pr := &p.Profiles[i]
		k := fmt.Sprintf("profiles[%d]", i)
		if pr.ID == "" {
			pc.Problemf(k+".id", "is required")
		} else if j, dup := ids[pr.ID]; dup {
			pc.Problemf(k+".id", "%q is already the id of profiles[%d]", pr.ID, j)
		} else {
			ids[pr.ID] = i
		}
		if strings.TrimSpace(pr.Reason) == "" {
			pc.Problemf(k+".reason", "is required: the officer must be told why")
		}
		if !pr.ValidFrom.IsZero() && !pr.ValidTo.IsZero() && !pr.ValidTo.After(pr.ValidFrom) {
			pc.Problemf(k+".valid_to", "must be after valid_from")
		}
		if pr.Points != nil && (*pr.Points < 0 || *pr.Points > 100) {
			pc.Problemf(k+".points", "must be in [0, 100], got %g", *pr.Points)
		}
		if pr.Channel != "" {
			if _, ok := declaration.ParseChannel(pr.Channel); !ok {
				pc.Problemf(k+".channel", "must be green, yellow or red, got %q", pr.Channel)
			}
		}
		pr.Match.validate(pc, k+".match")
		if pr.Except != nil {
			pr.Except.validate(pc, k+".except")
		}
	}
}

func (c *Criteria) lists() map[string][]string {
	return map[string][]string{
		"hs_prefix": c.HSPrefix, "origin": c.Origin, "preference": c.Preference,
		"dispatch_country": c.DispatchCountry, "exporter_country": c.ExporterCountry,
		"exporter": c.Exporter, "importer": c.Importer, "declarant": c.Declarant,
		"office": c.Office, "procedure": c.Procedure, "transport_mode": c.TransportMode, "type": c.Type,
		"currency": c.Currency,
	}
}

func (c *Criteria) ranges() map[string]*Range {
	return map[string]*Range{
		"customs_value": c.CustomsValue, "declaration_value": c.DeclarationValue,
		"unit_value_kg": c.UnitValueKg, "unit_value_unit": c.UnitValueUnit,
		"gross_mass_kg": c.GrossMassKg, "net_mass_kg": c.NetMassKg, "duty_ratio": c.DutyRatio,
	}
}

func (c *Criteria) validate(pc *config.ParamsContext, path string) {
	for key, vals := range c.lists() {
		for j, v := range vals {
			if name, ok := strings.CutPrefix(v, "list:"); ok {
				if _, ok := pc.List(name); !ok {
					pc.Problemf(fmt.Sprintf("%s.%s[%d]", path, key, j), "names list %q, which is not defined under lists", name)
				}
			} else if key == "hs_prefix" && (len(v) < 2 || len(v) > 10 || strings.Trim(v, "0123456789") != "") {
				pc.Problemf(fmt.Sprintf("%s.%s[%d]", path, key, j), "must be 2-10 digits, got %q", v)
			} else if key == "currency" && (len(v) != 3 || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "") {
				// a declaration's currency is always 3 capital letters: anything else would never match
				pc.Problemf(fmt.Sprintf("%s.%s[%d]", path, key, j), "must be a 3-letter ISO 4217 code in capitals, got %q", v)
			}
		}
	}
	for key, r := range c.ranges() {
		if r != nil && r.Min != nil && r.Max != nil && *r.Min > *r.Max {
			pc.Problemf(path+"."+key, "min %g is above max %g", *r.Min, *r.Max)
		}
		if r != nil && r.Min == nil && r.Max == nil {
			pc.Problemf(path+"."+key, "needs min, max or both")
		}
	}
}

// matcher is a compiled Criteria: sets instead of lists.
type matcher struct {
	hs                                                           []string
	origin, preference, dispatch, expCountry, exporter, importer set
	declarant, office, procedure, mode, typ, currency            set
	aeo, notDispatch, notExporter                                *bool
	value, declValue, uvKg, uvUnit, gross, net, duty             *Range
}

type set map[string]struct{}

func (s set) has(v string) bool {
	if s == nil {
		return true
	}
	_, ok := s[v]
	return ok
}

func compileCriteria(c *Criteria, lists map[string][]string) *matcher {
	mk := func(vals []string) set {
		if len(vals) == 0 {
			return nil
		}
		s := set{}
		for _, v := range vals {
			if name, ok := strings.CutPrefix(v, "list:"); ok {
				for _, m := range lists[name] {
					s[m] = struct{}{}
				}
			} else {
				s[v] = struct{}{}
			}
		}
		return s
	}
	var hs []string
	for v := range mk(c.HSPrefix) {
		hs = append(hs, v)
	}
	return &matcher{hs: hs, origin: mk(c.Origin), preference: mk(c.Preference), dispatch: mk(c.DispatchCountry),
		expCountry: mk(c.ExporterCountry), exporter: mk(c.Exporter), importer: mk(c.Importer),
		declarant: mk(c.Declarant), office: mk(c.Office), procedure: mk(c.Procedure), mode: mk(c.TransportMode),
		typ: mk(c.Type), currency: mk(c.Currency), aeo: c.AEO, notDispatch: c.OriginNotDispatch, notExporter: c.OriginNotExporterCountry, value: c.CustomsValue, declValue: c.DeclarationValue, uvKg: c.UnitValueKg,
		uvUnit: c.UnitValueUnit, gross: c.GrossMassKg, net: c.NetMassKg, duty: c.DutyRatio}
}

func (m *matcher) header(d *declaration.Declaration) bool {
	return m.dispatch.has(d.DispatchCountry) && m.expCountry.has(d.Exporter.Country) &&
		m.exporter.has(d.Exporter.ID) && m.importer.has(d.Importer.ID) && m.declarant.has(d.DeclarantID) &&
		m.office.has(d.Office) && m.procedure.has(d.Procedure) && m.mode.has(d.TransportMode) &&
		m.typ.has(d.Type) && m.currency.has(d.Currency) && (m.aeo == nil || *m.aeo == d.Importer.AEO) &&
		(m.declValue == nil || m.declValue.holds(d.TotalValue()))
}

func (m *matcher) item(d *declaration.Declaration, it *declaration.Item) bool {
	if m.notDispatch != nil && *m.notDispatch != (d.DispatchCountry != "" && d.DispatchCountry != it.Origin) {
		return false
	}
	if m.notExporter != nil && *m.notExporter != (d.Exporter.Country != "" && d.Exporter.Country != it.Origin) {
		return false
	}
	if m.hs != nil {
		ok := false
		for _, p := range m.hs {
			if strings.HasPrefix(it.HSCode, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if !m.origin.has(it.Origin) || !m.preference.has(it.Preference) {
		return false
	}
	if m.value != nil && !m.value.holds(it.CustomsValue) {
		return false
	}
	if m.uvKg != nil && !m.uvKg.holds(it.CustomsValue/it.GrossMassKg) {
		return false
	}
	if m.uvUnit != nil && (it.Quantity <= 0 || !m.uvUnit.holds(it.CustomsValue/it.Quantity)) {
		return false
	}
	if m.gross != nil && !m.gross.holds(it.GrossMassKg) {
		return false
	}
	if m.net != nil && (!it.HasNetMass || !m.net.holds(it.NetMassKg)) {
		return false
	}
	if m.duty != nil && (!it.HasDuties || it.CustomsValue <= 0 || !m.duty.holds(it.Duties/it.CustomsValue)) {
		return false
	}
	return true
}

func (m *matcher) all(d *declaration.Declaration, it *declaration.Item) bool {
	return m.header(d) && m.item(d, it)
}

type compiledProfile struct {
	Profile
	from, to time.Time
	match    *matcher
	except   *matcher
	points   float64
	force    declaration.Channel
	hasForce bool
}

type profileDetector struct {
	base
	profiles []compiledProfile
}

func newProfile(b base, p ProfileParams, env *Env) (Detector, error) {
	pd := &profileDetector{base: b}
	for _, pr := range p.Profiles {
		cp := compiledProfile{Profile: pr, from: pr.ValidFrom, to: pr.ValidTo, points: b.weight,
			match: compileCriteria(&pr.Match, env.Config.Lists)}
		if pr.Except != nil {
			cp.except = compileCriteria(pr.Except, env.Config.Lists)
		}
		if pr.Points != nil {
			cp.points = *pr.Points
		}
		if pr.Channel != "" {
			cp.force, _ = declaration.ParseChannel(pr.Channel)
			cp.hasForce = true
		}
		// A bare date as valid_to means "through that day".
		if !cp.to.IsZero() && cp.to.Equal(cp.to.Truncate(24*time.Hour)) {
			cp.to = cp.to.Add(24 * time.Hour)
		}
		pd.profiles = append(pd.profiles, cp)
	}
	return pd, nil
}

// Uncalibrated: a profile's points are the analyst's; they are not rescaled.
func (p *profileDetector) Uncalibrated() {}

func (p *profileDetector) Score(d *declaration.Declaration, out []Finding) []Finding {
	for i := range p.profiles {
		cp := &p.profiles[i]
		if (!cp.from.IsZero() && d.LodgedAt.Before(cp.from)) || (!cp.to.IsZero() && !d.LodgedAt.Before(cp.to)) {
			continue
		}
		if !cp.match.header(d) {
			continue
		}
		var lines []string
		first := 0
		for j := range d.Items {
			it := &d.Items[j]
			if !cp.match.item(d, it) || (cp.except != nil && cp.except.all(d, it)) {
				continue
			}
			if first == 0 {
				first = it.Line
			}
			lines = append(lines, strconv.Itoa(it.Line))
		}
		if lines == nil {
			continue
		}
		f := Finding{Weight: cp.points, Force: cp.force, HasForce: cp.hasForce}
		f.Detector, f.Rule, f.ItemLine, f.Score = p.name, cp.ID, first, 1
		f.Reason = "profile " + cp.ID + ": " + cp.Reason
		if len(lines) > 1 {
			f.Reason += " (items " + strings.Join(lines, ", ") + ")"
		}
		if cp.Instruction != "" {
			f.Reason += ". Instruction: " + cp.Instruction
		}
		out = append(out, f)
	}
	return out
}

func (p *profileDetector) Learn(*declaration.Declaration, *declaration.Assessment) {}
