package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/detectors"
)

// An outcome counts with the inverse of how likely its stratum was
// inspected, relative to the most inspected stratum, capped; strata
// inspected alike weigh alike; too few assessments give weight 1.
func TestSelectionWeights(t *testing.T) {
	f := func(assessed, inspected [3]uint64, want [3]float64) {
		t.Helper()
		ms := newModelStage(config.Model{MaxWeight: 20}, nil, nil)
		for i := range assessed {
			ms.assessed[i].Store(assessed[i])
			ms.inspected[i].Store(inspected[i])
		}
		for s, w := range want {
			if got := ms.weight(declaration.Channel(s)); math.Abs(got-w) > 1e-9 {
				t.Errorf("assessed %v inspected %v: weight of %v = %g, want %g", assessed, inspected, declaration.Channel(s), got, w)
			}
		}
	}
	// A closed loop: yellow and red always inspected, green only by the 1 % random sample.
	f([3]uint64{10000, 500, 300}, [3]uint64{100, 500, 300}, [3]float64{20, 1, 1})
	// Half the yellows inspected, 4 % of the greens.
	f([3]uint64{10000, 500, 300}, [3]uint64{400, 250, 300}, [3]float64{20, 2, 1})
	f([3]uint64{10000, 500, 300}, [3]uint64{1000, 250, 300}, [3]float64{10, 2, 1})
	// Inspections that do not depend on riskmon: every stratum alike.
	f([3]uint64{10000, 500, 300}, [3]uint64{300, 15, 9}, [3]float64{1, 1, 1})
	// Too few red assessments to estimate their rate: ignored.
	f([3]uint64{10000, 500, 50}, [3]uint64{300, 15, 50}, [3]float64{1, 1, 1})
}

// A pending record holds what the outcome needs; a damaged one is refused.
func TestPendingRecord(t *testing.T) {
	store := detectors.NewStore(32, 32)
	lay := internLayout([]string{"a", "b"}, make([][]detectors.Measure, 2))
	ms := newModelStage(config.Default().Model, store, lay)
	d := &declaration.Declaration{ID: "D1", Importer: declaration.Importer{ID: "IMP"}, DeclarantID: "DEC", Office: "O1",
		Items: []declaration.Item{{Line: 1, HSCode: "851713", Origin: "CN", GrossMassKg: 2, CustomsValue: 300}, {Line: 2, HSCode: "940350", Origin: "VN", GrossMassKg: 1, CustomsValue: 900}}}
	x := make([]float64, len(lay.names))
	ids := make([]string, len(entityKinds))
	stats := make([]entityStats, len(entityKinds))
	ms.featurize(lay, d, []float64{0.5, 0}, nil, 42, false, x, ids, stats)
	if x[0] != 42 || x[lay.detOff] != 0.5 || !math.IsNaN(x[lay.entRate[0]]) {
		t.Errorf("features: rule %g, first detector %g, importer rate %g", x[0], x[lay.detOff], x[lay.entRate[0]])
	}
	if ids[4] != "940350" { // the main item is the most valuable one
		t.Errorf("hs6 entity %q, want the main item's 940350", ids[4])
	}
	raw := ms.remember(nil, d, declaration.Yellow, x, ids)
	ms.countSeen(ids, new(seenScratch))
	p, err := decodePending(raw)
	if err != nil || p.stratum != declaration.Yellow || len(p.x) != len(x) || p.value != 1200 || strings.Join(p.ids, "|") != strings.Join(ids, "|") {
		t.Fatalf("pending record: %+v %v", p, err)
	}
	for i, v := range x {
		if want := fromHalf(toHalf(float32(v))); p.x[i] != want && !(math.IsNaN(float64(want)) && math.IsNaN(float64(p.x[i]))) {
			t.Errorf("feature %d: %v kept as %v, want its binary16 %v", i, v, p.x[i], want)
		}
	}
	// hs4, hs6_origin and importer_hs6 derive from the others and are left
	// out: 2 bytes a feature, and the ids they derive from once.
	if want := 1 + 1 + 2*len(x) + 4 + 1 + len("IMP") + len("DEC") + len("O1") + len("940350") + len("VN") + 13 - 3; len(raw) != want {
		t.Errorf("pending record of %d bytes, want %d", len(raw), want)
	}
	// An id that does not derive as entityIDs makes it is kept.
	odd := append([]string(nil), ids...)
	odd[entImporterHS6] = "other/940350"
	if q, err := decodePending(appendPending(nil, declaration.Red, x, 5, odd)); err != nil || strings.Join(q.ids, "|") != strings.Join(odd, "|") || q.stratum != declaration.Red {
		t.Errorf("pending record with an underived id: %+v %v", q, err)
	}
	// A record of the format before (float32 features, every id) still reads.
	old := []byte{byte(declaration.Yellow)}
	old = binary.AppendUvarint(old, uint64(len(x)))
	for _, v := range x {
		old = binary.LittleEndian.AppendUint32(old, math.Float32bits(float32(v)))
	}
	old = binary.LittleEndian.AppendUint32(old, math.Float32bits(1200))
	for _, id := range ids {
		old = append(binary.AppendUvarint(old, uint64(len(id))), id...)
	}
	if q, err := decodePending(old); err != nil || q.value != 1200 || strings.Join(q.ids, "|") != strings.Join(ids, "|") || q.x[0] != 42 {
		t.Errorf("pending record of the format before: %+v %v", q, err)
	}
	for cut := 0; cut < len(raw)-1; cut += 7 {
		if _, err := decodePending(raw[:cut]); err == nil && cut < len(raw)-4 {
			t.Errorf("a record cut at %d of %d bytes was accepted", cut, len(raw))
		}
	}
	// The outcome: the importer's record counts it, and it is a label.
	o := &declaration.Outcome{DeclarationID: "D1", ImporterID: "IMP", Hit: true, Revenue: 50}
	ms.outcome(o, raw)
	v, _ := store.Get(nil, entityKey(nil, 0, "IMP"))
	var st entityStats
	if !st.decode(v) || st.inspections != 1 || st.hits != 1 || st.seen != 1 {
		t.Errorf("importer record after an outcome: %+v, want 1 inspection, 1 hit, 1 declaration", st)
	}
	if ms.labels != 1 || ms.unmatched.Load() != 0 {
		t.Errorf("labels %d, unmatched %d: want the outcome learned", ms.labels, ms.unmatched.Load())
	}
	// An outcome of a declaration never assessed teaches its importer only.
	ms.outcome(&declaration.Outcome{DeclarationID: "D9", ImporterID: "IMP", Hit: false}, nil)
	v, _ = store.Get(nil, entityKey(nil, 0, "IMP"))
	if st.decode(v); st.inspections != 2 || ms.unmatched.Load() != 1 || ms.labels != 1 {
		t.Errorf("after an unmatched outcome: importer %+v, unmatched %d, labels %d", st, ms.unmatched.Load(), ms.labels)
	}
}

