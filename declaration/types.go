// Package declaration holds riskmon's domain types (declarations, items,
// inspection outcomes, assessments and findings) and their JSON wire format as
// fixed by the shared specification. It depends on the standard library only.
package declaration

import "time"

// Declaration is one goods declaration (spec: declaration.md).
type Declaration struct {
	Schema          string
	ID              string
	Type            string // "import" (default), "export", "transit"
	LodgedAt        time.Time
	Office          string
	DeclarantID     string
	Importer        Importer
	Exporter        Exporter
	DispatchCountry string
	TransportMode   string
	Procedure       string
	Currency        string
	Items           []Item
}

// Importer is the consignee / importer named in a declaration.
type Importer struct {
	ID      string
	Name    string
	Country string
	AEO     bool
}

// Exporter is the seller or consignor named in a declaration.
type Exporter struct {
	ID      string
	Name    string
	Country string
}

// Item is one goods item of a declaration.
type Item struct {
	Line         int
	HSCode       string
	Description  string
	Origin       string
	Quantity     float64 // 0 when absent
	QuantityUnit string
	GrossMassKg  float64
	NetMassKg    float64
	HasNetMass   bool
	CustomsValue float64
	Duties       float64
	HasDuties    bool
	Preference   string
}

// HS6 returns the Harmonized System subheading (first six digits).
func (it *Item) HS6() string { return it.HSCode[:6] }

// HS4 returns the HS heading (first four digits).
func (it *Item) HS4() string { return it.HSCode[:4] }

// MainItem is the item with the highest customs value (the first among
// equals): the one that stands for the declaration where one item must.
func (d *Declaration) MainItem() *Item {
	best := &d.Items[0]
	for i := range d.Items {
		if d.Items[i].CustomsValue > best.CustomsValue {
			best = &d.Items[i]
		}
	}
	return best
}

// TotalValue is the sum of the customs values of all items.
func (d *Declaration) TotalValue() float64 {
	var s float64
	for i := range d.Items {
		s += d.Items[i].CustomsValue
	}
	return s
}

// Outcome is the result of an inspection (spec: outcome.md).
type Outcome struct {
	Schema        string
	DeclarationID string
	ImporterID    string
	InspectedAt   time.Time
	Hit           bool // result "hit"; false means "clean"
	Revenue       float64
	Offence       string
	ItemLine      int // 0 when absent
}

// Channel is a selectivity channel.
type Channel uint8

// Channels in increasing severity, so that the more severe of two is the max.
const (
	Green Channel = iota
	Yellow
	Red
)

var channelNames = [...]string{"green", "yellow", "red"}

func (c Channel) String() string { return channelNames[c] }

// ParseChannel reads "green", "yellow" or "red".
func ParseChannel(s string) (Channel, bool) {
	for i, n := range channelNames {
		if n == s {
			return Channel(i), true
		}
	}
	return Green, false
}

// Assessment is the monitor's output for one declaration (spec: assessment.md).
type Assessment struct {
	DeclarationID string
	ImporterID    string
	LodgedAt      time.Time
	AssessedAt    time.Time
	Score         float64
	Channel       Channel
	SelectedBy    string // "score", "profile", "random", "override"
	Findings      []Finding
	Ruleset       string
	// Model names the learned model that scored it ("" while the rule score
	// stands alone); Probability is that model's P(hit).
	Model       string
	Probability float64
	// Repeat (not on the wire): the declaration's id had been assessed
	// before (a redelivery, a resubmission); the engine did not learn from
	// it again, and the first assessment's decision stands for its outcome.
	Repeat bool
}

// Finding is one detector result that contributed to an assessment.
type Finding struct {
	Detector string
	Rule     string // optional
	ItemLine int    // 0 when the finding is about the whole declaration
	Score    float64
	Points   float64
	Reason   string
}
