package declaration

import (
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf8"
)

// DeadLetter is an input record that was refused, with everything needed to
// find, understand and resubmit it: the original bytes, where it came from and
// why it was refused.
type DeadLetter struct {
	Source    string // file name or topic
	Line      int    // file line (file sources)
	Partition int    // Kafka sources
	Offset    int64  // Kafka sources; -1 when not from Kafka
	Reason    string // names the field, e.g. "items[line 2].gross_mass_kg must be > 0, got -5"
	Kind      string // the field path without positions, for metrics
	Original  []byte
}

// MaxDeadLetterOriginal caps the original bytes copied into a dead letter: a
// 10 MB message refused for its size could not be produced as a dead letter
// either. Beyond it the dead letter keeps the first bytes, says
// "original_truncated" and gives the full size; the whole message stays in
// the input topic at the position the dead letter names.
const MaxDeadLetterOriginal = 64 << 10

// AppendJSON appends the dead letter as one JSON object. The original bytes
// are kept as a string when they are valid UTF-8, else base64-encoded.
func (dl *DeadLetter) AppendJSON(b []byte) []byte {
	b = append(b, `{"schema":"dead-letter/v1","source":`...)
	b = AppendJSONString(b, dl.Source)
	if dl.Line > 0 {
		b = append(b, `,"line":`...)
		b = strconv.AppendInt(b, int64(dl.Line), 10)
	} else {
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(dl.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, dl.Offset, 10)
	}
	b = append(b, `,"kind":`...)
	b = AppendJSONString(b, dl.Kind)
	b = append(b, `,"reason":`...)
	b = AppendJSONString(b, dl.Reason)
	orig := dl.Original
	if len(orig) > MaxDeadLetterOriginal {
		b = append(b, `,"original_bytes":`...)
		b = strconv.AppendInt(b, int64(len(orig)), 10)
		b = append(b, `,"original_truncated":true`...)
		orig = orig[:MaxDeadLetterOriginal]
	}
	if utf8.Valid(orig) {
		b = append(b, `,"original":`...)
		b = AppendJSONString(b, string(orig))
	} else {
		b = append(b, `,"original_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, orig)
		b = append(b, '"')
	}
	return append(b, '}')
}

// ErrorKind is the metrics label of a decoding error: the field path without
// positions for a validation *Error, "other" for anything else.
func ErrorKind(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Kind
	}
	return "other"
}
