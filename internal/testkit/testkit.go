// Package testkit holds small helpers shared by riskmon's tests.
package testkit

import (
	"bytes"
	"sync"
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
