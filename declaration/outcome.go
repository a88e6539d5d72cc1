package declaration

import (
	"fmt"
	"time"
)

// DecodeOutcome decodes and validates one inspection outcome.
func DecodeOutcome(b []byte) (*Outcome, error) {
	var s scanner
	if err := top(&s, b, "an outcome"); err != nil {
		return nil, err
	}
	var raw rawOutcome
	s.outcome(&raw)
	if s.end(); s.err != nil {
		return nil, s.err
	}
	var r reader
	oc := &Outcome{}
	oc.Schema, _ = r.str(&raw.schema, "schema")
	if oc.Schema != "" && oc.Schema != "outcome/v1" {
		r.fail("schema", fmt.Sprintf("must be \"outcome/v1\", got %q", truncate(oc.Schema, 40)))
	}
	var ok bool
	if oc.DeclarationID, ok = r.str(&raw.id, "declaration_id"); !ok || oc.DeclarationID == "" {
		r.fail("declaration_id", "is required")
	} else if len(oc.DeclarationID) > 64 {
		r.fail("declaration_id", "must be 1-64 characters")
	}
	oc.ImporterID, _ = r.str(&raw.importer, "importer_id")
	if ts, ok := r.str(&raw.at, "inspected_at"); !ok {
		r.fail("inspected_at", "is required")
	} else if t, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		r.fail("inspected_at", fmt.Sprintf("is not an RFC 3339 timestamp: %q", truncate(ts, 40)))
	} else {
		oc.InspectedAt = t
	}
	switch res, ok := r.str(&raw.result, "result"); {
	case !ok:
		r.fail("result", "is required")
	case res == "hit":
		oc.Hit = true
	case res != "clean":
		r.fail("result", fmt.Sprintf("must be \"hit\" or \"clean\", got %q", truncate(res, 40)))
	}
	if oc.Revenue, ok = r.num(&raw.revenue, "revenue"); ok && oc.Revenue < 0 {
		r.fail("revenue", fmt.Sprintf("must be >= 0, got %g", oc.Revenue))
	}
	oc.Offence, _ = r.str(&raw.offence, "offence")
	if l, ok := r.num(&raw.line, "item_line"); ok {
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

type rawOutcome struct {
	schema, id, importer, at, result, revenue, offence, line value
}

var outcomeFields = []string{"schema", "declaration_id", "importer_id", "inspected_at", "result", "revenue", "offence", "item_line"}

func (s *scanner) outcome(o *rawOutcome) {
	fields := [...]*value{&o.schema, &o.id, &o.importer, &o.at, &o.result, &o.revenue, &o.offence, &o.line}
	var m members
	for s.next(&m, 1) {
		if i := s.field(&m, outcomeFields, 1); i >= 0 {
			s.value(fields[i], 2)
		}
	}
}
