package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/riskmon/riskmon/config"
	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/internal/testkit"
)

// An assessed declaration leaves one record, with the treatment, the
// model's features and history's entities as sections; its outcome reads
// it once and marks it, so that a redelivery is counted as a repeat and
// teaches nothing again.
func TestDeclarationRecord(t *testing.T) {
	e, err := New(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	decls, _ := testkit.GenDecls(t, 40, 3)
	var as []*declaration.Assessment
	for _, d := range decls {
		as = append(as, e.Assess(d))
	}
	if n, _ := e.Store().DeclStats(); n != uint64(len(decls)) {
		t.Fatalf("%d declaration records for %d declarations, want one each", n, len(decls))
	}
	d, a := decls[7], as[7]
	rec, ok := e.Store().GetDecl(nil, declKey(nil, d.ID))
	if !ok {
		t.Fatal("no record")
	}
	if at := attribution(section(rec, tagSelection)); !at.Known || at.Channel != a.Channel || at.SelectedBy != a.SelectedBy {
		t.Errorf("selection section: %+v, assessment %v %s", at, a.Channel, a.SelectedBy)
	}
	if p, err := decodePending(section(rec, tagModel)); err != nil || p.ids[entImporter] != d.Importer.ID {
		t.Errorf("model section: %+v %v", p, err)
	}
	if h := section(rec, sectionTag("history")); len(h) < 9 || (len(h)-1)%8 != 0 {
		t.Errorf("history section of %d bytes, want 1 + 8 an entity", len(h))
	}

	o := &declaration.Outcome{DeclarationID: d.ID, ImporterID: d.Importer.ID, InspectedAt: d.LodgedAt.Add(72 * time.Hour), Hit: true, Revenue: 10}
	if at := e.ApplyOutcome(o); !at.Known || at.Repeat {
		t.Errorf("first outcome: %+v", at)
	}
	if rec, _ := e.Store().GetDecl(nil, declKey(nil, d.ID)); !bytes.Equal(rec, []byte{doneMark}) {
		t.Errorf("record after its outcome: %x, want the done mark", rec)
	}
	var before, after bytes.Buffer
	e.Shared().WriteTo(&before)
	labels := e.model.labels
	if at := e.ApplyOutcome(o); !at.Repeat || at.Known {
		t.Errorf("redelivered outcome: %+v, want a repeat", at)
	}
	e.Shared().WriteTo(&after)
	if !bytes.Equal(before.Bytes(), after.Bytes()) || e.model.labels != labels {
		t.Error("a redelivered outcome changed the shared statistics or the model's labels")
	}
	// An outcome of a declaration never assessed here: unknown, and its
	// importer still learns (history's rates change).
	before.Reset()
	e.Shared().WriteTo(&before)
	ghost := &declaration.Outcome{DeclarationID: "GHOST", ImporterID: d.Importer.ID, InspectedAt: o.InspectedAt, Hit: true}
	if at := e.ApplyOutcome(ghost); at.Known || at.Repeat {
		t.Errorf("outcome of an unknown declaration: %+v", at)
	}
	after.Reset()
	e.Shared().WriteTo(&after)
	if bytes.Equal(before.Bytes(), after.Bytes()) {
		t.Error("an outcome of an unknown declaration taught its importer nothing")
	}
}

// section finds a section among others and refuses a damaged record.
func TestSections(t *testing.T) {
	var rec []byte
	for i, v := range []string{"one", "", "three"} {
		var at int
		rec, at = openSection(rec)
		rec = closeSection(append(rec, v...), at, uint32(i+1))
	}
	if string(section(rec, 1)) != "one" || section(rec, 2) == nil || len(section(rec, 2)) != 0 || string(section(rec, 3)) != "three" || section(rec, 4) != nil {
		t.Errorf("sections of %x", rec)
	}
	if section(rec[:len(rec)-1], 3) != nil {
		t.Error("a cut section was read")
	}
	long, at := openSection(nil)
	long = closeSection(append(long, make([]byte, 70000)...), at, 9)
	if len(long) != 0 {
		t.Errorf("a section of 70,000 bytes was kept (%d bytes)", len(long))
	}
}
