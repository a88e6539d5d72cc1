package detectors

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
)

// build parses a configuration and builds its detectors on a fresh store.
func build(t *testing.T, yml string) []Detector {
	return buildOn(t, yml, NewStore(32, 32), nil)
}

// buildOn is build on the given store and shared table (nil: their own).
func buildOn(t *testing.T, yml string, store *Store, shared *Table) []Detector {
	t.Helper()
	c, err := config.Parse([]byte(yml), "test")
	if err != nil {
		t.Fatal(err)
	}
	dets, err := Build(c, &Env{Config: c, Store: store, Shared: shared})
	if err != nil {
		t.Fatal(err)
	}
	return dets
}

// evictRecord writes records of size bytes (the size class of key's
// record) to store until the clock evicts key's record; it looks the
// record up without marking it used.
func evictRecord(t *testing.T, store *Store, key []byte, size int) {
	t.Helper()
	held := func() bool {
		r := store.ents.ref(key)
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		return r.s.find(r.h) >= 0
	}
	for i := 0; held(); i++ {
		if i == 2_000_000 {
			t.Fatal("the record was never evicted")
		}
		store.Set([]byte(fmt.Sprint("other-", i)), make([]byte, size))
	}
}

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func decl(id string, at time.Time, items ...declaration.Item) *declaration.Declaration {
	for i := range items {
		if items[i].Line == 0 {
			items[i].Line = i + 1
		}
	}
	return &declaration.Declaration{ID: id, LodgedAt: at, Office: "GTSTO01", Currency: "USD", Type: "import",
		Importer: declaration.Importer{ID: "IMP-1"}, Exporter: declaration.Exporter{ID: "EXP-1", Country: "CN"},
		DispatchCountry: "CN", TransportMode: "sea", Items: items}
}

func item(hs, origin string, kg, value float64) declaration.Item {
	return declaration.Item{HSCode: hs, Origin: origin, GrossMassKg: kg, CustomsValue: value}
}

func score(d Detector, dd *declaration.Declaration) []Finding { return d.Score(dd, nil) }

const profileCfg = `
name: t
lists:
  watch: [IMP-9]
  hubs: [VN, MY]
detectors:
  - name: p
    kind: profile
    weight: 20
    params:
      profiles:
        - id: WATCH
          reason: watched importer
          match: {importer: ["list:watch"]}
          channel: red
        - id: PHONES-2026
          reason: cheap phones
          instruction: open the boxes
          valid_from: 2026-02-01
          valid_to: 2026-03-31
          match: {hs_prefix: ["851713"], unit_value_kg: {max: 100}, currency: [USD]}
          points: 40
        - id: ROUTED
          reason: steel re-routed
          match: {hs_prefix: ["72"], origin: ["list:hubs"], origin_not_dispatch: true}
          except: {office: [GTPBA02]}
        - id: DUTY
          reason: duty ratio too low for spirits
          match: {hs_prefix: ["2208"], duty_ratio: {max: 0.1}, aeo: false, transport_mode: [sea]}
`

