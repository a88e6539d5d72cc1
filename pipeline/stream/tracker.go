package stream

import (
	"sync"
	"sync/atomic"
)

// tracker decides which input offsets may be committed: an offset only once
// the outputs for it and for every earlier offset of its partition have been
// acknowledged (at-least-once, nothing lost). Messages are added in fetch
// order, which is offset order within a partition; they complete in any
// order.
//
// Each consumer-group generation is an epoch. A new generation starts its
// partitions again from their committed offsets, so the tracker forgets what
// it held for them: a message fetched in an earlier generation is fetched
// again if it was not committed, and its late acknowledgement must not count
// for the new fetch of the same offset.
type tracker struct {
	mu    sync.Mutex
	epoch uint64
	parts map[partition]*partState
	// inFlight mirrors the pending messages of the current epoch, so that the
	// fetch loop can check it per message without taking the lock.
	inFlight atomic.Int64
}

type partition struct {
	topic string
	part  int
}

type partState struct {
	pending     []int64 // fetched, in order; a prefix may be done
	done        map[int64]bool
	committable int64 // every offset up to here is done; -1 if none
	committed   int64 // last offset handed to commit; -1 if none
}

// commitPos is a committable position of a partition in an epoch.
type commitPos struct {
	partition
	offset int64 // the last done offset; the group commits offset+1
	epoch  uint64
}

func newTracker() *tracker { return &tracker{parts: map[partition]*partState{}} }

// assign starts an epoch with the partitions of a new generation.
func (t *tracker) assign(epoch uint64, parts []partition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.epoch = epoch
	t.parts = make(map[partition]*partState, len(parts))
	for _, p := range parts {
		t.parts[p] = &partState{done: map[int64]bool{}, committable: -1, committed: -1}
	}
	t.inFlight.Store(0)
}

// add records a fetched message. It reports false when the message belongs
// to an epoch that has ended or to a partition not assigned in this one: the
// message will be fetched again by the partition's current owner, so it must
// not be processed.
func (t *tracker) add(topic string, part int, offset int64, epoch uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps, ok := t.parts[partition{topic, part}]
	if !ok || epoch != t.epoch {
		return false
	}
	ps.pending = append(ps.pending, offset)
	t.inFlight.Add(1)
	return true
}

// done records that the outputs of a message are acknowledged.
func (t *tracker) done(topic string, part int, offset int64, epoch uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps, ok := t.parts[partition{topic, part}]
	if !ok || epoch != t.epoch {
		return
	}
	ps.done[offset] = true
	i := 0
	for ; i < len(ps.pending) && ps.done[ps.pending[i]]; i++ {
		delete(ps.done, ps.pending[i])
		ps.committable = ps.pending[i]
	}
	ps.pending = ps.pending[i:]
	t.inFlight.Add(-int64(i))
}

// commits returns, for each partition with progress since the last call, its
// last committable offset.
func (t *tracker) commits() []commitPos {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []commitPos
	for p, ps := range t.parts {
		if ps.committable > ps.committed {
			out = append(out, commitPos{partition: p, offset: ps.committable, epoch: t.epoch})
		}
	}
	return out
}

// committed marks commits as made.
func (t *tracker) committed(cs []commitPos) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cs {
		if ps, ok := t.parts[c.partition]; ok && c.epoch == t.epoch {
			ps.committed = max(ps.committed, c.offset)
		}
	}
}

// pending is the number of fetched messages of the current epoch not yet
// done.
func (t *tracker) pending() int { return int(t.inFlight.Load()) }
