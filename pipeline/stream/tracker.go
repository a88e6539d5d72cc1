package stream

import (
	"sync"

	"github.com/segmentio/kafka-go"
)

// tracker decides which input offsets may be committed: an offset only once
// the outputs for it and for every earlier offset of its partition have been
// acknowledged (at-least-once, nothing lost). Messages are added in fetch
// order, which is offset order within a partition; they complete in any
// order.
type tracker struct {
	mu    sync.Mutex
	parts map[partition]*partState
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

func newTracker() *tracker { return &tracker{parts: map[partition]*partState{}} }

func (t *tracker) state(p partition) *partState {
	ps, ok := t.parts[p]
	if !ok {
		ps = &partState{done: map[int64]bool{}, committable: -1, committed: -1}
		t.parts[p] = ps
	}
	return ps
}

// add records a fetched message.
func (t *tracker) add(topic string, part int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.state(partition{topic, part})
	ps.pending = append(ps.pending, offset)
}

// done records that the outputs of a message are acknowledged.
func (t *tracker) done(topic string, part int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.state(partition{topic, part})
	ps.done[offset] = true
	i := 0
	for ; i < len(ps.pending) && ps.done[ps.pending[i]]; i++ {
		delete(ps.done, ps.pending[i])
		ps.committable = ps.pending[i]
	}
	ps.pending = ps.pending[i:]
}

// commits returns, for each partition with progress since the last call, a
// message whose offset is the last committable one (kafka-go commits
// offset+1).
func (t *tracker) commits() []kafka.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []kafka.Message
	for p, ps := range t.parts {
		if ps.committable > ps.committed {
			out = append(out, kafka.Message{Topic: p.topic, Partition: p.part, Offset: ps.committable})
		}
	}
	return out
}

// committed marks commits as made.
func (t *tracker) committed(msgs []kafka.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		ps := t.state(partition{m.Topic, m.Partition})
		ps.committed = max(ps.committed, m.Offset)
	}
}

// inFlight is the number of fetched messages not yet done.
func (t *tracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, ps := range t.parts {
		n += len(ps.pending)
	}
	return n
}
