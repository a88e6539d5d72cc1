package declaration

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Error is a validation error. Field names the offending field as a path
// ("items[line 2].gross_mass_kg"); Kind is the same path with item positions
// removed ("items[].gross_mass_kg"), small enough to use as a metric label.
type Error struct {
	Field string
	Kind  string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + " " + e.Msg
}

// MaxItems is the largest number of items a declaration may have.
const MaxItems = 999

// rawDecl is a declaration's fields as read, before validation.
type rawDecl struct {
	schema, id, typ, lodgedAt, office, declarant, importer, exporter,
	dispatch, mode, procedure, currency, items value
	imp, exp rawParty
	lines    []rawItem
}

type rawParty struct{ id, name, country, aeo value }

type rawItem struct {
	kind                                                            uint8
	line, hs, desc, origin, qty, unit, gross, net, cv, duties, pref value
}

type declDecoder struct {
	s    scanner
	d    rawDecl
	strs strCache
}

var declDecoders = sync.Pool{New: func() any { return new(declDecoder) }}

// DecodeDeclaration decodes and validates one declaration. The error, when not
// nil, is an *Error whose message names the field (and item line).
func DecodeDeclaration(b []byte) (*Declaration, error) {
	dd := declDecoders.Get().(*declDecoder)
	defer func() {
		clear(dd.d.lines)
		dd.d = rawDecl{lines: dd.d.lines[:0]}
		clear(dd.s.keys)
		dd.s = scanner{keys: dd.s.keys[:0]}
		declDecoders.Put(dd)
	}()
	s := &dd.s
	if err := top(s, b, "a declaration"); err != nil {
		return nil, err
	}
	s.declaration(&dd.d)
	if s.end(); s.err != nil {
		return nil, s.err
	}
	r := reader{strs: &dd.strs}
	d := decodeHeader(&r, &dd.d)
	if r.err != nil {
		return nil, r.err
	}
	return d, nil
}

// top starts reading b, which must hold one JSON object in UTF-8; what is
// "a declaration" or "an outcome".
func top(s *scanner, b []byte, what string) *Error {
	if len(trimSpace(b)) == 0 {
		return &Error{Kind: "json", Msg: "not valid JSON: empty message"}
	}
	if !utf8.Valid(b) {
		return &Error{Kind: "utf8", Msg: "not valid UTF-8"}
	}
	s.b = b
	// A byte-order mark, which some tools write at the start of a UTF-8
	// file, is ignored (RFC 8259 allows it): byte positions in errors
	// still count from the message's first byte.
	if len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf {
		s.i = 3
	}
	if s.peek() != '{' {
		s.skip(1)
		if s.end(); s.err != nil {
			return s.err
		}
		return &Error{Kind: "json", Msg: what + " must be a JSON object"}
	}
	return nil
}

// The fields riskmon reads, by object; the scanner checks and skips the
// others. The index of a name is its bit in members.seen.
var (
	headerFields = []string{"schema", "id", "type", "lodged_at", "office", "declarant_id", "importer", "exporter",
		"dispatch_country", "transport_mode", "procedure", "currency", "items"}
	partyFields = []string{"id", "name", "country", "aeo"}
	itemFields  = []string{"line", "hs_code", "description", "origin", "quantity", "quantity_unit", "gross_mass_kg",
		"net_mass_kg", "customs_value", "duties", "preference"}
)

func (s *scanner) declaration(d *rawDecl) {
	fields := [...]*value{&d.schema, &d.id, &d.typ, &d.lodgedAt, &d.office, &d.declarant, &d.importer, &d.exporter,
		&d.dispatch, &d.mode, &d.procedure, &d.currency, &d.items}
	var m members
	for s.next(&m, 1) {
		switch i := s.field(&m, headerFields, 1); i {
		case -1:
		case 6:
			s.party(&d.importer, &d.imp)
		case 7:
			s.party(&d.exporter, &d.exp)
		case 12:
			s.itemList(d)
		default:
			s.value(fields[i], 2)
		}
	}
}

// party reads the importer or the exporter.
func (s *scanner) party(v *value, p *rawParty) {
	if s.peek() != '{' {
		s.value(v, 2)
		return
	}
	v.kind = kindObject
	fields := [...]*value{&p.id, &p.name, &p.country, &p.aeo}
	var m members
	for s.next(&m, 2) {
		if i := s.field(&m, partyFields, 2); i >= 0 {
			s.value(fields[i], 3)
		}
	}
}

