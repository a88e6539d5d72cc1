package engine

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
)

// The model's features, in a fixed order: the rule score, every detector's
// strongest raw strength, then for every entity a declaration names its
// smoothed outcome hit rate and how many inspections that rate rests on (and,
// for the parties, how many declarations of theirs came before), then the
// declaration's own figures. Entity rates are target encodings of the
// categories: the trees see "this HS code's hit rate is 0.4 over 30
// inspections", never an arbitrary category number.

// entity kinds whose outcome history is a feature. Item-level kinds use the
// declaration's main item (its highest customs value).
var entityKinds = []string{
	"importer", "declarant", "exporter", "office", "hs6", "hs4", "origin", "dispatch",
	"hs6_origin", "importer_hs6", "procedure", "transport", "preference",
}

// Indexes of entityKinds.
const (
	entImporter = iota
	entDeclarant
	entExporter
	entOffice
	entHS6
	entHS4
	entOrigin
	entDispatch
	entHS6Origin
	entImporterHS6
	entProcedure
	entTransport
	entPreference
	numEntityKinds
)

// seenKinds also count declarations seen, not only outcomes.
var seenKinds = map[string]bool{"importer": true, "declarant": true, "exporter": true, "importer_hs6": true}

// seenKind is seenKinds by index of entityKinds.
var seenKind = func() (s [numEntityKinds]bool) {
	for i, k := range entityKinds {
		s[i] = seenKinds[k]
	}
	return s
}()

// ownFeatures are the declaration's own figures.
var ownFeatures = []string{
	"log_value", "log_gross_mass", "log_unit_value", "duty_ratio", "items", "hs_chapter",
	"origin_is_dispatch", "has_preference", "net_gross_ratio", "aeo",
}

// featureGroup says how a feature is explained: which detector, entity or
// figure it belongs to.
type featureGroup struct {
	kind  int // groupRule, groupDetector, groupMeasure, groupEntity, groupOwn
	index int // detector index, feature index (measures), entity kind index or own feature index
}

const (
	groupRule = iota
	groupDetector
	groupMeasure
	groupEntity
	groupOwn
)

// span is one group's features: [at, end) in the layout.
type span struct {
	g       featureGroup
	at, end int
}

// layout is the feature layout for one list of detectors.
type layout struct {
	names  []string
	groups []featureGroup
	spans  []span   // the groups' runs of features, in order, for explanations
	labels []string // measures: what the value is, for explanations
	// featDet is the detector a feature belongs to (strengths and
	// measures), -1 for the others; detNames names the detectors.
	featDet  []int
	detNames []string
	// offsets of the blocks; per detector, its measures (offset -1: none,
	// and how many); per entity kind, its rate, inspections and seen
	// features (seen is -1 for kinds that do not count declarations)
	detOff, ownOff         int
	measOff, measLen       []int
	entRate, entN, entSeen []int
}

func newLayout(dets []string, measures [][]detectors.Measure) *layout {
	l := &layout{detNames: dets}
	add := func(name string, g featureGroup, det int) {
		l.names = append(l.names, name)
		l.groups = append(l.groups, g)
		l.labels = append(l.labels, "")
		l.featDet = append(l.featDet, det)
	}
	add("rule_score", featureGroup{groupRule, 0}, -1)
	l.detOff = len(l.names)
	for i, d := range dets {
		add("strength:"+d, featureGroup{groupDetector, i}, i)
	}
	for i, d := range dets {
		l.measOff = append(l.measOff, -1)
		l.measLen = append(l.measLen, len(measures[i]))
		if len(measures[i]) > 0 {
			l.measOff[i] = len(l.names)
		}
		for _, m := range measures[i] {
			add(d+":"+m.Name, featureGroup{groupMeasure, len(l.names)}, i)
			l.labels[len(l.labels)-1] = m.Label
		}
	}
	for i, k := range entityKinds {
		l.entRate = append(l.entRate, len(l.names))
		add(k+":hit_rate", featureGroup{groupEntity, i}, -1)
		l.entN = append(l.entN, len(l.names))
		add(k+":log_inspections", featureGroup{groupEntity, i}, -1)
		l.entSeen = append(l.entSeen, -1)
		if seenKinds[k] {
			l.entSeen[i] = len(l.names)
			add(k+":log_seen", featureGroup{groupEntity, i}, -1)
		}
	}
	l.ownOff = len(l.names)
	for i, n := range ownFeatures {
		add(n, featureGroup{groupOwn, i}, -1)
	}
	for i, g := range l.groups {
		if n := len(l.spans); n > 0 && l.spans[n-1].g == g {
			l.spans[n-1].end = i + 1
			continue
		}
		l.spans = append(l.spans, span{g: g, at: i, end: i + 1})
	}
	return l
}

