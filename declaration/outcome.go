package declaration

import "time"

type wireOutcome struct {
	Schema        string   `json:"schema"`
	DeclarationID *string  `json:"declaration_id"`
	ImporterID    string   `json:"importer_id"`
	InspectedAt   *string  `json:"inspected_at"`
	Result        *string  `json:"result"`
	Revenue       *float64 `json:"revenue"`
	Offence       string   `json:"offence"`
	ItemLine      *float64 `json:"item_line"`
}

var outcomeSchema = object{
	"schema": str, "declaration_id": str, "importer_id": str, "inspected_at": str,
	"result": str, "revenue": num, "offence": str, "item_line": num,
}

// DecodeOutcome decodes and validates one inspection outcome.
func DecodeOutcome(b []byte) (*Outcome, error) {
	var w wireOutcome
	if err := unmarshal(b, &w, outcomeSchema, "an outcome"); err != nil {
		return nil, err
	}
	o := &Outcome{Schema: w.Schema, ImporterID: w.ImporterID, Offence: w.Offence}
	if o.Schema != "" && o.Schema != "outcome/v1" {
		return nil, fieldErr("schema", "schema", "must be \"outcome/v1\", got %q", o.Schema)
	}
	if w.DeclarationID == nil || *w.DeclarationID == "" {
		return nil, fieldErr("declaration_id", "declaration_id", "is required")
	}
	o.DeclarationID = *w.DeclarationID
	if len(o.DeclarationID) > 64 {
		return nil, fieldErr("declaration_id", "declaration_id", "must be 1-64 characters")
	}
	if w.InspectedAt == nil {
		return nil, fieldErr("inspected_at", "inspected_at", "is required")
	}
	t, err := time.Parse(time.RFC3339Nano, *w.InspectedAt)
	if err != nil {
		return nil, fieldErr("inspected_at", "inspected_at", "is not an RFC 3339 timestamp: %q", *w.InspectedAt)
	}
	o.InspectedAt = t
	if w.Result == nil {
		return nil, fieldErr("result", "result", "is required")
	}
	switch *w.Result {
	case "hit":
		o.Hit = true
	case "clean":
	default:
		return nil, fieldErr("result", "result", "must be \"hit\" or \"clean\", got %q", *w.Result)
	}
	if w.Revenue != nil {
		if o.Revenue = *w.Revenue; o.Revenue < 0 {
			return nil, fieldErr("revenue", "revenue", "must be >= 0, got %g", o.Revenue)
		}
	}
	if w.ItemLine != nil {
		l := *w.ItemLine
		if l < 1 || l > 1e9 || l != float64(int(l)) {
			return nil, fieldErr("item_line", "item_line", "must be an integer >= 1, got %g", l)
		}
		o.ItemLine = int(l)
	}
	return o, nil
}
