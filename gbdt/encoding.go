package gbdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Binary format, version 1. Integers are unsigned varints in their
// shortest form, floats are IEEE 754 bits, little-endian:
//
//	"GBDT" version(1 byte)
//	features, then per feature: name length, name bytes
//	base score (8 bytes)
//	trees, then per tree its nodes in pre-order:
//	  leaf:  0, value (8 bytes)
//	  split: 1 (missing left) or 2 (missing right), feature, threshold (8 bytes),
//	         value (8 bytes), left subtree, right subtree
//	CRC-32 (IEEE) of all preceding bytes (4 bytes)
//
// Only real nodes are stored, and every value has exactly one encoding, so
// decoding and encoding again reproduces the input byte for byte.

const (
	magic         = "GBDT"
	formatVersion = 1

	tagLeaf      = 0
	tagMissLeft  = 1
	tagMissRight = 2

	minNodeBytes = 9 // a leaf
)

var errTruncated = errors.New("gbdt: model data truncated")

// MarshalBinary encodes the model; see the format above. It never fails.
func (m *Model) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+16*len(m.names)+20*len(m.nodes))
	b = append(b, magic...)
	b = append(b, formatVersion)
	b = binary.AppendUvarint(b, uint64(len(m.names)))
	for _, s := range m.names {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = appendFloat(b, m.base)
	b = binary.AppendUvarint(b, uint64(len(m.roots)))
	for _, r := range m.roots {
		b = m.appendTree(b, r)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

func (m *Model) appendTree(b []byte, i uint32) []byte {
	n := &m.nodes[i]
	if n.left == i {
		b = append(b, tagLeaf)
		return appendFloat(b, m.values[i])
	}
	b = append(b, tagMissLeft+n.missRight)
	b = binary.AppendUvarint(b, uint64(n.feat))
	b = appendFloat(b, n.thr)
	b = appendFloat(b, m.values[i])
	b = m.appendTree(b, n.left)
	return m.appendTree(b, n.left+1)
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// UnmarshalBinary decodes a model written by MarshalBinary, replacing m. It
// returns an error, leaving m unchanged, for data that is truncated, fails
// the checksum, has another version or does not describe a valid model. Call
// it on a new Model only: a Model in use by other goroutines must not change.
func (m *Model) UnmarshalBinary(data []byte) error {
	head := len(magic) + 1
	if len(data) < head+4 {
		return errTruncated
	}
	if string(data[:len(magic)]) != magic {
		return errors.New("gbdt: not a gbdt model (bad magic)")
	}
	if v := data[len(magic)]; v != formatVersion {
		return fmt.Errorf("gbdt: model format version %d, want %d", v, formatVersion)
	}
	body := data[:len(data)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(data[len(body):]) {
		return errors.New("gbdt: model checksum mismatch (corrupt or truncated data)")
	}
	d := decoder{b: body[head:]}
	out, err := d.model()
	if err != nil {
		return err
	}
	*m = *out
	return nil
}

// decoder reads the body of an encoded model. It checks every count
// against the bytes left before allocating, so no input makes it allocate
// much more than its own size.
type decoder struct {
	b []byte
	m *Model
}

func (d *decoder) model() (*Model, error) {
	nf, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if nf == 0 || nf > math.MaxUint16 || nf > uint64(len(d.b)) {
		return nil, fmt.Errorf("gbdt: model has %d features, want 1..%d", nf, math.MaxUint16)
	}
	m := &Model{names: make([]string, nf)}
	d.m = m
	for i := range m.names {
		l, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if l > uint64(len(d.b)) {
			return nil, errTruncated
		}
		m.names[i] = string(d.b[:l])
		d.b = d.b[l:]
	}
	if m.base, err = d.float(); err != nil {
		return nil, err
	}
	if math.IsNaN(m.base) || math.IsInf(m.base, 0) {
		return nil, fmt.Errorf("gbdt: model base score %g, want a finite value", m.base)
	}
	nt, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if nt > uint64(len(d.b)/minNodeBytes) {
		return nil, fmt.Errorf("gbdt: model claims %d trees in %d bytes", nt, len(d.b))
	}
	m.roots = make([]uint32, nt)
	m.nodes = make([]node, 0, len(d.b)/minNodeBytes)
	m.values = make([]float64, 0, len(d.b)/minNodeBytes)
	for t := range m.roots {
		m.roots[t] = d.newNodes(1)
		if err := d.tree(m.roots[t], 0); err != nil {
			return nil, fmt.Errorf("%w (tree %d)", err, t)
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("gbdt: %d unexpected bytes after the last tree", len(d.b))
	}
	return m, nil
}

func (d *decoder) newNodes(k int) uint32 {
	i := uint32(len(d.m.nodes))
	for range k {
		d.m.nodes = append(d.m.nodes, node{})
		d.m.values = append(d.m.values, 0)
	}
	return i
}

// tree decodes the subtree of node i, at the given depth.
func (d *decoder) tree(i uint32, depth int) error {
	if len(d.b) == 0 {
		return errTruncated
	}
	tag := d.b[0]
	d.b = d.b[1:]
	switch tag {
	case tagLeaf:
		v, err := d.value()
		if err != nil {
			return err
		}
		d.m.nodes[i] = leafNode(i)
		d.m.values[i] = v
		d.m.depth = max(d.m.depth, depth)
		return nil
	case tagMissLeft, tagMissRight:
	default:
		return fmt.Errorf("gbdt: bad node tag %d", tag)
	}
	if depth == maxDepth {
		return fmt.Errorf("gbdt: tree deeper than %d", maxDepth)
	}
	f, err := d.uvarint()
	if err != nil {
		return err
	}
	if f >= uint64(len(d.m.names)) {
		return fmt.Errorf("gbdt: split on feature %d of %d", f, len(d.m.names))
	}
	thr, err := d.float()
	if err != nil {
		return err
	}
	// NaN marks leaves; -Inf would send every value right, which training
	// never produces.
	if math.IsNaN(thr) || math.IsInf(thr, -1) {
		return fmt.Errorf("gbdt: split threshold %g", thr)
	}
	v, err := d.value()
	if err != nil {
		return err
	}
	left := d.newNodes(2)
	d.m.nodes[i] = splitNode(thr, left, int(f), tag == tagMissRight, len(d.m.names))
	d.m.values[i] = v
	if err := d.tree(left, depth+1); err != nil {
		return err
	}
	return d.tree(left+1, depth+1)
}

func (d *decoder) uvarint() (uint64, error) {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		return 0, errTruncated
	}
	// Reject padded encodings so that every model has one encoding.
	if k != len(binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64), v)) {
		return 0, errors.New("gbdt: non-canonical varint in model data")
	}
	d.b = d.b[k:]
	return v, nil
}

func (d *decoder) float() (float64, error) {
	if len(d.b) < 8 {
		return 0, errTruncated
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v, nil
}

// value reads a node value, which must be finite.
func (d *decoder) value() (float64, error) {
	v, err := d.float()
	if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		err = fmt.Errorf("gbdt: node value %g, want a finite value", v)
	}
	return v, err
}
