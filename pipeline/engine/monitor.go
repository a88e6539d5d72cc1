package engine

import (
	"encoding/binary"
	"errors"

	"github.com/riskmon/riskmon/declaration"
)

// Outcome monitoring: the engine remembers, for each declaration it
// assesses, how it treated it (channel, selected_by, the detectors and the
// profiles that fired), so that an inspection outcome can be attributed to
// the treatment that led to it: hit rates by channel and selection, by
// profile and by detector, against the random compliance sample's. The
// record is small (a few dozen bytes) and lives in the state store beside
// the detectors' state, under a prefix no detector uses; the store evicts
// the oldest first, and an outcome whose record is gone is reported as
// unknown rather than dropped.

// Attribution is how the engine had assessed the declaration an outcome is
// for.
type Attribution struct {
	// Known is false when the declaration was never assessed here or its
	// record is gone (evicted, or learned before a restart without state).
	Known bool
	// Repeat is true for an outcome of a declaration whose outcome was
	// already applied (a redelivery): the monitor counts it once.
	Repeat     bool
	Channel    declaration.Channel
	SelectedBy string // score, profile or random
	// Detectors that had a finding, and the profile rules that matched, in
	// the assessment's order.
	Detectors, Profiles []string
}

// selectedByCodes numbers the selected_by values in the record.
var selectedByCodes = [...]string{"score", "profile", "random"}

func selectedByCode(s string) byte {
	for i, v := range selectedByCodes {
		if v == s {
			return byte(i)
		}
	}
	return 0
}

// appendSelection appends a's treatment of its declaration (the
// declaration record's selection section): channel, selected_by, then the
// names of the detectors with findings and of the matched profiles, each
// once, length-prefixed.
func (rs *ruleset) appendSelection(b []byte, a *declaration.Assessment) []byte {
	b = append(b, byte(a.Channel), selectedByCode(a.SelectedBy))
	var dets, profs [16]string
	nd, np := 0, 0
	for i := range a.Findings {
		f := &a.Findings[i]
		if f.Detector == "aeo" && f.Points == 0 {
			continue // the AEO note, not a detector's finding
		}
		if rs.kind[f.Detector] == "profile" && f.Rule != "" {
			if np < len(profs) && !contains(profs[:np], f.Rule) {
				profs[np] = f.Rule
				np++
			}
		}
		if nd < len(dets) && !contains(dets[:nd], f.Detector) {
			dets[nd] = f.Detector
			nd++
		}
	}
	b = append(b, byte(nd))
	for _, n := range dets[:nd] {
		b = append(binary.AppendUvarint(b, uint64(len(n))), n...)
	}
	b = append(b, byte(np))
	for _, n := range profs[:np] {
		b = append(binary.AppendUvarint(b, uint64(len(n))), n...)
	}
	return b
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

var errSelection = errors.New("corrupt selection record")

// attribution reads a declaration's selection section (nil when none is
// kept: the zero Attribution).
func attribution(sel []byte) Attribution {
	if sel == nil {
		return Attribution{}
	}
	at, err := decodeSelection(sel)
	if err != nil {
		return Attribution{}
	}
	return at
}

func decodeSelection(b []byte) (Attribution, error) {
	if len(b) < 3 || b[0] > byte(declaration.Red) || int(b[1]) >= len(selectedByCodes) {
		return Attribution{}, errSelection
	}
	at := Attribution{Known: true, Channel: declaration.Channel(b[0]), SelectedBy: selectedByCodes[b[1]]}
	b = b[2:]
	names := func() ([]string, error) {
		if len(b) < 1 {
			return nil, errSelection
		}
		n := int(b[0])
		b = b[1:]
		out := make([]string, 0, n)
		for range n {
			l, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < l {
				return nil, errSelection
			}
			out = append(out, string(b[k:k+int(l)]))
			b = b[k+int(l):]
		}
		return out, nil
	}
	var err error
	if at.Detectors, err = names(); err != nil {
		return Attribution{}, err
	}
	if at.Profiles, err = names(); err != nil {
		return Attribution{}, err
	}
	return at, nil
}