func TestProfile(t *testing.T) {
	p := build(t, profileCfg)[0]
	f := func(name string, d *declaration.Declaration, want string) {
		t.Helper()
		var got []string
		for _, fd := range score(p, d) {
			s := fd.Rule
			if fd.HasForce {
				s += "!" + fd.Force.String()
			}
			got = append(got, fmt.Sprintf("%s@%d:%g", s, fd.ItemLine, fd.Weight))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: fired %q, want %q", name, strings.Join(got, " "), want)
		}
	}
	phone := item("8517130000", "CN", 10, 500) // 50 USD/kg
	f("cheap phone in window", decl("D1", t0, phone), "PHONES-2026@1:40")
	f("cheap phone before window", decl("D2", time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC), phone), "")
	f("cheap phone on last day", decl("D3", time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC), phone), "PHONES-2026@1:40")
	f("cheap phone after window", decl("D4", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), phone), "")
	f("dear phone", decl("D5", t0, item("8517130000", "CN", 1, 500)), "")
	krw := decl("D5K", t0, phone)
	krw.Currency = "KRW"
	f("cheap phone in another currency", krw, "")
	// A currency no declaration can have is refused, not left never to match.
	bad := strings.Replace(profileCfg, "currency: [USD]", "currency: [usd, US]", 1)
	if _, err := config.Parse([]byte(bad), "bad"); err == nil || !strings.Contains(err.Error(), `match.currency[0]: must be a 3-letter ISO 4217 code in capitals, got "usd"`) ||
		!strings.Contains(err.Error(), `match.currency[1]`) {
		t.Errorf("profile currency [usd, US]: %v", err)
	}
	w := decl("D6", t0, item("9503000000", "CN", 10, 100))
	w.Importer.ID = "IMP-9"
	f("watched importer forces red", w, "WATCH!red@1:20")
	steel := decl("D7", t0, item("9503000000", "CN", 10, 100), item("7208510000", "VN", 1000, 800), item("7210490000", "MY", 1000, 900))
	f("re-routed steel, items 2 and 3", steel, "ROUTED@2:20")
	if r := score(p, steel)[0].Reason; !strings.Contains(r, "(items 2, 3)") {
		t.Errorf("reason %q does not list the items", r)
	}
	steel.Office = "GTPBA02"
	f("except office", steel, "")
	steel.Office, steel.DispatchCountry = "GTSTO01", "VN"
	f("dispatched from the origin", steel, "ROUTED@3:20") // item 3 (MY) still differs from VN
	rum := item("2208400000", "GT", 100, 1000)
	rum.Duties, rum.HasDuties = 50, true
	f("low duty ratio", decl("D8", t0, rum), "DUTY@1:20")
	rum.Duties = 400
	f("normal duty ratio", decl("D9", t0, rum), "")
	rum.HasDuties = false
	f("duty not declared", decl("D10", t0, rum), "")
	aeo := decl("D11", t0, item("2208400000", "GT", 100, 1000))
	aeo.Items[0].HasDuties = true
	aeo.Importer.AEO = true
	f("AEO excluded", aeo, "")
}

// unit_value: silent on a cold start, silent on honest prices, fires on a
// planted undervaluation with the numbers in the reason, and backs off to
// the HS6 when the origin has too few peers.
func TestUnitValue(t *testing.T) {
	uv := build(t, "name: t\ndetectors: [{name: uv, kind: unit_value, params: {min_peers: 30}}]\n")[0]
	at := t0
	train := func(n int, origin string, perKg float64) (fired int) {
		for i := 0; i < n; i++ {
			// prices spread +-20 % around perKg
			p := perKg * (1 + 0.2*float64(i%11-5)/5)
			d := decl(fmt.Sprintf("T%d", i), at, item("6403990000", origin, 100, 100*p))
			if len(score(uv, d)) > 0 {
				fired++
			}
			uv.Learn(d, nil)
			at = at.Add(time.Minute)
		}
		return fired
	}
	if n := train(200, "CN", 40); n > 0 {
		t.Errorf("fired %d times on honest prices", n)
	}
	low := decl("L1", at, item("6403990000", "CN", 100, 100*8)) // 8 USD/kg, a fifth of the median
	fs := score(uv, low)
	if len(fs) != 1 || fs[0].Score < 0.9 || fs[0].ItemLine != 1 {
		t.Fatalf("undervaluation: %+v", fs)
	}
	want := regexp.MustCompile(`^unit value 8\.00 USD/kg is \d+\.\d robust deviations below the (39|40)\.\d USD/kg median for HS 640399 from CN \(200 peers\)$`)
	if !want.MatchString(fs[0].Reason) {
		t.Errorf("reason %q does not match %s", fs[0].Reason, want)
	}
	high := decl("H1", at, item("6403990000", "CN", 100, 100*400))
	if fs := score(uv, high); len(fs) != 1 || !strings.Contains(fs[0].Reason, "above") || fs[0].Score > 0.6 {
		t.Errorf("over-valuation (strength capped by high_factor 0.6): %+v", fs)
	}
	// A new origin has no peers of its own: the HS6 across origins is used.
	vn := decl("V1", at, item("6403990000", "VN", 100, 100*8))
	if fs := score(uv, vn); len(fs) != 1 || !strings.Contains(fs[0].Reason, "HS 640399 (all origins)") {
		t.Errorf("back-off to HS6: %+v", fs)
	}
	// A commodity never seen: no history, no finding.
	if fs := score(uv, decl("N1", at, item("9503000000", "CN", 100, 1))); len(fs) != 0 {
		t.Errorf("cold start fired: %+v", fs)
	}
	// Scoring does not learn: scoring the same declaration twice gives the same result.
	a, b := score(uv, low), score(uv, low)
	if a[0].Reason != b[0].Reason {
		t.Errorf("Score changed state: %q vs %q", a[0].Reason, b[0].Reason)
	}
	// Its measurements for the model: the same deviation as the finding's,
	// the peer count, and nothing for a commodity never seen; a price within
	// the spread is measured although nothing fires.
	m := uv.(Measurer)
	if names := m.Measures(); len(names) != 3 || names[0].Name != "price_z" {
		t.Fatalf("measures %+v", names)
	}
	out := make([]float64, 3)
	m.Measure(low, out)
	z := regexp.MustCompile(`is (\d+\.\d) robust`).FindStringSubmatch(fs[0].Reason)
	if fmt.Sprintf("%.1f", -out[0]) != z[1] || math.Abs(out[1]-math.Log1p(200)) > 1e-9 || math.IsNaN(out[2]) {
		t.Errorf("measures of the undervalued item: %v, finding %q", out, fs[0].Reason)
	}
	m.Measure(decl("N2", at, item("9503000000", "CN", 100, 1)), out)
	if !math.IsNaN(out[0]) || out[1] != 0 {
		t.Errorf("measures of a commodity never seen: %v", out)
	}
	fair := decl("F1", at, item("6403990000", "CN", 100, 100*36))
	m.Measure(fair, out)
	if len(score(uv, fair)) != 0 || math.IsNaN(out[0]) || out[0] > 0 || out[0] < -1.5 {
		t.Errorf("a fair price: measured %v, findings %+v", out, score(uv, fair))
	}
}

