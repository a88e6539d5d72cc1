package detectors

import (
	"math"
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
}

func newPeers(table *Table, minPeers int, minSpread float64) *peers {
	return &peers{table: table, minPeers: minPeers, minSpread: minSpread}
}

// peerStat is where a measure stands in its reference group.
type peerStat struct {
	z      float64 // robust deviations from the median: (x − median) / max(1.4826·MAD, minSpread)
	median float64 // of the group, in log units
	n      int     // observations in the group (decayed)
	level  int     // which group of the hierarchy
}

// groupStat is a reference group as read: where its median lies and how
// spread it is, whatever the measure compared with it.
type groupStat struct {
	median, mad, spread float64 // spread: max(1.4826·MAD, minSpread)
	n, level            int
	ok                  bool // a group had enough peers
}

func (g *groupStat) of(lx float64) peerStat {
	return peerStat{z: (lx - g.median) / g.spread, median: g.median, n: g.n, level: g.level}
}

// groups are the keys of a measure's peer groups, finest first, built once:
// each coarser key is a prefix of the finer ones (HS4 of HS6, HS6 of
// HS6 × origin), so they are one key (in the builder's buffer) and the
// lengths of its prefixes.
type groups struct {
	key    []byte // the finest group's key
	ends   [3]int
	levels int
}

// level is the key of the group at level l.
func (g *groups) level(l int) []byte { return g.key[:g.ends[l]] }

// coarsest is the key of the coarsest group, which holds the others.
func (g *groups) coarsest() []byte { return g.level(g.levels - 1) }

// reference finds the reference group among g's levels: the first with enough
// peers; ok is false when none has. Reading refreshes the group's cached
// median and MAD when they are stale (histCachedStats), as every read of it
// does.
func (p *peers) reference(g *groups) (st groupStat) {
	for level := 0; level < g.levels && !st.ok; level++ {
		s, v := p.table.acquire(g.level(level))
		if n := histCount(v); n >= p.minPeers {
			med, mad := histCachedStats(v)
			st = groupStat{median: med, mad: mad, spread: math.Max(1.4826*mad, p.minSpread), n: n, level: level, ok: true}
		}
		s.mu.Unlock()
	}
	return st
}

// deviation finds the reference group of lx among g's groups and says how far
// lx lies from its median; ok is false when no group has enough peers.
func (p *peers) deviation(g *groups, lx float64) (s peerStat, ok bool) {
	st := p.reference(g)
	if !st.ok {
		return s, false
	}
	return st.of(lx), true
}

// add adds lx to every group of g (histAdd; the table may apply the
// updates after add returns).
func (p *peers) add(g *groups, lx float64) {
	for level := 0; level < g.levels; level++ {
		p.table.update(g.level(level), tableOp{kind: opHist, a: lx})
	}
}

// seenGroups remembers the coarsest groups a declaration's Learn has added
// to, so that Learn reads a group only when it must. Score read every group
// the declaration's items refer to (up to its reference level, refreshing
// the cached median and MAD where stale). Learn's own reads used to repeat
// those reads before each update; they are needed only where an earlier
// item of the same declaration changed the group in between, which happens
// only when updates apply at once (Assess): a group no earlier item changed
// reads as Score left it, fresh, and the read would change nothing. Under a
// deferred table (micro-batch replay) nothing changes before the batch ends,
// so such a read is always a repeat; it is still made for a group an earlier
// item shares (harmless, and needed in the other mode).
//
// Two groups of one measure kind share an item's coarsest group whenever
// they share any: each level's key is a prefix of the finer ones'.
type seenGroups struct {
	buf  [512]byte
	used int
	ends [16]int
	n    int
	full bool // more groups than remembered: every group counts as seen
}

// seen reports whether key was added to before, and remembers it.
func (s *seenGroups) seen(key []byte) bool {
	if s.full {
		return true
	}
	start := 0
	for i := 0; i < s.n; i++ {
		if string(s.buf[start:s.ends[i]]) == string(key) {
			return true
		}
		start = s.ends[i]
	}
	if s.n == len(s.ends) || s.used+len(key) > len(s.buf) {
		s.full = true
		return false
	}
	s.used += copy(s.buf[s.used:], key)
	s.ends[s.n] = s.used
	s.n++
	return false
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