func TestTopIndexes(t *testing.T) {
	f := func(v []float64, k int, want string) {
		t.Helper()
		got := fmt.Sprint(topIndexes(v, 0.05, make([]int, 0, k)))
		if got != want {
			t.Errorf("top %d of %v: %s, want %s", k, v, got, want)
		}
	}
	f(nil, 3, "[]")
	f([]float64{0.01, -1, 0.04}, 3, "[]")
	f([]float64{0.1, 0.3, 0.2}, 3, "[1 2 0]")
	f([]float64{0.1, 0.3, 0.2, 0.5, 0.3}, 3, "[3 1 4]")
	f([]float64{0.5, 0.4, 0.3, 0.2, 0.6}, 2, "[4 0]")
	f([]float64{0.2, 0.2, 0.2, 0.2}, 3, "[0 1 2]")
	f([]float64{0.06, -3, 0.9}, 1, "[2]")
}

// The entity kinds' index constants name the kinds of entityKinds.
func TestEntityKindIndexes(t *testing.T) {
	want := map[int]string{entImporter: "importer", entDeclarant: "declarant", entExporter: "exporter", entOffice: "office", entHS6: "hs6",
		entHS4: "hs4", entOrigin: "origin", entDispatch: "dispatch", entHS6Origin: "hs6_origin", entImporterHS6: "importer_hs6",
		entProcedure: "procedure", entTransport: "transport", entPreference: "preference"}
	if len(entityKinds) != numEntityKinds || len(want) != numEntityKinds {
		t.Fatalf("%d kinds, %d constants", len(entityKinds), len(want))
	}
	for i, k := range entityKinds {
		if want[i] != k || seenKind[i] != seenKinds[k] {
			t.Errorf("kind %d is %q, constant says %q (seen %v)", i, k, want[i], seenKind[i])
		}
	}
}

// A calibrator's counts are the Fenwick tree over every bin, bin 0
// included, whatever it keeps apart; setCounts takes them back.
func TestCalibratorCounts(t *testing.T) {
	c := newCalibrator(0.001, 0, false)
	var want [calBins + 2]uint64
	for i := range 5000 {
		s := 0.0
		if i%3 == 0 {
			s = float64(i%997) / 997
		}
		c.observe(s)
		for j := calBin(s) + 1; j < len(want); j += j & -j {
			want[j]++
		}
	}
	n, tree := c.counts()
	if n != 5000 || fmt.Sprint(tree) != fmt.Sprint(want[:]) {
		t.Fatalf("counts %d %v, want 5000 %v", n, tree, want)
	}
	d := newCalibrator(0.001, 0, false)
	d.setCounts(n, tree)
	for b := range calBins + 1 {
		if c.below(b) != d.below(b) {
			t.Errorf("below %d: %d, restored %d", b, c.below(b), d.below(b))
		}
	}
	if n2, tree2 := d.counts(); n2 != n || fmt.Sprint(tree2) != fmt.Sprint(tree) {
		t.Errorf("restored counts %d %v", n2, tree2)
	}
}
