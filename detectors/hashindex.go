package detectors

// hashIndex finds slots by 64-bit hashes: open addressing with linear
// probing. A table's shard is chosen by a hash's low bits (shift of them);
// its cells use the bits above.
type hashIndex struct {
	cells []tableCell
	shift uint
}

type tableCell struct {
	h    uint64
	slot int32 // the slot + 1; 0: an empty cell
}

// home is the first cell a hash probes; next is the cell after i.
func (x *hashIndex) home(h uint64) int { return int(h>>x.shift) & (len(x.cells) - 1) }
func (x *hashIndex) next(i int) int    { return (i + 1) & (len(x.cells) - 1) }

// grow doubles the cells (to 16 at first) and places every cell again.
func (x *hashIndex) grow() {
	old := x.cells
	x.cells = make([]tableCell, max(16, 2*len(old)))
	for _, c := range old {
		if c.slot != 0 {
			x.place(c.h, c.slot-1)
		}
	}
}

// place puts slot (of hash h) in the first empty cell from h's home.
func (x *hashIndex) place(h uint64, slot int32) {
	j := x.home(h)
	for x.cells[j].slot != 0 {
		j = x.next(j)
	}
	x.cells[j] = tableCell{h: h, slot: slot + 1}
}

// remove removes the cell of slot (of hash h), moving back the cells after
// it that would otherwise no longer be found (linear probing's deletion).
func (x *hashIndex) remove(h uint64, slot int32) {
	at := x.home(h)
	for x.cells[at].slot != slot+1 {
		at = x.next(at)
	}
	for j := at; ; {
		j = x.next(j)
		c := x.cells[j]
		if c.slot == 0 {
			break
		}
		// c may move to the hole at `at` unless its home lies cyclically
		// in (at, j].
		if k := x.home(c.h); (at < j && (k <= at || k > j)) || (at > j && k <= at && k > j) {
			x.cells[at] = c
			at = j
		}
	}
	x.cells[at] = tableCell{}
}