func (l *layout) same(names []string) bool {
	if len(names) != len(l.names) {
		return false
	}
	for i := range names {
		if names[i] != l.names[i] {
			return false
		}
	}
	return true
}

// entityIDs fills ids (one per entity kind) for d; an empty id means the
// declaration does not name that entity.
func entityIDs(d *declaration.Declaration, ids []string) {
	it := d.MainItem()
	hs6 := it.HS6()
	ids[entImporter] = d.Importer.ID
	ids[entDeclarant] = d.DeclarantID
	ids[entExporter] = d.Exporter.ID
	ids[entOffice] = d.Office
	ids[entHS6] = hs6
	ids[entHS4] = it.HS4()
	ids[entOrigin] = it.Origin
	ids[entDispatch] = d.DispatchCountry
	// hs6_origin is hs6 "/" origin, importer_hs6 importer "/" hs6 (when
	// there is an importer): one string holds both.
	var b strings.Builder
	n := len(hs6) + 1 + len(it.Origin)
	if d.Importer.ID != "" {
		b.Grow(n + len(d.Importer.ID) + 1 + len(hs6))
	} else {
		b.Grow(n)
	}
	b.WriteString(hs6)
	b.WriteByte('/')
	b.WriteString(it.Origin)
	if d.Importer.ID != "" {
		b.WriteString(d.Importer.ID)
		b.WriteByte('/')
		b.WriteString(hs6)
	}
	both := b.String()
	ids[entHS6Origin], ids[entImporterHS6] = both[:n], both[n:]
	ids[entProcedure] = d.Procedure
	ids[entTransport] = d.TransportMode
	ids[entPreference] = it.Preference
}

// entityStats is one entity's outcome history, weighted by inverse
// selection probability.
type entityStats struct {
	seen, inspections, hits, revenue, hitValue float64
}

const entityRecordSize = 5 * 4

// add counts an outcome with weight w; value is its declaration's customs
// value.
func (s *entityStats) add(o *declaration.Outcome, w, value float64) {
	s.inspections += w
	if o.Hit {
		s.hits += w
		s.revenue += w * o.Revenue
		s.hitValue += w * value
	}
}

// An entity never inspected is stored as its seen count alone (4 bytes).
func (s *entityStats) decode(b []byte) bool {
	if len(b) != entityRecordSize && len(b) != 4 {
		return false
	}
	f := func(i int) float64 {
		if 4*i >= len(b) {
			return 0
		}
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	}
	s.seen, s.inspections, s.hits, s.revenue, s.hitValue = f(0), f(1), f(2), f(3), f(4)
	return true
}

func (s *entityStats) encode(b []byte) []byte {
	if s.inspections == 0 && s.hits == 0 && s.revenue == 0 && s.hitValue == 0 {
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(s.seen)))
	}
	for _, v := range [...]float64{s.seen, s.inspections, s.hits, s.revenue, s.hitValue} {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
	}
	return b
}

// entityKey is the store key of an entity's record: a prefix no detector
// uses, the kind's index and the id.
func entityKey(dst []byte, kind int, id string) []byte {
	switch kind { // sections of the importer's combined record
	case entImporter:
		return detectors.ImporterKey(dst[:0], id, "\xffM")
	case entImporterHS6: // importer "/" hs6
		if i := strings.LastIndexByte(id, '/'); i >= 0 {
			return detectors.ImporterKey(dst[:0], id[:i], "\xffMh", id[i+1:])
		}
	}
	dst = append(dst[:0], 0xff, 'M', byte(kind))
	return append(dst, id...)
}

