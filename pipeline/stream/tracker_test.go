package stream

import (
	"math/rand/v2"
	"testing"
)

// The tracker commits an offset only once it and every earlier offset of its
// partition are done, and a new generation (epoch) forgets the old one: a
// message of an ended generation is not taken, and its late acknowledgement
// does not count for the same offset fetched again.
func TestTrackerEpochs(t *testing.T) {
	tr := newTracker()
	d := partition{"d", 0}
	tr.assign(1, []partition{d})
	for off := int64(0); off < 4; off++ {
		if !tr.add("d", 0, off, 1) {
			t.Fatalf("offset %d refused in its epoch", off)
		}
	}
	if tr.add("d", 1, 0, 1) {
		t.Error("a partition not assigned was taken")
	}
	tr.done("d", 0, 1, 1)
	tr.done("d", 0, 2, 1)
	if cs := tr.commits(); len(cs) != 0 {
		t.Fatalf("committable %v while offset 0 is not done", cs)
	}
	tr.done("d", 0, 0, 1)
	cs := tr.commits()
	if len(cs) != 1 || cs[0].offset != 2 || tr.pending() != 1 {
		t.Fatalf("commits %v, %d pending; want offset 2, 1 pending", cs, tr.pending())
	}
	tr.committed(cs)
	if cs := tr.commits(); len(cs) != 0 {
		t.Fatalf("commits %v again after committing them", cs)
	}

	// Generation 2 starts the partition again from the committed offset 3.
	tr.assign(2, []partition{d})
	if tr.add("d", 0, 4, 1) {
		t.Error("a message of the ended generation was taken")
	}
	tr.done("d", 0, 3, 1) // the late acknowledgement of generation 1's offset 3
	if !tr.add("d", 0, 3, 2) || !tr.add("d", 0, 4, 2) || tr.pending() != 2 {
		t.Fatalf("offsets 3 and 4 of generation 2: %d pending", tr.pending())
	}
	tr.done("d", 0, 4, 2)
	if cs := tr.commits(); len(cs) != 0 {
		t.Fatalf("generation 1's acknowledgement of offset 3 counted in generation 2: commits %v", cs)
	}
	tr.committed([]commitPos{{partition: d, offset: 9, epoch: 1}}) // a commit of generation 1 returning late
	tr.done("d", 0, 3, 2)
	if cs := tr.commits(); len(cs) != 1 || cs[0].offset != 4 || cs[0].epoch != 2 || tr.pending() != 0 {
		t.Fatalf("commits %v, %d pending; want offset 4 of epoch 2, none pending", cs, tr.pending())
	}
}

// TestTrackerModel drives the tracker the way the stream does, at random:
// several partitions fetched in offset order with gaps (compaction and
// transaction markers leave them), outputs acknowledged in any order,
// produce failures that leave a message unacknowledged until its retry
// succeeds, acknowledgements delivered twice, offset commits that fail and
// are tried again, and rebalances (new epochs) that move partitions away and
// back while acknowledgements and commits of the ended epoch still arrive.
// After every step the tracker must offer exactly the end of the fully
// acknowledged prefix of each partition of the current epoch, and nothing
// when that prefix has not grown past the last commit: an offset is never
// committed while an earlier one of its partition is pending.
func TestTrackerModel(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		runTrackerModel(t, seed)
		if t.Failed() {
			return
		}
	}
}

type modelPart struct {
	assigned  bool
	fetched   []int64        // offsets taken in this epoch, in order
	acked     map[int64]bool // of this epoch
	next      int64          // the next offset the broker hands out
	committed int64          // the group's committed offset (last done offset), -1 if none
}

