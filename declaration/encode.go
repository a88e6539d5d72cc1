package declaration

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The encoders below write JSON by hand: the field order is fixed, so output is
// byte-for-byte reproducible, and the assessment encoder is on the hot path.

// AppendJSON appends the assessment as one JSON object (no newline).
func (a *Assessment) AppendJSON(b []byte) []byte {
	b = append(b, `{"schema":"assessment/v1","declaration_id":`...)
	b = appendString(b, a.DeclarationID)
	b = append(b, `,"importer_id":`...)
	b = appendString(b, a.ImporterID)
	b = append(b, `,"lodged_at":`...)
	b = appendTime(b, a.LodgedAt)
	b = append(b, `,"assessed_at":`...)
	b = appendTime(b, a.AssessedAt)
	b = append(b, `,"score":`...)
	b = appendFloat(b, a.Score, 2)
	b = append(b, `,"channel":"`...)
	b = append(b, a.Channel.String()...)
	b = append(b, `","selected_by":`...)
	b = appendString(b, a.SelectedBy)
	b = append(b, `,"ruleset":`...)
	b = appendString(b, a.Ruleset)
	if a.Model != "" {
		b = append(b, `,"model":`...)
		b = appendString(b, a.Model)
		b = append(b, `,"probability":`...)
		b = appendFloat(b, a.Probability, 4)
	}
	b = append(b, `,"findings":[`...)
	for i := range a.Findings {
		f := &a.Findings[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"detector":`...)
		b = appendString(b, f.Detector)
		if f.Rule != "" {
			b = append(b, `,"rule":`...)
			b = appendString(b, f.Rule)
		}
		if f.ItemLine > 0 {
			b = append(b, `,"item_line":`...)
			b = strconv.AppendInt(b, int64(f.ItemLine), 10)
		}
		b = append(b, `,"score":`...)
		b = appendFloat(b, f.Score, 3)
		b = append(b, `,"points":`...)
		b = appendFloat(b, f.Points, 2)
		b = append(b, `,"reason":`...)
		b = appendString(b, f.Reason)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// AppendJSON appends the declaration in its wire format (no newline).
func (d *Declaration) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, d.ID)
	if d.Type != "" && d.Type != "import" {
		b = appendField(b, "type", d.Type)
	}
	b = append(b, `,"lodged_at":`...)
	b = appendTime(b, d.LodgedAt)
	b = appendField(b, "office", d.Office)
	b = appendField(b, "declarant_id", d.DeclarantID)
	b = append(b, `,"importer":{"id":`...)
	b = appendString(b, d.Importer.ID)
	b = appendField(b, "name", d.Importer.Name)
	b = appendField(b, "country", d.Importer.Country)
	if d.Importer.AEO {
		b = append(b, `,"aeo":true`...)
	}
	b = append(b, '}')
	if d.Exporter != (Exporter{}) {
		b = append(b, `,"exporter":{`...)
		n := len(b)
		b = appendField(b, "id", d.Exporter.ID)
		b = appendField(b, "name", d.Exporter.Name)
		b = appendField(b, "country", d.Exporter.Country)
		b = append(b[:n], b[n+1:]...) // drop the leading comma
		b = append(b, '}')
	}
	b = appendField(b, "dispatch_country", d.DispatchCountry)
	b = appendField(b, "transport_mode", d.TransportMode)
	b = appendField(b, "procedure", d.Procedure)
	b = appendField(b, "currency", d.Currency)
	b = append(b, `,"items":[`...)
	for i := range d.Items {
		it := &d.Items[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"line":`...)
		b = strconv.AppendInt(b, int64(it.Line), 10)
		b = appendField(b, "hs_code", it.HSCode)
		b = appendField(b, "description", it.Description)
		b = appendField(b, "origin", it.Origin)
		if it.Quantity > 0 {
			b = append(b, `,"quantity":`...)
			b = appendFloat(b, it.Quantity, 3)
		}
		b = appendField(b, "quantity_unit", it.QuantityUnit)
		b = append(b, `,"gross_mass_kg":`...)
		b = appendFloat(b, it.GrossMassKg, 3)
		if it.HasNetMass {
			b = append(b, `,"net_mass_kg":`...)
			b = appendFloat(b, it.NetMassKg, 3)
		}
		b = append(b, `,"customs_value":`...)
		b = appendFloat(b, it.CustomsValue, 2)
		if it.HasDuties {
			b = append(b, `,"duties":`...)
			b = appendFloat(b, it.Duties, 2)
		}
		b = appendField(b, "preference", it.Preference)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// AppendJSON appends the outcome in its wire format (no newline).
func (o *Outcome) AppendJSON(b []byte) []byte {
	b = append(b, `{"declaration_id":`...)
	b = appendString(b, o.DeclarationID)
	b = appendField(b, "importer_id", o.ImporterID)
	b = append(b, `,"inspected_at":`...)
	b = appendTime(b, o.InspectedAt)
	if o.Hit {
		b = append(b, `,"result":"hit"`...)
	} else {
		b = append(b, `,"result":"clean"`...)
	}
	if o.Revenue > 0 {
		b = append(b, `,"revenue":`...)
		b = appendFloat(b, o.Revenue, 2)
	}
	b = appendField(b, "offence", o.Offence)
	if o.ItemLine > 0 {
		b = append(b, `,"item_line":`...)
		b = strconv.AppendInt(b, int64(o.ItemLine), 10)
	}
	return append(b, '}')
}

// appendField appends ,"name":"value" unless value is empty.
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat rounds to the given number of decimals and writes the shortest
// representation. Non-finite values cannot occur in valid records; they are
// written as 0 rather than as invalid JSON.
func appendFloat(b []byte, v float64, decimals int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, '0')
	}
	p := math.Pow10(decimals)
	r := math.Round(v*p) / p
	if math.Abs(r) >= 1e15 || (r == 0 && v != 0) {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	if r == 0 {
		return append(b, '0')
	}
	return AppendRounded(b, v, decimals)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
