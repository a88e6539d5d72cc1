package declaration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

func TestSpecValidExamples(t *testing.T) {
	lines := readLines(t, "testdata/declarations-valid.jsonl")
	if len(lines) != 3 {
		t.Fatalf("want 3 examples, got %d", len(lines))
	}
	for i, l := range lines {
		d, err := DecodeDeclaration(l)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if d.Type != "import" || len(d.Items) == 0 {
			t.Errorf("line %d: type %q items %d", i+1, d.Type, len(d.Items))
		}
	}
	d, _ := DecodeDeclaration(lines[0])
	it := d.Items[0]
	if d.ID != "GT26IM000123" || d.Importer.ID != "IMP-40211" || it.HS6() != "851713" ||
		it.Quantity != 200 || it.NetMassKg != 48 || !it.HasNetMass || !it.HasDuties || it.CustomsValue != 31000 {
		t.Errorf("decoded fields wrong: %+v", d)
	}
	d3, _ := DecodeDeclaration(lines[2])
	if d3.LodgedAt.UTC().Hour() != 16 || d3.Items[0].Line != 3 || d3.Items[0].CustomsValue != 0 {
		t.Errorf("third example: %+v", d3)
	}
}

// Every invalid example is refused with the reason the spec gives for it.
func TestSpecInvalidExamples(t *testing.T) {
	lines := readLines(t, "testdata/declarations-invalid.jsonl")
	reasons := readLines(t, "testdata/declarations-invalid.reasons")
	if len(lines) != len(reasons) {
		t.Fatalf("%d lines, %d reasons", len(lines), len(reasons))
	}
	for i, l := range lines {
		_, err := DecodeDeclaration(l)
		if err == nil {
			t.Errorf("line %d: accepted, want %q", i+1, reasons[i])
			continue
		}
		want := string(reasons[i])
		want = want[strings.Index(want, ": ")+2:]
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("line %d: got %q, want prefix %q", i+1, err, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	base := `{"id":"X1","lodged_at":"2026-11-02T09:14:05Z","office":"O1","importer":{"id":"I1"},"currency":"USD","items":[%s]}`
	item := `{"line":2,"hs_code":"851713","origin":"CN","gross_mass_kg":5,"customs_value":100%s}`
	f := func(doc, want string) {
		t.Helper()
		_, err := DecodeDeclaration([]byte(doc))
		if err == nil {
			t.Fatalf("%s: accepted, want %q", doc, want)
		}
		if err.Error() != want {
			t.Fatalf("%s:\n got %q\nwant %q", doc, err, want)
		}
	}
	withItem := func(extra string) string {
		return strings.Replace(base, "%s", strings.Replace(item, "%s", extra, 1), 1)
	}
	f(withItem(`,"net_mass_kg":-1`), "items[line 2].net_mass_kg must be >= 0, got -1")
	f(withItem(`,"duties":"ten"`), "items[line 2].duties must be a number")
	f(withItem(`,"quantity":-3`), "items[line 2].quantity must be >= 0, got -3")
	f(strings.Replace(withItem(""), `"customs_value":100`, `"customs_value":-0.5`, 1), "items[line 2].customs_value must be >= 0, got -0.5")
	f(withItem(`,"customs_value":5`), `key "customs_value" appears twice in one object: refused, as readers disagree on which one counts`)
	f(strings.Replace(withItem(""), `"O1"`, "\"O\xff\"", 1), "not valid UTF-8")
	f(withItem(`,"description":"`+strings.Repeat("x", 513)+`"`), "items[line 2].description must be at most 512 characters")
	f(strings.Replace(withItem(""), `"O1"`, `""`, 1), "office must be 1-17 characters")
	f(strings.Replace(withItem(""), `"importer":{"id":"I1"}`, `"importer":{"id":"I1","aeo":"yes"}`, 1), "importer.aeo must be true or false")
	f(strings.Replace(withItem(""), `"importer":{"id":"I1"}`, `"importer":"I1"`, 1), "importer must be an object")
	f(strings.Replace(withItem(""), `"USD"`, `"USD","transport_mode":"ship"`, 1), `transport_mode must be one of sea, air, road, rail, post, fixed, inland_water, got "ship"`)
	f(strings.Replace(withItem(""), `"USD"`, `"USD","dispatch_country":"cn"`, 1), `dispatch_country must be an ISO 3166-1 alpha-2 code, got "cn"`)
	f(strings.Replace(withItem(""), `"line":2`, `"line":1.5`, 1), "items[0].line must be an integer, got 1.5")
	f(strings.Replace(withItem(""), `"line":2,`, ``, 1), "items[0].line is required")
	f(strings.Replace(base, "%s", strings.Repeat(strings.Replace(item, "%s", "", 1)+",", 1000)[:len(strings.Repeat(strings.Replace(item, "%s", "", 1)+",", 1000))-1], 1), "items has 1000 items, at most 999 are allowed")
	f(``, "not valid JSON: empty message")
	if _, err := DecodeDeclaration([]byte(`{"id":"X"`)); err == nil || !strings.HasPrefix(err.Error(), "not valid JSON: ") {
		t.Errorf("truncated JSON: %v", err)
	}
	f(`"str"`, "a declaration must be a JSON object")
	f(strings.Replace(withItem(""), `"O1"`, `"O\x1"`, 1), "not valid JSON: invalid escape sequence at byte 57")
	f(strings.Replace(withItem(""), `"O1"`, `"O\u12"`, 1), "not valid JSON: invalid escape sequence at byte 57")
	f(`null`, "a declaration must be a JSON object")
	f(strings.Replace(withItem(""), `"line":2`, `"line":"2"`, 1), "items[0].line must be a number")
	f(strings.Replace(withItem(""), `{"line":2`, `7,{"line":2`, 1), "items[0] must be an object")
	// A byte-order mark at the start is ignored; byte positions still count
	// it, and anywhere else it is an error.
	const bom = "\xef\xbb\xbf"
	if d, err := DecodeDeclaration([]byte(bom + withItem(""))); err != nil || d.ID != "X1" {
		t.Errorf("with a byte-order mark: %v", err)
	}
	if o, err := DecodeOutcome([]byte(bom + `{"declaration_id":"X1","inspected_at":"2026-11-03T10:00:00Z","result":"clean"}`)); err != nil || o.DeclarationID != "X1" {
		t.Errorf("outcome with a byte-order mark: %v", err)
	}
	f(bom+strings.Replace(withItem(""), `"O1"`, `"O\x1"`, 1), "not valid JSON: invalid escape sequence at byte 60")
	f(bom+bom+withItem(""), "not valid JSON: unexpected '\\ufeff' at byte 3")
}

func TestDecodeOutcome(t *testing.T) {
	o, err := DecodeOutcome([]byte(`{"declaration_id":"D1","importer_id":"I1","inspected_at":"2026-11-05T10:00:00Z","result":"hit","revenue":120.5,"offence":"undervaluation","item_line":2,"extra":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if !o.Hit || o.Revenue != 120.5 || o.ItemLine != 2 || o.ImporterID != "I1" {
		t.Errorf("%+v", o)
	}
	f := func(doc, want string) {
		t.Helper()
		if _, err := DecodeOutcome([]byte(doc)); err == nil || err.Error() != want {
			t.Fatalf("%s: got %v, want %q", doc, err, want)
		}
	}
	f(`{"inspected_at":"2026-11-05T10:00:00Z","result":"hit"}`, "declaration_id is required")
	f(`{"declaration_id":"D1","inspected_at":"yesterday","result":"hit"}`, `inspected_at is not an RFC 3339 timestamp: "yesterday"`)
	f(`{"declaration_id":"D1","inspected_at":"2026-11-05T10:00:00Z","result":"maybe"}`, `result must be "hit" or "clean", got "maybe"`)
	f(`{"declaration_id":"D1","inspected_at":"2026-11-05T10:00:00Z","result":"hit","revenue":-1}`, "revenue must be >= 0, got -1")
	f(`{"declaration_id":"D1","inspected_at":"2026-11-05T10:00:00Z","result":"hit","revenue":"lots"}`, "revenue must be a number")
	f(`[1]`, "an outcome must be a JSON object")
}

// Encoding a decoded declaration and decoding it again gives the same value,
// and every encoder writes valid JSON.
func TestRoundTrip(t *testing.T) {
	for i, l := range readLines(t, "testdata/declarations-valid.jsonl") {
		d, err := DecodeDeclaration(l)
		if err != nil {
			t.Fatal(err)
		}
		d.Items[0].Description = "quote \" backslash \\ newline \n tab \t ctl \x01 bad \xff ünïcode"
		enc := d.AppendJSON(nil)
		d2, err := DecodeDeclaration(enc)
		if err != nil {
			t.Fatalf("line %d: re-decode: %v\n%s", i+1, err, enc)
		}
		if !d2.LodgedAt.Equal(d.LodgedAt) || len(d2.Items) != len(d.Items) || d2.Items[0].GrossMassKg != d.Items[0].GrossMassKg ||
			d2.Importer != d.Importer || d2.Exporter != d.Exporter || d2.Currency != d.Currency {
			t.Errorf("line %d: round trip differs:\n%+v\n%+v", i+1, d, d2)
		}
		if !strings.HasPrefix(d2.Items[0].Description, "quote \" backslash \\ newline \n tab \t ctl \x01 bad \ufffd") {
			t.Errorf("escaping: %q", d2.Items[0].Description)
		}
		a := Assessment{DeclarationID: d.ID, ImporterID: d.Importer.ID, LodgedAt: d.LodgedAt, Score: 12.345, Channel: Yellow,
			SelectedBy: "score", Ruleset: "x@1", Findings: []Finding{{Detector: "d", Rule: "r", ItemLine: 1, Score: 0.5, Points: 12.345, Reason: "a \"b\""}}}
		var m map[string]any
		if err := json.Unmarshal(a.AppendJSON(nil), &m); err != nil {
			t.Fatalf("assessment JSON: %v", err)
		}
		if m["score"].(float64) != 12.35 || m["channel"] != "yellow" || len(m["findings"].([]any)) != 1 {
			t.Errorf("assessment: %v", m)
		}
	}
}

func FuzzDecodeDeclaration(f *testing.F) {
	for _, name := range []string{"testdata/declarations-valid.jsonl", "testdata/declarations-invalid.jsonl"} {
		for _, l := range readLines(f, name) {
			f.Add(l)
		}
	}
	// Seeds at the edges of the spec's ranges, on either side.
	base := `{"id":"X1","lodged_at":"2026-11-02T09:14:05Z","office":"O1","importer":{"id":"I1"},"currency":"USD","items":[{"line":1,"hs_code":"851713","origin":"CN","gross_mass_kg":%s,"customs_value":%s},{"line":%s,"hs_code":"851713","origin":"CN","gross_mass_kg":1,"customs_value":1}]}`
	for _, s := range [][3]string{{"0", "0", "2"}, {"1e-300", "0", "2"}, {"-0", "1", "2"}, {"1e999", "1", "2"}, {"1", "-1e999", "2"}, {"1", "1", "1"}, {"1", "1", "1e9"}, {"1", "1", "0"}} {
		f.Add([]byte(fmt.Sprintf(base, s[0], s[1], s[2])))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDeclaration(b)
		if err != nil {
			if d != nil {
				t.Fatal("declaration and error both returned")
			}
			if err.Error() == "" {
				t.Fatal("empty reason")
			}
			return
		}
		// What is accepted holds the spec's invariants (finite amounts,
		// gross mass > 0, 1-999 items with unique lines, ...).
		checkDeclaration(t, d)
		// A valid declaration re-encodes to a valid declaration with the
		// same items.
		d2, err := DecodeDeclaration(d.AppendJSON(nil))
		if err != nil {
			t.Fatalf("re-encoded declaration refused: %v", err)
		}
		checkDeclaration(t, d2)
		if len(d2.Items) != len(d.Items) || d2.ID != d.ID || !d2.LodgedAt.Equal(d.LodgedAt) {
			t.Fatalf("re-encoded declaration differs: %+v vs %+v", d2, d)
		}
		for i := range d.Items {
			a, b := d.Items[i], d2.Items[i]
			if a.Line != b.Line || a.HSCode != b.HSCode || a.GrossMassKg != b.GrossMassKg || a.CustomsValue != b.CustomsValue {
				t.Fatalf("item %d re-encoded as %+v, was %+v", i, b, a)
			}
		}
	})
}

func FuzzDecodeOutcome(f *testing.F) {
	f.Add([]byte(`{"declaration_id":"D1","inspected_at":"2026-11-05T10:00:00Z","result":"hit","revenue":1}`))
	f.Add([]byte(`{"declaration_id":"D1","importer_id":"I1","inspected_at":"2026-11-05T10:00:00Z","result":"clean","revenue":0,"item_line":1}`))
	f.Add([]byte(`{"declaration_id":"D1","inspected_at":"2026-11-05T10:00:00Z","result":"hit","revenue":-1e-9,"item_line":0}`))
	f.Add([]byte(`{"declaration_id":"D1","inspected_at":"2026-11-05T10:00:00Z","result":"hit","revenue":1e999}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOutcome(b)
		if err == nil {
			checkOutcome(t, o)
			o2, err := DecodeOutcome(o.AppendJSON(nil))
			if err != nil {
				t.Fatalf("re-encoded outcome refused: %v", err)
			}
			a, b := *o, *o2
			a.Schema, b.Schema = "", ""
			if !a.InspectedAt.Equal(b.InspectedAt) {
				t.Fatalf("re-encoded outcome inspected at %v, was %v", b.InspectedAt, a.InspectedAt)
			}
			a.InspectedAt = b.InspectedAt
			if a != b {
				t.Fatalf("re-encoded outcome differs: %+v vs %+v", o2, o)
			}
		}
	})
}

func TestDuplicateKeyInLargeObject(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"id":"X1","lodged_at":"2026-11-02T09:14:05Z","office":"O1","importer":{"id":"I1"},"currency":"USD","items":[{"line":1,"hs_code":"851713","origin":"CN","gross_mass_kg":5,"customs_value":100}]`)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, `,"x%d":1`, i)
	}
	if _, err := DecodeDeclaration([]byte(b.String() + "}")); err != nil {
		t.Fatalf("100 distinct unknown keys refused: %v", err)
	}
	if _, err := DecodeDeclaration([]byte(b.String() + `,"x77":2}`)); err == nil || !strings.Contains(err.Error(), `"x77" appears twice`) {
		t.Fatalf("duplicate among many keys: %v", err)
	}
}