func (s *scanner) itemList(d *rawDecl) {
	if s.peek() != '[' {
		s.value(&d.items, 2)
		return
	}
	d.items.kind = kindArray
	for n := 0; s.element(n, 2); n++ {
		d.lines = append(d.lines, rawItem{})
		it := &d.lines[len(d.lines)-1]
		if s.peek() != '{' {
			var v value
			s.value(&v, 3)
			it.kind = v.kind
			continue
		}
		it.kind = kindObject
		fields := [...]*value{&it.line, &it.hs, &it.desc, &it.origin, &it.qty, &it.unit, &it.gross, &it.net, &it.cv, &it.duties, &it.pref}
		var m members
		for s.next(&m, 3) {
			if i := s.field(&m, itemFields, 3); i >= 0 {
				s.value(fields[i], 4)
			}
		}
	}
}

func decodeHeader(r *reader, raw *rawDecl) *Declaration {
	d := &Declaration{}
	d.Schema, _ = r.str(&raw.schema, "schema")
	if d.Schema != "" && d.Schema != "declaration/v1" {
		r.fail("schema", fmt.Sprintf("must be \"declaration/v1\", got %q", d.Schema))
	}
	var ok bool
	if d.ID, ok = r.str(&raw.id, "id"); !ok {
		r.fail("id", "is required")
	} else if n := utf8.RuneCountInString(d.ID); n < 1 || n > 64 {
		r.fail("id", "must be 1-64 characters")
	}
	d.Type, _ = r.str(&raw.typ, "type")
	switch d.Type {
	case "":
		d.Type = "import"
	case "import", "export", "transit":
	default:
		r.fail("type", fmt.Sprintf("must be import, export or transit, got %q", d.Type))
	}
	if ts, ok := r.str(&raw.lodgedAt, "lodged_at"); !ok {
		r.fail("lodged_at", "is required")
	} else if t, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		r.fail("lodged_at", fmt.Sprintf("is not an RFC 3339 timestamp: %q", truncate(ts, 40)))
	} else {
		d.LodgedAt = t
	}
	if d.Office, ok = r.shared(&raw.office, "office"); !ok {
		r.fail("office", "is required")
	} else if n := utf8.RuneCountInString(d.Office); n < 1 || n > 17 {
		r.fail("office", "must be 1-17 characters")
	}
	d.DeclarantID, _ = r.shared(&raw.declarant, "declarant_id")
	if !r.object(&raw.importer, "importer") {
		r.fail("importer", "is required")
	} else {
		imp := &raw.imp
		if d.Importer.ID, ok = r.str(&imp.id, "importer.id"); !ok {
			r.fail("importer.id", "is required")
		} else if n := utf8.RuneCountInString(d.Importer.ID); n < 1 || n > 35 {
			r.fail("importer.id", "must be 1-35 characters")
		}
		d.Importer.Name, _ = r.str(&imp.name, "importer.name")
		d.Importer.Country = r.country(&imp.country, "importer.country")
		d.Importer.AEO = r.boolean(&imp.aeo, "importer.aeo")
	}
	if r.object(&raw.exporter, "exporter") {
		exp := &raw.exp
		d.Exporter.ID, _ = r.str(&exp.id, "exporter.id")
		d.Exporter.Name, _ = r.str(&exp.name, "exporter.name")
		d.Exporter.Country = r.country(&exp.country, "exporter.country")
	}
	d.DispatchCountry = r.country(&raw.dispatch, "dispatch_country")
	d.TransportMode, _ = r.str(&raw.mode, "transport_mode")
	switch d.TransportMode {
	case "", "sea", "air", "road", "rail", "post", "fixed", "inland_water":
	default:
		r.fail("transport_mode", fmt.Sprintf("must be one of sea, air, road, rail, post, fixed, inland_water, got %q", truncate(d.TransportMode, 40)))
	}
	d.Procedure, _ = r.shared(&raw.procedure, "procedure")
	if d.Currency, ok = r.str(&raw.currency, "currency"); !ok {
		r.fail("currency", "is required")
	} else if !isUpper(d.Currency, 3) {
		r.fail("currency", fmt.Sprintf("must be a 3-letter ISO 4217 code, got %q", truncate(d.Currency, 40)))
	}
	ok = r.array(&raw.items, "items")
	items := raw.lines
	switch {
	case r.err != nil:
		return d
	case !ok:
		r.fail("items", "is required")
		return d
	case len(items) == 0:
		r.fail("items", "is empty")
		return d
	case len(items) > MaxItems:
		r.fail("items", fmt.Sprintf("has %d items, at most %d are allowed", len(items), MaxItems))
		return d
	}
	d.Items = make([]Item, len(items))
	for i := range items {
		decodeItem(r, &items[i], i, &d.Items[i])
		if r.err != nil {
			return d
		}
		for j := 0; j < i; j++ {
			if d.Items[j].Line == d.Items[i].Line {
				r.err = &Error{Field: "items:", Kind: "items[].line", Msg: fmt.Sprintf("line %d appears twice", d.Items[i].Line)}
				return d
			}
		}
	}
	return d
}

