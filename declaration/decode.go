package declaration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
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

func fieldErr(field, kind, format string, args ...any) *Error {
	return &Error{Field: field, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// wire types mirror the JSON; pointers tell "absent" from "zero".
type wireDeclaration struct {
	Schema          string        `json:"schema"`
	ID              *string       `json:"id"`
	Type            string        `json:"type"`
	LodgedAt        *string       `json:"lodged_at"`
	Office          *string       `json:"office"`
	DeclarantID     string        `json:"declarant_id"`
	Importer        *wireImporter `json:"importer"`
	Exporter        *wireExporter `json:"exporter"`
	DispatchCountry string        `json:"dispatch_country"`
	TransportMode   string        `json:"transport_mode"`
	Procedure       string        `json:"procedure"`
	Currency        *string       `json:"currency"`
	Items           *[]wireItem   `json:"items"`
}

type wireImporter struct {
	ID      *string `json:"id"`
	Name    string  `json:"name"`
	Country string  `json:"country"`
	AEO     bool    `json:"aeo"`
}

type wireExporter struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Country string `json:"country"`
}

type wireItem struct {
	Line         *float64 `json:"line"`
	HSCode       *string  `json:"hs_code"`
	Description  string   `json:"description"`
	Origin       *string  `json:"origin"`
	Quantity     *float64 `json:"quantity"`
	QuantityUnit string   `json:"quantity_unit"`
	GrossMassKg  *float64 `json:"gross_mass_kg"`
	NetMassKg    *float64 `json:"net_mass_kg"`
	CustomsValue *float64 `json:"customs_value"`
	Duties       *float64 `json:"duties"`
	Preference   string   `json:"preference"`
}

// MaxItems is the largest number of items a declaration may have.
const MaxItems = 999

var declarationSchema = object{
	"schema": str, "id": str, "type": str, "lodged_at": str, "office": str,
	"declarant_id": str, "dispatch_country": str, "transport_mode": str,
	"procedure": str, "currency": str,
	"importer": object{"id": str, "name": str, "country": str, "aeo": boolean},
	"exporter": object{"id": str, "name": str, "country": str},
	"items": array{object{
		"line": num, "hs_code": str, "description": str, "origin": str,
		"quantity": num, "quantity_unit": str, "gross_mass_kg": num,
		"net_mass_kg": num, "customs_value": num, "duties": num, "preference": str,
	}},
}

// DecodeDeclaration decodes and validates one declaration. The error, when not
// nil, is an *Error whose message names the field (and item line).
func DecodeDeclaration(b []byte) (*Declaration, error) {
	var w wireDeclaration
	if err := unmarshal(b, &w, declarationSchema, "a declaration"); err != nil {
		return nil, err
	}
	return w.validate()
}

// unmarshal is the fast path: encoding/json into a typed struct. When that
// fails, the slow path walks a generic decoding against the schema so that the
// error names the field and item line rather than a Go type.
func unmarshal(b []byte, v any, schema object, what string) error {
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) || !json.Valid(b) {
		msg := "not valid JSON"
		if len(bytes.TrimSpace(b)) == 0 {
			msg = "not valid JSON: empty message"
		} else if syn != nil {
			msg = fmt.Sprintf("not valid JSON: %s at byte %d", syn.Error(), syn.Offset)
		}
		return &Error{Kind: "json", Msg: msg}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var g any
	if d.Decode(&g) == nil {
		if _, ok := g.(map[string]any); !ok {
			return &Error{Kind: "json", Msg: what + " must be a JSON object"}
		}
		if e := schema.check(g, "", ""); e != nil {
			return e
		}
	}
	return &Error{Kind: "json", Msg: "cannot decode: " + err.Error()}
}

func (w *wireDeclaration) validate() (*Declaration, error) {
	d := &Declaration{
		Schema: w.Schema, Type: w.Type, DeclarantID: w.DeclarantID,
		DispatchCountry: w.DispatchCountry, TransportMode: w.TransportMode, Procedure: w.Procedure,
	}
	if d.Schema != "" && d.Schema != "declaration/v1" {
		return nil, fieldErr("schema", "schema", "must be \"declaration/v1\", got %q", d.Schema)
	}
	if w.ID == nil {
		return nil, fieldErr("id", "id", "is required")
	}
	d.ID = *w.ID
	if n := utf8.RuneCountInString(d.ID); n < 1 || n > 64 {
		return nil, fieldErr("id", "id", "must be 1-64 characters")
	}
	switch d.Type {
	case "":
		d.Type = "import"
	case "import", "export", "transit":
	default:
		return nil, fieldErr("type", "type", "must be import, export or transit, got %q", d.Type)
	}
	if w.LodgedAt == nil {
		return nil, fieldErr("lodged_at", "lodged_at", "is required")
	}
	t, err := time.Parse(time.RFC3339Nano, *w.LodgedAt)
	if err != nil {
		return nil, fieldErr("lodged_at", "lodged_at", "is not an RFC 3339 timestamp: %q", *w.LodgedAt)
	}
	d.LodgedAt = t
	if w.Office == nil {
		return nil, fieldErr("office", "office", "is required")
	}
	d.Office = *w.Office
	if n := utf8.RuneCountInString(d.Office); n < 1 || n > 17 {
		return nil, fieldErr("office", "office", "must be 1-17 characters")
	}
	if w.Importer == nil {
		return nil, fieldErr("importer", "importer", "is required")
	}
	if w.Importer.ID == nil {
		return nil, fieldErr("importer.id", "importer.id", "is required")
	}
	d.Importer = Importer{ID: *w.Importer.ID, Name: w.Importer.Name, Country: w.Importer.Country, AEO: w.Importer.AEO}
	if n := utf8.RuneCountInString(d.Importer.ID); n < 1 || n > 35 {
		return nil, fieldErr("importer.id", "importer.id", "must be 1-35 characters")
	}
	if d.Importer.Country != "" && !isAlpha2(d.Importer.Country) {
		return nil, fieldErr("importer.country", "importer.country", "must be an ISO 3166-1 alpha-2 code, got %q", d.Importer.Country)
	}
	if w.Exporter != nil {
		d.Exporter = Exporter{ID: w.Exporter.ID, Name: w.Exporter.Name, Country: w.Exporter.Country}
		if d.Exporter.Country != "" && !isAlpha2(d.Exporter.Country) {
			return nil, fieldErr("exporter.country", "exporter.country", "must be an ISO 3166-1 alpha-2 code, got %q", d.Exporter.Country)
		}
	}
	if d.DispatchCountry != "" && !isAlpha2(d.DispatchCountry) {
		return nil, fieldErr("dispatch_country", "dispatch_country", "must be an ISO 3166-1 alpha-2 code, got %q", d.DispatchCountry)
	}
	switch d.TransportMode {
	case "", "sea", "air", "road", "rail", "post", "fixed", "inland_water":
	default:
		return nil, fieldErr("transport_mode", "transport_mode", "must be one of sea, air, road, rail, post, fixed, inland_water, got %q", d.TransportMode)
	}
	if w.Currency == nil {
		return nil, fieldErr("currency", "currency", "is required")
	}
	d.Currency = *w.Currency
	if !isUpper(d.Currency, 3) {
		return nil, fieldErr("currency", "currency", "must be a 3-letter ISO 4217 code, got %q", d.Currency)
	}
	if w.Items == nil {
		return nil, fieldErr("items", "items", "is required")
	}
	wi := *w.Items
	if len(wi) == 0 {
		return nil, fieldErr("items", "items", "is empty")
	}
	if len(wi) > MaxItems {
		return nil, fieldErr("items", "items", "has %d items, at most %d are allowed", len(wi), MaxItems)
	}
	d.Items = make([]Item, len(wi))
	for i := range wi {
		if err := wi[i].validate(i, &d.Items[i]); err != nil {
			return nil, err
		}
		for j := 0; j < i; j++ {
			if d.Items[j].Line == d.Items[i].Line {
				return nil, fieldErr("items:", "items.line", "line %d appears twice", d.Items[i].Line)
			}
		}
	}
	return d, nil
}

func (w *wireItem) validate(i int, it *Item) error {
	if w.Line == nil {
		return fieldErr(fmt.Sprintf("items[%d].line", i), "items[].line", "is required")
	}
	if *w.Line != math.Trunc(*w.Line) {
		return fieldErr(fmt.Sprintf("items[%d].line", i), "items[].line", "must be an integer, got %g", *w.Line)
	}
	if *w.Line < 1 || *w.Line > 1e9 {
		return fieldErr(fmt.Sprintf("items[%d].line", i), "items[].line", "must be >= 1 and <= 1e9, got %g", *w.Line)
	}
	it.Line = int(*w.Line)
	p := "items[line " + strconv.Itoa(it.Line) + "]."
	if w.HSCode == nil {
		return fieldErr(p+"hs_code", "items[].hs_code", "is required")
	}
	it.HSCode = *w.HSCode
	if n := len(it.HSCode); n < 6 || n > 10 || !allDigits(it.HSCode) {
		return fieldErr(p+"hs_code", "items[].hs_code", "must be 6-10 digits, got %q", it.HSCode)
	}
	it.Description = w.Description
	if utf8.RuneCountInString(it.Description) > 512 {
		return fieldErr(p+"description", "items[].description", "must be at most 512 characters")
	}
	if w.Origin == nil {
		return fieldErr(p+"origin", "items[].origin", "is required")
	}
	it.Origin = *w.Origin
	if !isAlpha2(it.Origin) {
		return fieldErr(p+"origin", "items[].origin", "must be an ISO 3166-1 alpha-2 code, got %q", it.Origin)
	}
	it.QuantityUnit, it.Preference = w.QuantityUnit, w.Preference
	if w.Quantity != nil {
		if *w.Quantity < 0 {
			return fieldErr(p+"quantity", "items[].quantity", "must be >= 0, got %g", *w.Quantity)
		}
		it.Quantity = *w.Quantity
	}
	if w.GrossMassKg == nil {
		return fieldErr(p+"gross_mass_kg", "items[].gross_mass_kg", "is required")
	}
	if it.GrossMassKg = *w.GrossMassKg; it.GrossMassKg <= 0 {
		return fieldErr(p+"gross_mass_kg", "items[].gross_mass_kg", "must be > 0, got %g", it.GrossMassKg)
	}
	if w.NetMassKg != nil {
		if it.NetMassKg, it.HasNetMass = *w.NetMassKg, true; it.NetMassKg < 0 {
			return fieldErr(p+"net_mass_kg", "items[].net_mass_kg", "must be >= 0, got %g", it.NetMassKg)
		}
	}
	if w.CustomsValue == nil {
		return fieldErr(p+"customs_value", "items[].customs_value", "is required")
	}
	if it.CustomsValue = *w.CustomsValue; it.CustomsValue < 0 {
		return fieldErr(p+"customs_value", "items[].customs_value", "must be >= 0, got %g", it.CustomsValue)
	}
	if w.Duties != nil {
		if it.Duties, it.HasDuties = *w.Duties, true; it.Duties < 0 {
			return fieldErr(p+"duties", "items[].duties", "must be >= 0, got %g", it.Duties)
		}
	}
	return nil
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
