package declaration

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// agreeWithStdlib fails t unless riskmon's scanner agrees with Go's
// encoding/json on b: it refuses as "not valid JSON" exactly what
// json.Valid refuses (white space, literals, numbers, strings, escapes,
// nesting), and a declaration it accepts has the field values that
// encoding/json reads (strings unescaped alike, numbers to the same bits).
func agreeWithStdlib(t *testing.T, b []byte) {
	t.Helper()
	d, err := DecodeDeclaration(b)
	if !utf8.Valid(b) {
		if err == nil || ErrorKind(err) != "utf8" {
			t.Fatalf("%q: invalid UTF-8, got %v", b, err)
		}
		return
	}
	notJSON := err != nil && strings.HasPrefix(err.Error(), "not valid JSON")
	valid := json.Valid(b)
	switch {
	case valid && notJSON && !strings.Contains(err.Error(), "nested too deep"):
		t.Fatalf("%q: encoding/json accepts it, riskmon says %v", b, err)
	case !valid && !notJSON:
		t.Fatalf("%q: encoding/json refuses it, riskmon says %v", b, err)
	case d == nil:
		return
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%q: accepted, but encoding/json: %v", b, err)
	}
	same := func(field string, got string, want any) {
		t.Helper()
		w, _ := want.(string)
		if got != w {
			t.Fatalf("%q: %s is %q, encoding/json reads %q", b, field, got, w)
		}
	}
	num := func(field string, got float64, want any) {
		t.Helper()
		w, _ := want.(float64)
		if math.Float64bits(got) != math.Float64bits(w) {
			t.Fatalf("%q: %s is %v, encoding/json reads %v", b, field, got, w)
		}
	}
	same("id", d.ID, m["id"])
	same("office", d.Office, m["office"])
	imp, _ := m["importer"].(map[string]any)
	same("importer.id", d.Importer.ID, imp["id"])
	items, _ := m["items"].([]any)
	if len(items) != len(d.Items) {
		t.Fatalf("%q: %d items, encoding/json reads %d", b, len(d.Items), len(items))
	}
	for i, v := range items {
		it, _ := v.(map[string]any)
		same("hs_code", d.Items[i].HSCode, it["hs_code"])
		if s, ok := it["description"].(string); ok {
			same("description", d.Items[i].Description, s)
		}
		num("gross_mass_kg", d.Items[i].GrossMassKg, it["gross_mass_kg"])
		num("customs_value", d.Items[i].CustomsValue, it["customs_value"])
	}
}

const scanBase = `{"id":"X1","lodged_at":"2026-11-02T09:14:05Z","office":"O1","importer":{"id":"I1"},"currency":"USD","items":[{"line":1,"hs_code":"851713","origin":"CN","gross_mass_kg":61.5,"customs_value":31000,"description":"smartphones"}]}`

