package declaration

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
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

// DecodeDeclaration decodes and validates one declaration. The error, when not
// nil, is an *Error whose message names the field (and item line).
func DecodeDeclaration(b []byte) (*Declaration, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	o, err := parse(p, b, "a declaration")
	if err != nil {
		return nil, err
	}
	var r reader
	d := decodeHeader(&r, o)
	if r.err != nil {
		return nil, r.err
	}
	return d, nil
}

func decodeHeader(r *reader, o *fastjson.Object) *Declaration {
	d := &Declaration{}
	d.Schema, _ = r.str(o, "schema", "schema")
	if d.Schema != "" && d.Schema != "declaration/v1" {
		r.fail("schema", fmt.Sprintf("must be \"declaration/v1\", got %q", d.Schema))
	}
	var ok bool
	if d.ID, ok = r.str(o, "id", "id"); !ok {
		r.fail("id", "is required")
	} else if n := utf8.RuneCountInString(d.ID); n < 1 || n > 64 {
		r.fail("id", "must be 1-64 characters")
	}
	d.Type, _ = r.str(o, "type", "type")
	switch d.Type {
	case "":
		d.Type = "import"
	case "import", "export", "transit":
	default:
		r.fail("type", fmt.Sprintf("must be import, export or transit, got %q", d.Type))
	}
	if ts, ok := r.str(o, "lodged_at", "lodged_at"); !ok {
		r.fail("lodged_at", "is required")
	} else if t, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		r.fail("lodged_at", fmt.Sprintf("is not an RFC 3339 timestamp: %q", truncate(ts, 40)))
	} else {
		d.LodgedAt = t
	}
	if d.Office, ok = r.str(o, "office", "office"); !ok {
		r.fail("office", "is required")
	} else if n := utf8.RuneCountInString(d.Office); n < 1 || n > 17 {
		r.fail("office", "must be 1-17 characters")
	}
	d.DeclarantID, _ = r.str(o, "declarant_id", "declarant_id")
	if imp := r.object(o, "importer", "importer"); imp == nil {
		r.fail("importer", "is required")
	} else {
		if d.Importer.ID, ok = r.str(imp, "id", "importer.id"); !ok {
			r.fail("importer.id", "is required")
		} else if n := utf8.RuneCountInString(d.Importer.ID); n < 1 || n > 35 {
			r.fail("importer.id", "must be 1-35 characters")
		}
		d.Importer.Name, _ = r.str(imp, "name", "importer.name")
		d.Importer.Country = r.country(imp, "country", "importer.country")
		d.Importer.AEO = r.boolean(imp, "aeo", "importer.aeo")
	}
	if exp := r.object(o, "exporter", "exporter"); exp != nil {
		d.Exporter.ID, _ = r.str(exp, "id", "exporter.id")
		d.Exporter.Name, _ = r.str(exp, "name", "exporter.name")
		d.Exporter.Country = r.country(exp, "country", "exporter.country")
	}
	d.DispatchCountry = r.country(o, "dispatch_country", "dispatch_country")
	d.TransportMode, _ = r.str(o, "transport_mode", "transport_mode")
	switch d.TransportMode {
	case "", "sea", "air", "road", "rail", "post", "fixed", "inland_water":
	default:
		r.fail("transport_mode", fmt.Sprintf("must be one of sea, air, road, rail, post, fixed, inland_water, got %q", truncate(d.TransportMode, 40)))
	}
	d.Procedure, _ = r.str(o, "procedure", "procedure")
	if d.Currency, ok = r.str(o, "currency", "currency"); !ok {
		r.fail("currency", "is required")
	} else if !isUpper(d.Currency, 3) {
		r.fail("currency", fmt.Sprintf("must be a 3-letter ISO 4217 code, got %q", truncate(d.Currency, 40)))
	}
	items, ok := r.array(o, "items", "items")
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
	for i, v := range items {
		decodeItem(r, v, i, &d.Items[i])
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
func (r *reader) country(o *fastjson.Object, key, field string) string {
	s, ok := r.str(o, key, field)
	if ok && s != "" && !isAlpha2(s) {
		r.fail(field, fmt.Sprintf("must be an ISO 3166-1 alpha-2 code, got %q", truncate(s, 40)))
	}
	return s
}

func decodeItem(r *reader, v *fastjson.Value, i int, it *Item) {
	r.inItem, r.index, r.line = true, i, 0
	defer func() { r.inItem = false }()
	o, err := v.Object()
	if err != nil {
		r.err = &Error{Field: "items[" + strconv.Itoa(i) + "]", Kind: "items[]", Msg: "must be an object"}
		return
	}
	line, ok := r.num(o, "line", "line")
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
	if it.HSCode, ok = r.str(o, "hs_code", "hs_code"); !ok {
		r.fail("hs_code", "is required")
	} else if n := len(it.HSCode); n < 6 || n > 10 || !allDigits(it.HSCode) {
		r.fail("hs_code", fmt.Sprintf("must be 6-10 digits, got %q", truncate(it.HSCode, 40)))
	}
	it.Description, _ = r.str(o, "description", "description")
	if utf8.RuneCountInString(it.Description) > 512 {
		r.fail("description", "must be at most 512 characters")
	}
	if it.Origin, ok = r.str(o, "origin", "origin"); !ok {
		r.fail("origin", "is required")
	} else if !isAlpha2(it.Origin) {
		r.fail("origin", fmt.Sprintf("must be an ISO 3166-1 alpha-2 code, got %q", truncate(it.Origin, 40)))
	}
	if it.Quantity, ok = r.num(o, "quantity", "quantity"); ok && it.Quantity < 0 {
		r.fail("quantity", fmt.Sprintf("must be >= 0, got %g", it.Quantity))
	}
	it.QuantityUnit, _ = r.str(o, "quantity_unit", "quantity_unit")
	if it.GrossMassKg, ok = r.num(o, "gross_mass_kg", "gross_mass_kg"); !ok {
		r.fail("gross_mass_kg", "is required")
	} else if it.GrossMassKg <= 0 {
		r.fail("gross_mass_kg", fmt.Sprintf("must be > 0, got %g", it.GrossMassKg))
	}
	if it.NetMassKg, it.HasNetMass = r.num(o, "net_mass_kg", "net_mass_kg"); it.HasNetMass && it.NetMassKg < 0 {
		r.fail("net_mass_kg", fmt.Sprintf("must be >= 0, got %g", it.NetMassKg))
	}
	if it.CustomsValue, ok = r.num(o, "customs_value", "customs_value"); !ok {
		r.fail("customs_value", "is required")
	} else if it.CustomsValue < 0 {
		r.fail("customs_value", fmt.Sprintf("must be >= 0, got %g", it.CustomsValue))
	}
	if it.Duties, it.HasDuties = r.num(o, "duties", "duties"); it.HasDuties && it.Duties < 0 {
		r.fail("duties", fmt.Sprintf("must be >= 0, got %g", it.Duties))
	}
	it.Preference, _ = r.str(o, "preference", "preference")
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
