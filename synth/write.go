package synth

import (
	"bufio"
	"io"
	"slices"

	"github.com/riskmon/riskmon/declaration"
)

// Writers are where Write puts the three streams; Outcomes and Truth may be nil.
type Writers struct {
	Declarations, Outcomes, Truth io.Writer
}

// Write generates the stream and writes declarations (lodgement order),
// outcomes of the inspected sample (in inspected_at order, as they would
// arrive) and truth (declaration order), each as JSON Lines.
func Write(opts Options, w Writers) error {
	dw := bufio.NewWriterSize(w.Declarations, 1<<16)
	var tw *bufio.Writer
	if w.Truth != nil {
		tw = bufio.NewWriterSize(w.Truth, 1<<16)
	}
	var outcomes []*declaration.Outcome
	var buf []byte
	err := Generate(opts, func(r Record) error {
		buf = append(r.Decl.AppendJSON(buf[:0]), '\n')
		if _, err := dw.Write(buf); err != nil {
			return err
		}
		if tw != nil {
			buf = append(r.Truth.AppendJSON(buf[:0]), '\n')
			if _, err := tw.Write(buf); err != nil {
				return err
			}
		}
		if r.Inspected && w.Outcomes != nil {
			outcomes = append(outcomes, r.Truth)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := dw.Flush(); err != nil {
		return err
	}
	if tw != nil {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if w.Outcomes == nil {
		return nil
	}
	slices.SortStableFunc(outcomes, func(a, b *declaration.Outcome) int { return a.InspectedAt.Compare(b.InspectedAt) })
	ow := bufio.NewWriterSize(w.Outcomes, 1<<16)
	for _, o := range outcomes {
		buf = append(o.AppendJSON(buf[:0]), '\n')
		if _, err := ow.Write(buf); err != nil {
			return err
		}
	}
	return ow.Flush()
}
