package engine

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// A declaration's record: what riskmon keeps about an assessed declaration
// until its outcome arrives (state.pending_mb), in one record keyed by the
// declaration's id. It is made of sections, each a 4-byte tag, a 2-byte
// length and the bytes: the treatment (outcome monitoring, tagSelection),
// the model's features (tagModel), and each outcome learner's (tagged by
// the detector's name). One record a declaration: one key, one write, one
// read at the outcome (there were three of each). Once its outcome is
// applied the record becomes doneMark, so that a redelivered outcome is
// learned once.

func declKey(dst []byte, declID string) []byte {
	return append(append(dst[:0], 0xff, 'R'), declID...)
}

const doneMark = 0xfe

var (
	tagSelection = sectionTag("\xffselection")
	tagModel     = sectionTag("\xffmodel")
)

// sectionTag is the tag of a section: of a learner's, its detector's name.
func sectionTag(name string) uint32 { return uint32(xxhash.Sum64String(name)) }

const sectionHeader = 6

// openSection starts a section at the end of b; closeSection ends it. A
// section longer than 65,535 bytes is left out.
func openSection(b []byte) ([]byte, int) {
	return append(b, 0, 0, 0, 0, 0, 0), len(b)
}

func closeSection(b []byte, at int, tag uint32) []byte {
	n := len(b) - at - sectionHeader
	if n > 0xffff {
		return b[:at]
	}
	binary.LittleEndian.PutUint32(b[at:], tag)
	binary.LittleEndian.PutUint16(b[at+4:], uint16(n))
	return b
}

// section returns the bytes of the section tagged tag in rec, or nil.
func section(rec []byte, tag uint32) []byte {
	for len(rec) >= sectionHeader {
		n := int(binary.LittleEndian.Uint16(rec[4:]))
		if len(rec)-sectionHeader < n {
			return nil
		}
		if binary.LittleEndian.Uint32(rec) == tag {
			return rec[sectionHeader : sectionHeader+n : sectionHeader+n]
		}
		rec = rec[sectionHeader+n:]
	}
	return nil
}