// Hand-picked edges of the grammar, each as a whole declaration.
func TestScannerEdges(t *testing.T) {
	repl := func(old, new string) []byte { return []byte(strings.Replace(scanBase, old, new, 1)) }
	cases := [][]byte{
		[]byte(scanBase),
		[]byte(" \t\r\n" + scanBase + " \n"),
		[]byte(strings.ReplaceAll(scanBase, ":", " : ")),
		[]byte(strings.ReplaceAll(scanBase, ",", " ,\n")),
		repl(`"smartphones"`, `"a\"b\\c\/d\b\f\n\r\t"`),
		repl(`"smartphones"`, `"\u00e9\u20AC\ud83d\ude00"`), // é € and a surrogate pair
		repl(`"smartphones"`, `"\ud83d"`),                   // a lone surrogate
		repl(`"smartphones"`, `"\ud83dx"`),
		repl(`"smartphones"`, `"\udc00\ud83d"`),
		repl(`"smartphones"`, `"\ud83d\u0041"`),
		repl(`"smartphones"`, `"tab	inside"`),
		repl(`"smartphones"`, `"\x"`),
		repl(`"smartphones"`, `"\u12g4"`),
		repl(`"smartphones"`, `"unterminated`),
		repl("61.5", "6.15e1"), repl("61.5", "6.15E+1"), repl("61.5", "615e-1"), repl("61.5", "0.615e2"),
		repl("61.5", "1e-320"), repl("61.5", "0.30000000000000004"), repl("61.5", "123456789012345678901234567890"),
		repl("61.5", "9007199254740993"), repl("61.5", "0.1000000000000000055511151231257827"),
		repl("61.5", "01"), repl("61.5", "1."), repl("61.5", ".5"), repl("61.5", "+1"), repl("61.5", "-"),
		repl("61.5", "1e"), repl("61.5", "1e+"), repl("61.5", "0x10"), repl("61.5", "NaN"), repl("61.5", "-0"),
		repl("61.5", "Infinity"), repl("61.5", "1e999"),
		repl(`"office"`, `"o\u0066fice"`), // an escaped key is the same key
		repl(`"currency"`, `"extra":{"a":[1,{"b":null}],"c":true},"currency"`),
		repl(`"currency"`, `"extra":{"a":1,"a":2},"currency"`), // a repeat in an unknown object
		repl(`"currency"`, `"extra":tru,"currency"`),
		repl(`"currency"`, `"extra":nul,"currency"`),
		repl(`"currency"`, `"extra":[1,],"currency"`),
		repl(`"currency"`, `"extra":{"a":1,},"currency"`),
		repl(`"currency"`, `"extra":{,},"currency"`),
		repl(`"currency"`, `"extra" 1,"currency"`),
		repl(`"currency"`, `"extra":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]],"currency"`),
		[]byte(scanBase + "x"), []byte(scanBase + "{}"), []byte(scanBase[:len(scanBase)-1]),
		[]byte(`{}`), []byte(`[]`), []byte(`1`), []byte(`"x"`), []byte(`{"a"}`), []byte(`{"a":}`),
		[]byte(`{"id":"X1",}`), []byte(`{1:2}`), []byte("{\"id\":\"X1\"}\x00"),
	}
	for _, c := range cases {
		agreeWithStdlib(t, c)
	}
	// The specific readings, beyond agreement.
	d, err := DecodeDeclaration(repl(`"smartphones"`, `"\ud83d\u0041"`))
	if err != nil || d.Items[0].Description != "\ufffdA" {
		t.Errorf("lone high surrogate before \\u0041: %q, %v", d.Items[0].Description, err)
	}
	if _, err := DecodeDeclaration(repl(`"office":"O1"`, `"o\u0066fice":"O1","office":"O2"`)); err == nil || ErrorKind(err) != "duplicate_key" {
		t.Errorf("an escaped key equal to a later key: %v", err)
	}
	if _, err := DecodeDeclaration(repl(`"currency"`, `"extra":{"a":1,"a":2},"currency"`)); err == nil || ErrorKind(err) != "duplicate_key" {
		t.Errorf("a repeated key in an unknown object: %v", err)
	}
	deep := strings.Repeat("[", maxDepth+5) + strings.Repeat("]", maxDepth+5)
	if _, err := DecodeDeclaration(repl(`"currency"`, `"extra":`+deep+`,"currency"`)); err == nil || !strings.Contains(err.Error(), "nested too deep") {
		t.Errorf("nesting past %d: %v", maxDepth, err)
	}
}

// Random damage to valid declarations (bytes replaced, dropped, doubled,
// JSON's own punctuation inserted): riskmon and encoding/json agree on every
// one. Deterministic, so that CI runs the same cases each time; the fuzz
// target below explores further.
func TestScannerAgreesOnDamagedInput(t *testing.T) {
	seeds := readLines(t, "testdata/declarations-valid.jsonl")
	seeds = append(seeds, []byte(scanBase))
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("{}[]:,\"\\ -+.eE0123456789tfnulrasx\t\n/u")
	n := 20000
	if testing.Short() {
		n = 2000
	}
	refused := 0
	for i := 0; i < n; i++ {
		b := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for k := 1 + rng.IntN(3); k > 0; k-- {
			p := rng.IntN(len(b))
			switch rng.IntN(4) {
			case 0:
				b[p] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				b = append(b[:p], b[p+1:]...)
			case 2:
				b = append(b[:p], append([]byte{b[p]}, b[p:]...)...)
			case 3:
				b = append(b[:p], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[p:]...)...)
			}
		}
		if !json.Valid(b) {
			refused++
		}
		agreeWithStdlib(t, b)
	}
	// The damage must reach both sides of the line for the agreement to mean
	// anything.
	if refused < n/4 || refused > n*3/4 {
		t.Fatalf("%d of %d damaged inputs are invalid JSON: the damage is too weak or too strong to test anything", refused, n)
	}
}

func FuzzScanner(f *testing.F) {
	for _, l := range readLines(f, "testdata/declarations-valid.jsonl") {
		f.Add(l)
	}
	f.Add([]byte(scanBase))
	f.Fuzz(func(t *testing.T, b []byte) { agreeWithStdlib(t, b) })
}

// parseNumber's fast path gives strconv's bits for every decimal it takes.
func TestParseNumberExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		var s string
		switch i % 3 {
		case 0:
			s = strconv.FormatFloat(rng.Float64()*math.Pow(10, float64(rng.IntN(12))), 'f', rng.IntN(8), 64)
		case 1:
			s = strconv.Itoa(rng.IntN(1_000_000_000_000)) + "." + strconv.Itoa(rng.IntN(1000))
		default:
			s = "-0." + strings.Repeat("0", rng.IntN(10)) + strconv.Itoa(1+rng.IntN(99999))
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseNumber([]byte(s)); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: got %v, strconv %v", s, got, want)
		}
	}
}
