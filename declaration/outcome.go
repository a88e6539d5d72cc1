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

func (s *scanner) outcome(o *rawOutcome) {
	var m members
	for s.next(&m, 1) {
		var v *value
		switch string(m.key) {
		case "schema":
			s.known(&m, 0)
			v = &o.schema
		case "declaration_id":
			s.known(&m, 1)
			v = &o.id
		case "importer_id":
			s.known(&m, 2)
			v = &o.importer
		case "inspected_at":
			s.known(&m, 3)
			v = &o.at
		case "result":
			s.known(&m, 4)
			v = &o.result
		case "revenue":
			s.known(&m, 5)
			v = &o.revenue
		case "offence":
			s.known(&m, 6)
			v = &o.offence
		case "item_line":
			s.known(&m, 7)
			v = &o.line
		default:
			s.unknown(&m)
			s.skip(2)
			continue
		}
		s.value(v, 2)
	}
}