// country reads an optional ISO 3166-1 alpha-2 code.
func (r *reader) country(v *value, field string) string {
	s, ok := r.str(v, field)
	if ok && s != "" && !isAlpha2(s) {
		r.fail(field, fmt.Sprintf("must be an ISO 3166-1 alpha-2 code, got %q", truncate(s, 40)))
	}
	return s
}

func decodeItem(r *reader, raw *rawItem, i int, it *Item) {
	r.inItem, r.index, r.line = true, i, 0
	defer func() { r.inItem = false }()
	if raw.kind != kindObject {
		r.err = &Error{Field: "items[" + strconv.Itoa(i) + "]", Kind: "items[]", Msg: "must be an object"}
		return
	}
	line, ok := r.num(&raw.line, "line")
	switch {
	case r.err != nil:
		return
	case !ok:
		r.fail("line", "is required")
		return
	case line != math.Trunc(line):
		r.fail("line", fmt.Sprintf("must be an integer, got %g", line))
		return
	case line < 1 || line > 1e9:
		r.fail("line", fmt.Sprintf("must be >= 1 and <= 1e9, got %g", line))
		return
	}
	it.Line = int(line)
	r.line = it.Line
	if it.HSCode, ok = r.shared(&raw.hs, "hs_code"); !ok {
		r.fail("hs_code", "is required")
	} else if n := len(it.HSCode); n < 6 || n > 10 || !allDigits(it.HSCode) {
		r.fail("hs_code", fmt.Sprintf("must be 6-10 digits, got %q", truncate(it.HSCode, 40)))
	}
	it.Description, _ = r.shared(&raw.desc, "description")
	if utf8.RuneCountInString(it.Description) > 512 {
		r.fail("description", "must be at most 512 characters")
	}
	if it.Origin, ok = r.str(&raw.origin, "origin"); !ok {
		r.fail("origin", "is required")
	} else if !isAlpha2(it.Origin) {
		r.fail("origin", fmt.Sprintf("must be an ISO 3166-1 alpha-2 code, got %q", truncate(it.Origin, 40)))
	}
	if it.Quantity, ok = r.num(&raw.qty, "quantity"); ok && it.Quantity < 0 {
		r.fail("quantity", fmt.Sprintf("must be >= 0, got %g", it.Quantity))
	}
	it.QuantityUnit, _ = r.shared(&raw.unit, "quantity_unit")
	if it.GrossMassKg, ok = r.num(&raw.gross, "gross_mass_kg"); !ok {
		r.fail("gross_mass_kg", "is required")
	} else if it.GrossMassKg <= 0 {
		r.fail("gross_mass_kg", fmt.Sprintf("must be > 0, got %g", it.GrossMassKg))
	}
	if it.NetMassKg, it.HasNetMass = r.num(&raw.net, "net_mass_kg"); it.HasNetMass && it.NetMassKg < 0 {
		r.fail("net_mass_kg", fmt.Sprintf("must be >= 0, got %g", it.NetMassKg))
	}
	if it.CustomsValue, ok = r.num(&raw.cv, "customs_value"); !ok {
		r.fail("customs_value", "is required")
	} else if it.CustomsValue < 0 {
		r.fail("customs_value", fmt.Sprintf("must be >= 0, got %g", it.CustomsValue))
	}
	if it.Duties, it.HasDuties = r.num(&raw.duties, "duties"); it.HasDuties && it.Duties < 0 {
		r.fail("duties", fmt.Sprintf("must be >= 0, got %g", it.Duties))
	}
	it.Preference, _ = r.shared(&raw.pref, "preference")
}
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isUpper(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func isAlpha2(s string) bool { return isUpper(s, 2) }
