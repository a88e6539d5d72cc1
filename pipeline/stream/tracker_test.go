package stream

import "testing"

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
