// Package testkit holds small helpers shared by riskmon's tests.
package testkit

import (
	"bytes"
	"strconv"
	"sync"
	"testing"

	"github.com/riskmon/riskmon/declaration"
	"github.com/riskmon/riskmon/synth"
)

// SyncBuffer is a buffer safe for concurrent writers and readers: a
// process's stderr read while it runs, a logger used by several goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// GenDecls generates n declarations with the synthetic generator and returns
// them decoded and as JSON Lines.
func GenDecls(tb testing.TB, n int, seed uint64) (decls []*declaration.Declaration, raw []byte) {
	tb.Helper()
	var buf bytes.Buffer
	if err := synth.Write(synth.Options{Count: n, Seed: seed}, synth.Writers{Declarations: &buf}); err != nil {
		tb.Fatal(err)
	}
	raw = buf.Bytes()
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		d, err := declaration.DecodeDeclaration(l)
		if err != nil {
			tb.Fatal(err)
		}
		decls = append(decls, d)
	}
	return decls, raw
}

// Rounds serves a benchmark's declarations in passes over decls, each pass
// with ids of its own (the first pass's are the originals, pass r's carry
// "#r"): a declaration id seen before is a repeat, which the engine scores
// but does not learn from, so a benchmark that wrapped around its set would
// measure repeats from the second pass on. The copies of a pass are made
// with the benchmark's timer stopped.
type Rounds struct {
	b     *testing.B
	orig  []*declaration.Declaration
	cur   []*declaration.Declaration
	round int
}

// NewRounds starts the passes over decls.
func NewRounds(b *testing.B, decls []*declaration.Declaration) *Rounds {
	return &Rounds{b: b, orig: decls, cur: decls}
}

// Next is the declaration for benchmark iteration i (iterations counted from
// 0, in order).
func (r *Rounds) Next(i int) *declaration.Declaration {
	j := i % len(r.orig)
	if j == 0 && i > 0 {
		r.b.StopTimer()
		r.round++
		r.cur = make([]*declaration.Declaration, len(r.orig))
		suffix := "#" + strconv.Itoa(r.round)
		for k, d := range r.orig {
			c := *d
			c.ID = d.ID + suffix
			r.cur[k] = &c
		}
		r.b.StartTimer()
	}
	return r.cur[j]
}
