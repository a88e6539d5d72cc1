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
	store     *Store
	minPeers  int
	minSpread float64 // floor of the robust standard deviation
	pool      sync.Pool
}

type scratch struct{ key, val []byte }

func newPeers(store *Store, minPeers int, minSpread float64) *peers {
	p := &peers{store: store, minPeers: minPeers, minSpread: minSpread}
	p.pool.New = func() any { return &scratch{key: make([]byte, 0, 96), val: make([]byte, 0, histBytes)} }
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
	for level := 0; level < levels; level++ {
		sc.key = key(sc.key[:0], level)
		v, found := p.store.Get(sc.val[:0], sc.key)
		sc.val = v
		if !found || histCount(v) < p.minPeers {
			continue
		}
		med, mad := histStats(v)
		return peerStat{z: (lx - med) / math.Max(1.4826*mad, p.minSpread), median: med, n: histCount(v), level: level}, true
	}
	return peerStat{}, false
}

// learn adds lx to every group of the hierarchy.
func (p *peers) learn(levels int, key keyFunc, lx float64) {
	sc := p.pool.Get().(*scratch)
	defer p.pool.Put(sc)
	for level := 0; level < levels; level++ {
		sc.key = key(sc.key[:0], level)
		sc.val = p.store.Update(sc.key, sc.val, func(old []byte) []byte { return histAdd(old, lx) })
	}
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
