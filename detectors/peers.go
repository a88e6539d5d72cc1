package detectors

import (
	"math"
	"sync"
)

// peers compares a measure (a log quantity, such as ln(value per kg)) with its
// peer groups, kept as log histograms in the store. Groups form a hierarchy,
// finest first (HS6 × origin, HS6, HS4): the first group with at least
// minPeers observations is the reference, so sparse cells back off to
// coarser ones. Used by unit_value and mass_quantity.
type peers struct {
	table     *Table
	minPeers  int
	minSpread float64 // floor of the robust standard deviation
	pool      sync.Pool
}

type scratch struct{ key []byte }

func newPeers(table *Table, minPeers int, minSpread float64) *peers {
	p := &peers{table: table, minPeers: minPeers, minSpread: minSpread}
	p.pool.New = func() any { return &scratch{key: make([]byte, 0, 96)} }
	return p
}

// peerStat is where a measure stands in its reference group.
type peerStat struct {
	z      float64 // robust deviations from the median: (x − median) / max(1.4826·MAD, minSpread)
	median float64 // of the group, in log units
	n      int     // observations in the group (decayed)
	level  int     // which group of the hierarchy
}

// keyFunc appends the store key of the group at level to b.
type keyFunc func(b []byte, level int) []byte

// deviation finds the reference group of lx among levels groups and says how
// far lx lies from its median; ok is false when no group has enough peers.
func (p *peers) deviation(levels int, key keyFunc, lx float64) (s peerStat, ok bool) {
	sc := p.pool.Get().(*scratch)
	defer p.pool.Put(sc)
	for level := 0; level < levels && !ok; level++ {
		sc.key = key(sc.key[:0], level)
		p.table.view(sc.key, func(v []byte) {
			if histCount(v) >= p.minPeers {
				med, mad := histCachedStats(v)
				s, ok = peerStat{z: (lx - med) / math.Max(1.4826*mad, p.minSpread), median: med, n: histCount(v), level: level}, true
			}
		})
	}
	return s, ok
}

// learn adds lx to every group of the hierarchy, and returns what deviation
// returned before. The update adds, and only adds: it may be deferred
// (Table.Deferred) and must not depend on when it runs.
func (p *peers) learn(levels int, key keyFunc, lx float64) (s peerStat, ok bool) {
	s, ok = p.deviation(levels, key, lx)
	sc := p.pool.Get().(*scratch)
	defer p.pool.Put(sc)
	for level := 0; level < levels; level++ {
		sc.key = key(sc.key[:0], level)
		p.table.update(sc.key, func(old []byte) []byte { return histAdd(old, lx) })
	}
	return s, ok
}

// ramp maps a deviation beyond a threshold to a strength in [0,1]: 0 at the
// threshold, 1 at threshold + width.
func ramp(dev, threshold, width float64) float64 { return clamp01((dev - threshold) / width) }

// appendKey appends parts separated by zero bytes.
func appendKey(b []byte, parts ...string) []byte {
	for i, s := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, s...)
	}
	return b
}