// Baselines bounded below what the stream needs: an evicted peer group means
// "no history", so the detector goes quiet rather than calling everything
// anomalous.
func TestUnitValueEviction(t *testing.T) {
	c, _ := config.Parse([]byte("name: t\ndetectors: [{name: uv, kind: unit_value, params: {min_peers: 5, importer_min: 0}}]\n"), "t")
	peers := NewTable(64) // one entry per shard
	dets, _ := Build(c, &Env{Config: c, Store: NewStore(32, 32), Shared: peers})
	uv := dets[0]
	for i := 0; i < 50; i++ {
		uv.Learn(decl("T", t0, item("6403990000", "CN", 100, 4000)), nil)
	}
	if fs := score(uv, decl("L", t0, item("6403990000", "CN", 100, 1))); len(fs) != 1 {
		t.Fatalf("no finding before eviction: %+v", fs)
	}
	for i := 0; i < 2000; i++ { // other goods push the shoes' groups out
		uv.Learn(decl("O", t0, item(fmt.Sprintf("%06d0000", 100000+i), "CN", 100, 4000)), nil)
	}
	if n := peers.Len(); n > 64 {
		t.Errorf("%d groups held, cap 64", n)
	}
	if fs := score(uv, decl("L", t0, item("6403990000", "CN", 100, 1))); len(fs) != 0 {
		t.Errorf("fired after eviction: %+v", fs)
	}
}

// A record that Score read and the store then lost (evicted at its cap by
// other writes before Learn) is not written back from what Score kept:
// Learn reads again, finds nothing and starts afresh, as it did before
// detectors kept their reads (scoreRead).
func TestLearnAfterEvictionReadsAgain(t *testing.T) {
	store := NewStore(1, 32)
	bf := buildOn(t, "name: t\ndetectors: [{name: bf, kind: benford}]\n", store, nil)[0].(*benford)
	d := decl("D", t0, item("6403990000", "CN", 100, 4000)) // first digit 4
	for range 40 {
		bf.Learn(d, nil)
	}
	key := bf.key(nil, d)
	bf.Score(d, nil)
	evictRecord(t, store, key, 14)
	bf.Learn(d, nil)
	v, _ := store.Get(nil, key)
	if digits, ok := decodeDigits(v); !ok || digits[3] != 1 {
		t.Errorf("Learn after the record was evicted left counts %v (ok %v), want one 4: afresh", digits, ok)
	}
}

