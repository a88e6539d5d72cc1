package detectors

// hashIndex finds slots by 64-bit hashes: open addressing with linear
// probing. A cell is 8 bytes: the hash's high 32 bits, which also choose
// its home cell, and the slot + 1 (0: an empty cell). A table's shard is
// chosen by the hash's low bits. Two hashes with the same high bits share
// a probe sequence: a lookup checks the slot's full hash or key.
type hashIndex struct {
	cells []uint64
}

func cellOf(h uint64, slot int32) uint64 { return h&^0xffffffff | uint64(uint32(slot+1)) }

// slotOfCell is the slot a (non-empty) cell holds.
func slotOfCell(c uint64) int32 { return int32(uint32(c)) - 1 }

// sameTag reports whether cell c may hold hash h.
func sameTag(c, h uint64) bool { return c>>32 == h>>32 }

// home is the first cell a hash probes; next is the cell after i.
func (x *hashIndex) home(h uint64) int { return int(h>>32) & (len(x.cells) - 1) }
func (x *hashIndex) next(i int) int    { return (i + 1) & (len(x.cells) - 1) }

// grow doubles the cells (to 16 at first) and places every cell again.
func (x *hashIndex) grow() {
	old := x.cells
	x.cells = make([]uint64, max(16, 2*len(old)))
	for _, c := range old {
		if c != 0 {
			x.put(c)
		}
	}
}

// place puts slot (of hash h) in the first empty cell from h's home.
func (x *hashIndex) place(h uint64, slot int32) { x.put(cellOf(h, slot)) }

func (x *hashIndex) put(c uint64) {
	j := x.home(c)
	for x.cells[j] != 0 {
		j = x.next(j)
	}
	x.cells[j] = c
}

// remove removes the cell of slot (of hash h), moving back the cells after
// it that would otherwise no longer be found (linear probing's deletion).
func (x *hashIndex) remove(h uint64, slot int32) {
	want := cellOf(h, slot)
	at := x.home(h)
	for x.cells[at] != want {
		at = x.next(at)
	}
	for j := at; ; {
		j = x.next(j)
		c := x.cells[j]
		if c == 0 {
			break
		}
		// c may move to the hole at `at` unless its home lies cyclically
		// in (at, j].
		if k := x.home(c); (at < j && (k <= at || k > j)) || (at > j && k <= at && k > j) {
			x.cells[at] = c
			at = j
		}
	}
	x.cells[at] = 0
}
