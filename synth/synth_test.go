package synth

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/riskmon/riskmon/declaration"
)

func generate(t *testing.T, n int, seed uint64) (d, o, tr []byte) {
	t.Helper()
	var db, ob, tb bytes.Buffer
	if err := Write(Options{Count: n, Seed: seed}, Writers{Declarations: &db, Outcomes: &ob, Truth: &tb}); err != nil {
		t.Fatal(err)
	}
	return db.Bytes(), ob.Bytes(), tb.Bytes()
}

func TestSameSeedSameBytes(t *testing.T) {
	d1, o1, t1 := generate(t, 3000, 5)
	d2, o2, t2 := generate(t, 3000, 5)
	d3, _, _ := generate(t, 3000, 6)
	if sha256.Sum256(d1) != sha256.Sum256(d2) || !bytes.Equal(o1, o2) || !bytes.Equal(t1, t2) {
		t.Fatal("same seed gave different bytes")
	}
	if bytes.Equal(d1, d3) {
		t.Fatal("different seeds gave the same stream")
	}
}

// Every generated record is valid per the spec; declarations come in
// lodgement order; outcomes are a small sample dated after lodgement, in
// arrival order; every planted pattern and look-alike is present.
func TestStream(t *testing.T) {
	d, o, tr := generate(t, 20000, 1)
	lodged := map[string]declaration.Declaration{}
	var prev declaration.Declaration
	multi, aeo, hub := 0, 0, 0
	for i, l := range bytes.Split(bytes.TrimSpace(d), []byte("\n")) {
		dd, err := declaration.DecodeDeclaration(l)
		if err != nil {
			t.Fatalf("declaration %d invalid: %v\n%s", i+1, err, l)
		}
		if dd.LodgedAt.Before(prev.LodgedAt) {
			t.Fatalf("declaration %d lodged before the previous one", i+1)
		}
		prev = *dd
		lodged[dd.ID] = *dd
		if len(dd.Items) > 1 {
			multi++
		}
		if dd.Importer.AEO {
			aeo++
		}
		if dd.DispatchCountry != "" && dd.DispatchCountry != dd.Items[0].Origin {
			hub++
		}
	}
	if len(lodged) != 20000 || multi < 4000 || aeo < 200 || hub < 500 {
		t.Errorf("declarations %d, multi-item %d, AEO %d, dispatched via a third country %d", len(lodged), multi, aeo, hub)
	}
	offences := map[string]int{}
	hits := 0
	for i, l := range bytes.Split(bytes.TrimSpace(tr), []byte("\n")) {
		oc, err := declaration.DecodeOutcome(l)
		if err != nil {
			t.Fatalf("truth %d invalid: %v", i+1, err)
		}
		if oc.Hit {
			hits++
			offences[oc.Offence]++
			if oc.Revenue <= 0 && oc.Offence != Misclassification {
				t.Errorf("hit %s (%s) without revenue", oc.DeclarationID, oc.Offence)
			}
		}
	}
	for _, off := range []string{Undervaluation, Misclassification, Origin, Quantity, Splitting, MissingTrader, Error} {
		if offences[off] == 0 {
			t.Errorf("no %s planted in 20000 declarations: %v", off, offences)
		}
	}
	if rate := float64(hits) / 20000; rate < 0.02 || rate > 0.08 {
		t.Errorf("hit rate %.3f outside 2-8 %%", rate)
	}
	var last string
	n := 0
	for _, l := range bytes.Split(bytes.TrimSpace(o), []byte("\n")) {
		oc, err := declaration.DecodeOutcome(l)
		if err != nil {
			t.Fatal(err)
		}
		n++
		dd, ok := lodged[oc.DeclarationID]
		if !ok || !oc.InspectedAt.After(dd.LodgedAt) || oc.ImporterID != dd.Importer.ID {
			t.Fatalf("outcome %s does not follow its declaration", oc.DeclarationID)
		}
		ts := oc.InspectedAt.Format("2006-01-02T15:04:05")
		if ts < last {
			t.Fatal("outcomes not in inspected_at order")
		}
		last = ts
	}
	if n < 400 || n > 800 {
		t.Errorf("%d outcomes for a 3 %% sample of 20000", n)
	}
}

