// Package testkit holds small helpers shared by riskmon's tests.
package testkit

import (
	"bytes"
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
