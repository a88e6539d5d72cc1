package declaration

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkDeclaration fails t unless d holds every invariant the specification
// (declaration.md) gives a valid declaration. The fuzz target asserts it on
// everything the decoder accepts, so a check dropped from the decoder shows
// up as an accepted declaration that breaks it.
func checkDeclaration(t *testing.T, d *Declaration) {
	t.Helper()
	bad := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("accepted declaration %q breaks the spec: "+format, append([]any{d.ID}, args...)...)
	}
	runes := func(field, s string, lo, hi int) {
		t.Helper()
		if !utf8.ValidString(s) {
			bad("%s is not UTF-8", field)
		}
		if n := utf8.RuneCountInString(s); n < lo || n > hi {
			bad("%s has %d characters, want %d-%d", field, n, lo, hi)
		}
	}
	country := func(field, s string, required bool) {
		t.Helper()
		if s == "" && !required {
			return
		}
		if !isAlpha2(s) {
			bad("%s %q is not an ISO 3166-1 alpha-2 code", field, s)
		}
	}
	finite := func(field string, v float64, positive bool) {
		t.Helper()
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			bad("%s %g is not finite", field, v)
		case positive && v <= 0:
			bad("%s %g is not > 0", field, v)
		case v < 0:
			bad("%s %g is negative", field, v)
		}
	}
	if d.Schema != "" && d.Schema != "declaration/v1" {
		bad("schema %q", d.Schema)
	}
	runes("id", d.ID, 1, 64)
	switch d.Type {
	case "import", "export", "transit":
	default:
		bad("type %q", d.Type)
	}
	if d.LodgedAt.IsZero() {
		bad("no lodged_at")
	}
	runes("office", d.Office, 1, 17)
	runes("importer.id", d.Importer.ID, 1, 35)
	country("importer.country", d.Importer.Country, false)
	country("exporter.country", d.Exporter.Country, false)
	country("dispatch_country", d.DispatchCountry, false)
	switch d.TransportMode {
	case "", "sea", "air", "road", "rail", "post", "fixed", "inland_water":
	default:
		bad("transport_mode %q", d.TransportMode)
	}
	if !isUpper(d.Currency, 3) {
		bad("currency %q is not 3 capital letters", d.Currency)
	}
	if n := len(d.Items); n < 1 || n > 999 {
		bad("%d items, want 1-999", n)
	}
	lines := map[int]bool{}
	for i := range d.Items {
		it := &d.Items[i]
		f := fmt.Sprintf("items[%d].", i)
		if it.Line < 1 {
			bad("%sline %d is not >= 1", f, it.Line)
		}
		if lines[it.Line] {
			bad("%sline %d appears twice", f, it.Line)
		}
		lines[it.Line] = true
		if n := len(it.HSCode); n < 6 || n > 10 || !allDigits(it.HSCode) {
			bad("%shs_code %q is not 6-10 digits", f, it.HSCode)
		}
		runes(f+"description", it.Description, 0, 512)
		country(f+"origin", it.Origin, true)
		finite(f+"quantity", it.Quantity, false)
		finite(f+"gross_mass_kg", it.GrossMassKg, true)
		finite(f+"net_mass_kg", it.NetMassKg, false)
		finite(f+"customs_value", it.CustomsValue, false)
		finite(f+"duties", it.Duties, false)
	}
}

// checkOutcome is checkDeclaration for outcomes (outcome.md).
func checkOutcome(t *testing.T, o *Outcome) {
	t.Helper()
	if o.Schema != "" && o.Schema != "outcome/v1" {
		t.Fatalf("accepted outcome with schema %q", o.Schema)
	}
	if n := len(o.DeclarationID); n < 1 || n > 64 || !utf8.ValidString(o.DeclarationID) {
		t.Fatalf("accepted outcome with declaration_id %q", o.DeclarationID)
	}
	if o.InspectedAt.IsZero() {
		t.Fatal("accepted outcome without inspected_at")
	}
	if math.IsNaN(o.Revenue) || math.IsInf(o.Revenue, 0) || o.Revenue < 0 {
		t.Fatalf("accepted outcome with revenue %g", o.Revenue)
	}
	if o.ItemLine < 0 {
		t.Fatalf("accepted outcome with item_line %d", o.ItemLine)
	}
}