// Misclassification swaps to a lower-duty heading of the catalog.
func TestCatalog(t *testing.T) {
	for i, c := range catalog {
		if c.lowDuty >= 0 && catalog[c.lowDuty].duty >= c.duty {
			t.Errorf("%s: lower-duty heading %s has duty %g >= %g", c.hs, catalog[c.lowDuty].hs, catalog[c.lowDuty].duty, c.duty)
		}
		if len(c.origins) != len(c.oweights) || len(c.hs) != 10 || strings.Trim(c.hs, "0123456789") != "" {
			t.Errorf("catalog entry %d malformed", i)
		}
	}
}

// With Importers, the stream names about that many distinct importers (the
// population, each lodging at least once, and the few missing traders on
// top), the same seed gives the same bytes, and the world keeps its planted
// patterns and hit rate.
func TestImporters(t *testing.T) {
	const n, importers = 12000, 5000
	gen := func(seed uint64) (d, tr []byte) {
		var db, tb bytes.Buffer
		if err := Write(Options{Count: n, Seed: seed, Importers: importers, Days: 365}, Writers{Declarations: &db, Truth: &tb}); err != nil {
			t.Fatal(err)
		}
		return db.Bytes(), tb.Bytes()
	}
	d1, t1 := gen(3)
	d2, t2 := gen(3)
	d3, _ := gen(4)
	if !bytes.Equal(d1, d2) || !bytes.Equal(t1, t2) {
		t.Fatal("same seed gave different bytes")
	}
	if bytes.Equal(d1, d3) {
		t.Fatal("different seeds gave the same stream")
	}
	perImporter := map[string]int{}
	var first, last declaration.Declaration
	for i, l := range bytes.Split(bytes.TrimSpace(d1), []byte("\n")) {
		dd, err := declaration.DecodeDeclaration(l)
		if err != nil {
			t.Fatalf("declaration %d invalid: %v\n%s", i+1, err, l)
		}
		if i == 0 {
			first = *dd
		}
		last = *dd
		perImporter[dd.Importer.ID]++
	}
	if got := len(perImporter); got < importers || got > importers+n/1000 {
		t.Errorf("%d distinct importers, want %d and the missing traders (about %d)", got, importers, n/1500)
	}
	once := 0
	for _, k := range perImporter {
		if k == 1 {
			once++
		}
	}
	if once < importers/3 || once > importers*9/10 {
		t.Errorf("%d of %d importers lodge once: the tail should hold most of them, not all", once, len(perImporter))
	}
	if span := last.LodgedAt.Sub(first.LodgedAt); span < 360*24*time.Hour || span > 365*24*time.Hour {
		t.Errorf("stream spans %v, want about 365 days", span)
	}
	offences := map[string]int{}
	hits := 0
	for _, l := range bytes.Split(bytes.TrimSpace(t1), []byte("\n")) {
		oc, err := declaration.DecodeOutcome(l)
		if err != nil {
			t.Fatal(err)
		}
		if oc.Hit {
			hits++
			offences[oc.Offence]++
		}
	}
	for _, off := range []string{Undervaluation, Misclassification, Origin, Quantity, Splitting, MissingTrader, Error} {
		if offences[off] == 0 {
			t.Errorf("no %s planted: %v", off, offences)
		}
	}
	if rate := float64(hits) / n; rate < 0.02 || rate > 0.08 {
		t.Errorf("hit rate %.3f outside 2-8 %%", rate)
	}
	// Too few declarations for one each is refused before anything is written.
	var db bytes.Buffer
	err := Write(Options{Count: 1000, Seed: 1, Importers: 1000}, Writers{Declarations: &db})
	if err == nil || db.Len() != 0 {
		t.Errorf("1000 importers in 1000 declarations: err %v, %d bytes written", err, db.Len())
	}
}