// ownValues writes the declaration's own figures into x.
func ownValues(d *declaration.Declaration, aeo bool, x []float64) {
	var value, gross, net, duties float64
	hasDuties := false
	pref := 0.0
	for i := range d.Items {
		it := &d.Items[i]
		value += it.CustomsValue
		gross += it.GrossMassKg
		if it.HasNetMass {
			net += it.NetMassKg
		} else {
			net += it.GrossMassKg
		}
		if it.HasDuties {
			hasDuties = true
			duties += it.Duties
		}
		if it.Preference != "" {
			pref = 1
		}
	}
	it := d.MainItem()
	x[0] = math.Log1p(value)
	x[1] = math.Log1p(gross)
	x[2] = math.NaN()
	if it.GrossMassKg > 0 {
		x[2] = math.Log(max(it.CustomsValue, 1e-9) / it.GrossMassKg)
	}
	x[3] = math.NaN()
	if hasDuties && value > 0 {
		x[3] = duties / value
	}
	x[4] = float64(len(d.Items))
	x[5] = math.NaN()
	if ch, err := strconv.Atoi(it.HSCode[:2]); err == nil {
		x[5] = float64(ch)
	}
	x[6] = 0
	if d.DispatchCountry != "" && d.DispatchCountry == it.Origin {
		x[6] = 1
	}
	x[7] = pref
	x[8] = math.NaN()
	if gross > 0 {
		x[8] = net / gross
	}
	x[9] = 0
	if aeo {
		x[9] = 1
	}
}

// appendOwn says what an own figure was, for an explanation.
func appendOwn(b []byte, i int, d *declaration.Declaration, x float64) []byte {
	it := d.MainItem()
	switch ownFeatures[i] {
	case "log_value":
		return append(append(detectors.AppendNumber(append(b, "customs value "...), math.Expm1(x)), ' '), d.Currency...)
	case "log_gross_mass":
		return append(detectors.AppendNumber(append(b, "gross mass "...), math.Expm1(x)), " kg"...)
	case "log_unit_value":
		b = append(append(detectors.AppendNumber(append(b, "unit value "...), math.Exp(x)), ' '), d.Currency...)
		return append(append(b, "/kg for HS "...), it.HS6()...)
	case "duty_ratio":
		if math.IsNaN(x) {
			return append(b, "no duties declared"...)
		}
		return append(detectors.AppendNumber(append(b, "duties "...), 100*x), " % of the value"...)
	case "items":
		return append(strconv.AppendInt(b, int64(len(d.Items)), 10), " items"...)
	case "hs_chapter":
		return append(append(b, "HS chapter "...), it.HSCode[:2]...)
	case "origin_is_dispatch":
		if x == 1 {
			return append(append(b, "dispatched from the origin country "...), it.Origin...)
		}
		return append(append(append(append(b, "origin "...), it.Origin...), " but dispatched from "...), orNone(d.DispatchCountry)...)
	case "has_preference":
		if x == 1 {
			return append(append(append(b, "preference claimed ("...), it.Preference...), ')')
		}
		return append(b, "no preference claimed"...)
	case "net_gross_ratio":
		return detectors.AppendNumber(append(b, "net/gross mass ratio "...), x)
	case "aeo":
		if x == 1 {
			return append(b, "AEO importer"...)
		}
		return append(b, "importer not AEO"...)
	}
	return append(b, ownFeatures[i]...)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// appendEntity says what an entity's history was, for an explanation.
// Counts are weighted (inverse selection probability) and so may have
// decimals.
func appendEntity(b []byte, kind int, id string, st entityStats) []byte {
	if id == "" {
		return append(append(b, entityKinds[kind]...), ": none named"...)
	}
	switch k := entityKinds[kind]; k {
	case "hs6", "hs4":
		b = append(append(b, "HS "...), id...)
	case "hs6_origin":
		hs, origin, _ := strings.Cut(id, "/")
		b = append(append(append(append(b, "HS "...), hs...), " from "...), origin...)
	case "importer_hs6":
		imp, hs, _ := strings.Cut(id, "/")
		b = append(append(append(append(b, "importer "...), imp...), " with HS "...), hs...)
	case "dispatch":
		b = append(append(b, "dispatch country "...), id...)
	case "transport":
		b = append(append(b, "transport by "...), id...)
	default:
		b = append(append(append(b, k...), ' '), id...)
	}
	if st.inspections < 0.5 {
		if seenKind[kind] {
			return append(appendCount(append(b, ": never inspected, "...), st.seen), " declarations before"...)
		}
		return append(b, ": never inspected"...)
	}
	b = appendCount(append(b, ": "...), st.hits)
	return append(appendCount(append(b, " hits in "...), st.inspections), " inspections"...)
}

// appendCount writes a count: whole numbers as such, weighted ones with one
// decimal.
func appendCount(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return declaration.AppendFixed(b, v, 1)
}
