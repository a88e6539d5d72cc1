package declaration

import (
	"fmt"
	"time"
)

// DecodeOutcome decodes and validates one inspection outcome.
func DecodeOutcome(b []byte) (*Outcome, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	o, err := parse(p, b, "an outcome")
	if err != nil {
		return nil, err
	}
	var r reader
	oc := &Outcome{}
	oc.Schema, _ = r.str(o, "schema", "schema")
	if oc.Schema != "" && oc.Schema != "outcome/v1" {
		r.fail("schema", fmt.Sprintf("must be \"outcome/v1\", got %q", truncate(oc.Schema, 40)))
	}
	var ok bool
	if oc.DeclarationID, ok = r.str(o, "declaration_id", "declaration_id"); !ok || oc.DeclarationID == "" {
		r.fail("declaration_id", "is required")
	} else if len(oc.DeclarationID) > 64 {
		r.fail("declaration_id", "must be 1-64 characters")
	}
	oc.ImporterID, _ = r.str(o, "importer_id", "importer_id")
	if ts, ok := r.str(o, "inspected_at", "inspected_at"); !ok {
		r.fail("inspected_at", "is required")
	} else if t, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		r.fail("inspected_at", fmt.Sprintf("is not an RFC 3339 timestamp: %q", truncate(ts, 40)))
	} else {
		oc.InspectedAt = t
	}
	switch res, ok := r.str(o, "result", "result"); {
	case !ok:
		r.fail("result", "is required")
	case res == "hit":
		oc.Hit = true
	case res != "clean":
		r.fail("result", fmt.Sprintf("must be \"hit\" or \"clean\", got %q", truncate(res, 40)))
	}
	if oc.Revenue, ok = r.num(o, "revenue", "revenue"); ok && oc.Revenue < 0 {
		r.fail("revenue", fmt.Sprintf("must be >= 0, got %g", oc.Revenue))
	}
	oc.Offence, _ = r.str(o, "offence", "offence")
	if l, ok := r.num(o, "item_line", "item_line"); ok {
		if l < 1 || l > 1e9 || l != float64(int(l)) {
			r.fail("item_line", fmt.Sprintf("must be an integer >= 1, got %g", l))
		}
		oc.ItemLine = int(l)
	}
	if r.err != nil {
		return nil, r.err
	}
	return oc, nil
}