// The same for unit_value's running mean of the importer's deviations: lost
// between Score and Learn, it starts afresh from the declaration's own.
func TestUnitValueLearnAfterEvictionReadsAgain(t *testing.T) {
	store := NewStore(1, 32)
	uv := buildOn(t, "name: t\ndetectors: [{name: uv, kind: unit_value, params: {min_peers: 5, importer_min: 1}}]\n", store, nil)[0].(*unitValue)
	for range 10 {
		uv.Learn(decl("T", t0, item("6403990000", "CN", 100, 4000)), nil)
	}
	d := decl("L", t0, item("6403990000", "CN", 100, 1000)) // far below its peers
	if _, n := uv.importerMean(d); n < 2 {
		t.Fatalf("running mean over %d items before: the test needs some", n)
	}
	uv.Score(d, nil)
	evictRecord(t, store, uv.importerKey(nil, d), 13)
	uv.Learn(d, nil)
	if mean, n := uv.importerMean(d); n != 1 || mean != -6 {
		t.Errorf("running mean %v over %d items after the record was evicted, want -6 (the declaration's own, clamped) over 1", mean, n)
	}
}

// And for the reference groups unit_value's Learn takes from Score: when an
// earlier item's update drops (at the shared table's cap) the group a later
// item was measured against, Learn measures that item again, against the
// coarser group it now falls back to, as it would without what Score kept.
func TestUnitValueLearnAfterDropReadsAgain(t *testing.T) {
	tab := NewTable(64) // one entry a shard
	uv := buildOn(t, "name: t\ndetectors: [{name: uv, kind: unit_value, params: {min_peers: 5, importer_min: 1}}]\n", NewStore(32, 32), tab)[0].(*unitValue)
	shard := func(hs, origin string, level int) *tableShard {
		it := item(hs, origin, 100, 1)
		ms := uv.measures(&it, &[2]measure{})
		g := uv.groups(nil, decl("K", t0, it), &it, &ms[0])
		return tab.shardOf(xxhash.Sum64(g.level(level)))
	}
	// B's groups (its HS6 from CN, from VN, all origins, its HS4) each in a
	// shard of its own; A's finest group in the shard of B's from CN, A's
	// coarser ones elsewhere.
	var hsA, hsB string
	for b := 0; hsB == "" && b < 10000; b++ {
		h := fmt.Sprintf("%06d0000", 100000+b)
		s := []*tableShard{shard(h, "CN", 0), shard(h, "VN", 0), shard(h, "CN", 1), shard(h, "CN", 2)}
		if s[0] != s[1] && s[0] != s[2] && s[0] != s[3] && s[1] != s[2] && s[1] != s[3] && s[2] != s[3] {
			hsB = h
		}
	}
	for a := 0; hsA == "" && a < 100000; a++ {
		h := fmt.Sprintf("%06d0000", 500000+a)
		if shard(h, "CN", 0) == shard(hsB, "CN", 0) && shard(h, "CN", 1) != shard(hsB, "CN", 1) && shard(h, "CN", 2) != shard(hsB, "CN", 1) &&
			shard(h, "CN", 1) != shard(hsB, "CN", 2) && shard(h, "CN", 2) != shard(hsB, "CN", 2) {
			hsA = h
		}
	}
	if hsA == "" || hsB == "" {
		t.Fatal("no HS codes with the shards the test needs")
	}
	// B from CN at 40/kg, from VN at 10/kg: the CN group's median is 40,
	// all origins' lies between.
	for range 10 {
		uv.Learn(decl("T", t0, item(hsB, "CN", 100, 4000)), nil)
		uv.Learn(decl("T", t0, item(hsB, "VN", 100, 1000)), nil)
	}
	d := decl("D", t0, item(hsA, "CN", 100, 4000), item(hsB, "CN", 100, 4000))
	d.Importer.ID = "IMP-2"
	uv.Score(d, nil) // B at its CN peers' median: z 0
	drops := tab.Dropped()
	uv.Learn(d, nil)            // A's update drops B's CN group
	if tab.Dropped() == drops { // (B's own update then puts its CN group back, dropping A's)
		t.Fatal("A's update did not drop B's CN group: the test does not exercise the drop")
	}
	if mean, n := uv.importerMean(d); n != 1 || mean <= 0.5 {
		t.Errorf("IMP-2's running mean %v over %d items, want B's deviation above all origins' median (z > 0.5) over 1", mean, n)
	}
}