func runTrackerModel(t *testing.T, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	tr := newTracker()
	topics := []partition{{"declarations", 0}, {"declarations", 1}, {"outcomes", 0}}
	parts := map[partition]*modelPart{}
	for _, p := range topics {
		parts[p] = &modelPart{committed: -1, next: int64(rng.IntN(3))}
	}
	type msg struct {
		p      partition
		offset int64
		epoch  uint64
	}
	var (
		epoch     uint64
		inflight  []msg // fetched, not yet acknowledged
		retrying  []msg // produce failed; acknowledged once the retry succeeds
		stale     []msg // acknowledgements of ended epochs, still to arrive
		acks      []msg // acknowledged at least once (for duplicates)
		oldCommit []commitPos
	)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, epoch %d: "+format, append([]any{seed, epoch}, args...)...)
	}
	rebalance := func() {
		epoch++
		var assigned []partition
		for _, p := range topics {
			mp := parts[p]
			mp.assigned = rng.IntN(4) != 0 // another instance may own it now
			mp.fetched, mp.acked = nil, map[int64]bool{}
			// The new owner starts from the committed offset, whatever
			// was fetched after it.
			mp.next = mp.committed + 1 + int64(rng.IntN(2))
			if mp.assigned {
				assigned = append(assigned, p)
			}
		}
		stale = append(append(stale, inflight...), retrying...)
		inflight, retrying = nil, nil
		rng.Shuffle(len(assigned), func(i, j int) { assigned[i], assigned[j] = assigned[j], assigned[i] })
		tr.assign(epoch, assigned)
	}
	ack := func(m msg) {
		tr.done(m.p.topic, m.p.part, m.offset, m.epoch)
		if m.epoch == epoch {
			parts[m.p].acked[m.offset] = true
			acks = append(acks, m)
		}
	}
	// prefix is the last offset of the fully acknowledged prefix of the
	// partition's fetches in this epoch, and how many fetches it holds.
	prefix := func(mp *modelPart) (int64, int) {
		last, n := mp.committed, 0
		for _, off := range mp.fetched {
			if !mp.acked[off] {
				break
			}
			last, n = off, n+1
		}
		return last, n
	}
	check := func() {
		t.Helper()
		unacked, upper := 0, 0
		for _, p := range topics {
			mp := parts[p]
			if !mp.assigned {
				continue
			}
			_, n := prefix(mp)
			upper += len(mp.fetched) - n
			for _, off := range mp.fetched {
				if !mp.acked[off] {
					unacked++
				}
			}
		}
		if n := tr.pending(); n < unacked || n > upper {
			fail("pending %d, want between %d (not acknowledged) and %d (after the acknowledged prefix)", n, unacked, upper)
		}
		cs := tr.commits()
		got := map[partition]int64{}
		for _, c := range cs {
			if c.epoch != epoch {
				fail("commit %+v of another epoch", c)
			}
			if _, dup := got[c.partition]; dup {
				fail("partition %v twice in %v", c.partition, cs)
			}
			got[c.partition] = c.offset
		}
		for _, p := range topics {
			mp := parts[p]
			want, ok := int64(-1), false
			if mp.assigned {
				if last, _ := prefix(mp); last > mp.committed {
					want, ok = last, true
				}
			}
			g, has := got[p]
			switch {
			case has && !ok:
				fail("%v: commits offset %d; want nothing (committed %d, fetched %v, acknowledged %v)", p, g, mp.committed, mp.fetched, mp.acked)
			case !has && ok:
				fail("%v: no commit; want offset %d (committed %d)", p, want, mp.committed)
			case has && g != want:
				fail("%v: commits offset %d; want %d, the end of the acknowledged prefix (fetched %v, acknowledged %v)", p, g, want, mp.fetched, mp.acked)
			}
		}
		switch r := rng.IntN(10); {
		case r < 6: // the commit succeeds
			tr.committed(cs)
			for _, c := range cs {
				parts[c.partition].committed = c.offset
			}
			oldCommit = append(oldCommit, cs...)
		case r < 8: // it fails: the same positions come back next round
		default: // a commit of an ended epoch returns late
			if len(oldCommit) > 0 {
				c := oldCommit[rng.IntN(len(oldCommit))]
				c.offset += 1000
				if c.epoch != epoch {
					tr.committed([]commitPos{c})
				}
			}
		}
	}
	rebalance()
	for step := 0; step < 400; step++ {
		switch r := rng.IntN(100); {
		case r < 35: // fetch a few messages
			for n := rng.IntN(4); n >= 0; n-- {
				p := topics[rng.IntN(len(topics))]
				mp := parts[p]
				if !tr.add(p.topic, p.part, mp.next, epoch) != !mp.assigned {
					fail("add %v offset %d: assigned is %v", p, mp.next, mp.assigned)
				}
				if mp.assigned {
					mp.fetched = append(mp.fetched, mp.next)
					inflight = append(inflight, msg{p, mp.next, epoch})
				}
				mp.next += 1 + int64(rng.IntN(3)/2) // an occasional gap
			}
		case r < 70 && len(inflight) > 0: // an output completes, in any order
			i := rng.IntN(len(inflight))
			m := inflight[i]
			inflight = append(inflight[:i], inflight[i+1:]...)
			if rng.IntN(5) == 0 {
				retrying = append(retrying, m) // the produce failed
			} else {
				ack(m)
			}
		case r < 80 && len(retrying) > 0: // a retry succeeds
			i := rng.IntN(len(retrying))
			m := retrying[i]
			retrying = append(retrying[:i], retrying[i+1:]...)
			ack(m)
		case r < 84 && len(acks) > 0: // an acknowledgement arrives twice
			m := acks[rng.IntN(len(acks))]
			tr.done(m.p.topic, m.p.part, m.offset, m.epoch)
		case r < 90 && len(stale) > 0: // a late acknowledgement of an ended epoch
			i := rng.IntN(len(stale))
			m := stale[i]
			stale = append(stale[:i], stale[i+1:]...)
			ack(m)
		case r < 93: // a message of an ended epoch reaches the fetch loop
			if epoch > 1 {
				p := topics[rng.IntN(len(topics))]
				if tr.add(p.topic, p.part, parts[p].next, epoch-1) {
					fail("a message of epoch %d was taken", epoch-1)
				}
			}
		case r < 96:
			rebalance()
			acks = nil
		}
		check()
	}
	// Drain: every output is acknowledged, so everything fetched commits.
	for _, m := range append(inflight, retrying...) {
		ack(m)
	}
	inflight, retrying = nil, nil
	if n := tr.pending(); n != 0 {
		fail("%d pending after every acknowledgement", n)
	}
	check()
}