// The edges of every range in the spec: the last accepted value is
// accepted, and the first refused one is refused with a reason that names
// the field.
func TestDecodeBoundaries(t *testing.T) {
	const item = `{"line":%s,"hs_code":"%s","origin":"CN","gross_mass_kg":%s,"customs_value":%s,"quantity":%s,"net_mass_kg":%s,"duties":%s,"description":"%s"}`
	type it struct{ line, hs, gross, value, qty, net, duties, desc string }
	ok := it{"1", "851713", "5", "100", "1", "1", "1", ""}
	doc := func(id, office, importer string, items ...it) []byte {
		var s []string
		for _, x := range items {
			s = append(s, fmt.Sprintf(item, x.line, x.hs, x.gross, x.value, x.qty, x.net, x.duties, x.desc))
		}
		return []byte(fmt.Sprintf(`{"id":%q,"lodged_at":"2026-11-02T09:14:05Z","office":%q,"importer":{"id":%q},"currency":"USD","items":[%s]}`,
			id, office, importer, strings.Join(s, ",")))
	}
	accept := func(b []byte) *Declaration {
		t.Helper()
		d, err := DecodeDeclaration(b)
		if err != nil {
			t.Fatalf("refused: %v\n%.300s", err, b)
		}
		checkDeclaration(t, d)
		return d
	}
	refuse := func(b []byte, want string) {
		t.Helper()
		_, err := DecodeDeclaration(b)
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q\n%.300s", err, want, b)
		}
	}
	edge := func(mod func(*it)) it { x := ok; mod(&x); return x }

	// Lengths of the header's strings.
	accept(doc(strings.Repeat("é", 64), strings.Repeat("O", 17), strings.Repeat("I", 35), ok))
	refuse(doc(strings.Repeat("é", 65), "O", "I", ok), "id must be 1-64 characters")
	refuse(doc("X", strings.Repeat("O", 18), "I", ok), "office must be 1-17 characters")
	refuse(doc("X", "O", strings.Repeat("I", 36), ok), "importer.id must be 1-35 characters")
	refuse(doc("X", "O", "", ok), "importer.id must be 1-35 characters")

	// Gross mass must be > 0: zero is refused, however it is written.
	refuse(doc("X", "O", "I", edge(func(x *it) { x.gross = "0" })), "items[line 1].gross_mass_kg must be > 0, got 0")
	refuse(doc("X", "O", "I", edge(func(x *it) { x.gross = "0.0e5" })), "items[line 1].gross_mass_kg must be > 0, got 0")
	refuse(doc("X", "O", "I", edge(func(x *it) { x.gross = "-0" })), "items[line 1].gross_mass_kg must be > 0, got -0")
	if d := accept(doc("X", "O", "I", edge(func(x *it) { x.gross = "1e-9" }))); d.Items[0].GrossMassKg != 1e-9 {
		t.Errorf("gross mass 1e-9 read as %g", d.Items[0].GrossMassKg)
	}
	// The other amounts may be 0, not less.
	accept(doc("X", "O", "I", edge(func(x *it) { x.value, x.qty, x.net, x.duties = "0", "0", "0", "0" })))
	for _, f := range []struct {
		name string
		set  func(*it)
	}{
		{"customs_value", func(x *it) { x.value = "-1e-9" }},
		{"quantity", func(x *it) { x.qty = "-1e-9" }},
		{"net_mass_kg", func(x *it) { x.net = "-1e-9" }},
		{"duties", func(x *it) { x.duties = "-1e-9" }},
	} {
		refuse(doc("X", "O", "I", edge(f.set)), "items[line 1]."+f.name+" must be >= 0, got -1e-09")
	}
	// Numbers too large for a float64 are not finite.
	refuse(doc("X", "O", "I", edge(func(x *it) { x.gross = "1e999" })), "items[line 1].gross_mass_kg is not a finite number: 1e999")
	refuse(doc("X", "O", "I", edge(func(x *it) { x.value = "-1e999" })), "items[line 1].customs_value is not a finite number: -1e999")

	// Item lines: 1 to 1e9, unique.
	accept(doc("X", "O", "I", edge(func(x *it) { x.line = "1e9" })))
	refuse(doc("X", "O", "I", edge(func(x *it) { x.line = "0" })), "items[0].line must be >= 1 and <= 1e9, got 0")
	refuse(doc("X", "O", "I", edge(func(x *it) { x.line = "1000000001" })), "items[0].line must be >= 1 and <= 1e9, got 1.000000001e+09")
	refuse(doc("X", "O", "I", ok, edge(func(x *it) { x.line = "2" }), edge(func(x *it) { x.line = "1.0" })), "items: line 1 appears twice")

	// HS codes of 6 to 10 digits; descriptions up to 512 characters.
	accept(doc("X", "O", "I", edge(func(x *it) { x.hs, x.desc = "8517130000", strings.Repeat("ü", 512) })))
	refuse(doc("X", "O", "I", edge(func(x *it) { x.hs = "85171" })), `items[line 1].hs_code must be 6-10 digits, got "85171"`)
	refuse(doc("X", "O", "I", edge(func(x *it) { x.hs = "85171300001" })), `items[line 1].hs_code must be 6-10 digits, got "85171300001"`)

	// At most 999 items.
	many := make([]it, 999)
	for i := range many {
		many[i] = edge(func(x *it) { x.line = fmt.Sprint(i + 1) })
	}
	if d := accept(doc("X", "O", "I", many...)); len(d.Items) != 999 {
		t.Errorf("%d items of 999", len(d.Items))
	}
	refuse(doc("X", "O", "I", append(many, edge(func(x *it) { x.line = "1000" }))...), "items has 1000 items, at most 999 are allowed")
}

// An outcome's revenue may be 0, not less; item_line, when given, is >= 1.
func TestOutcomeBoundaries(t *testing.T) {
	doc := func(extra string) []byte {
		return []byte(`{"declaration_id":"D1","inspected_at":"2026-11-05T10:00:00Z","result":"clean"` + extra + `}`)
	}
	o, err := DecodeOutcome(doc(`,"revenue":0,"item_line":1`))
	if err != nil {
		t.Fatal(err)
	}
	checkOutcome(t, o)
	f := func(extra, want string) {
		t.Helper()
		if _, err := DecodeOutcome(doc(extra)); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", extra, err, want)
		}
	}
	f(`,"revenue":-1e-9`, "revenue must be >= 0, got -1e-09")
	f(`,"revenue":1e999`, "revenue is not a finite number: 1e999")
	f(`,"item_line":0`, "item_line must be an integer >= 1, got 0")
	long := `{"declaration_id":"` + strings.Repeat("x", 65) + `","inspected_at":"2026-11-05T10:00:00Z","result":"clean"}`
	if _, err := DecodeOutcome([]byte(long)); err == nil || err.Error() != "declaration_id must be 1-64 characters" {
		t.Errorf("a 65-character declaration_id: %v", err)
	}
}
