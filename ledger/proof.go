package ledger

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// ErrBadRange is returned for proof requests outside the tree.
var ErrBadRange = errors.New("invalid tree size or index")

// InclusionProof returns the RFC 6962 inclusion proof of leaf seq in the
// tree of the given size, built from stored node hashes.
func (l *Ledger) InclusionProof(seq, size uint64) ([][]byte, error) {
	if seq >= size || size > l.Size() {
		return nil, ErrBadRange
	}
	nodes, err := proof.Inclusion(seq, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	return l.rehash(nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof between tree sizes
// from and to, 1 <= from <= to <= Size().
func (l *Ledger) ConsistencyProof(from, to uint64) ([][]byte, error) {
	if from < 1 || from > to || to > l.Size() {
		return nil, ErrBadRange
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	return l.rehash(nodes)
}

// RootAt returns the root hash of the tree of the given size.
func (l *Ledger) RootAt(size uint64) ([]byte, error) {
	if size > l.Size() {
		return nil, ErrBadRange
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := l.nodeHashes(ids)
	if err != nil {
		return nil, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return rootOf(r), nil
}

// LeafHash returns the stored leaf hash of seq.
func (l *Ledger) LeafHash(seq uint64) ([]byte, error) {
	if seq >= l.Size() {
		return nil, ErrNotFound
	}
	h, err := l.nodeHashes([]compact.NodeID{compact.NewNodeID(0, seq)})
	if err != nil {
		return nil, err
	}
	return h[0], nil
}

func (l *Ledger) rehash(nodes proof.Nodes) ([][]byte, error) {
	hashes, err := l.nodeHashes(nodes.IDs)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, hashChildren)
}

func (l *Ledger) nodeHashes(ids []compact.NodeID) ([][]byte, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := readNode(l.db, id)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// readNode reads the stored hash of a tree node from its leaf's hash row.
func readNode(r reader, id compact.NodeID) ([]byte, error) {
	seq, off := nodeRow(id.Level, id.Index)
	v, closer, err := r.Get(hashRowKey(seq))
	if err == pebble.ErrNotFound {
		return nil, &TamperedError{Seq: seq, Reason: fmt.Sprintf("tree node %d/%d missing", id.Level, id.Index)}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read tree node: %w", err)
	}
	defer closer.Close()
	if len(v) < off+32 {
		return nil, &TamperedError{Seq: seq, Reason: fmt.Sprintf("tree node %d/%d missing", id.Level, id.Index)}
	}
	return bytes.Clone(v[off : off+32]), nil
}
