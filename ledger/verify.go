package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// VerifyReport summarizes a successful [Ledger.Verify].
type VerifyReport struct {
	Entries      uint64
	Checkpoints  int
	Transactions int
	IndexRows    int
	Root         []byte
}

// Verify streams the whole ledger and checks that it is self-consistent:
// every entry decodes and sits at its own sequence number with no gaps; every
// leaf and node hash recomputed from the entry bytes equals the stored one;
// every stored checkpoint is signed by one of verifiers, names this ledger's
// origin and commits to the root recomputed at its size (so all checkpoints
// are consistent with each other); and every derived index row agrees with
// the entries. Memory use is independent of the ledger's size.
//
// The first disagreement is returned as a [*TamperedError] naming the lowest
// bad sequence number (wrapping [ErrTampered]); I/O errors are returned as is.
func (l *Ledger) Verify(ctx context.Context, verifiers note.Verifiers, progress func(done uint64)) (*VerifyReport, error) {
	rep := &VerifyReport{}
	snap := l.db.NewSnapshot()
	defer snap.Close()
	size, ok, err := get(snap, metaSize)
	if err != nil {
		return nil, err
	}
	var want uint64
	if ok {
		want = binary.BigEndian.Uint64(size)
	}
	if err := l.verifyTree(ctx, snap, want, verifiers, progress, rep); err != nil {
		return nil, err
	}
	if err := verifyIndexes(ctx, snap, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

type snapReader interface {
	reader
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func prefixIter(r snapReader, prefix []byte) (*pebble.Iterator, error) {
	return r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
}

// nodeChecker compares visited node hashes against stored ones, one
// sequential iterator per tree level.
type nodeChecker struct {
	r     snapReader
	iters map[uint]*pebble.Iterator
	err   error
	seq   uint64
}

func (c *nodeChecker) visit(id compact.NodeID, hash []byte) {
	if c.err != nil {
		return
	}
	it := c.iters[id.Level]
	var valid bool
	if it == nil {
		var err error
		if it, err = prefixIter(c.r, []byte{tagNode, byte(id.Level)}); err != nil {
			c.err = err
			return
		}
		c.iters[id.Level] = it
		valid = it.First()
	} else {
		valid = it.Next()
	}
	if !valid || !bytes.Equal(it.Key(), nodeKey(id.Level, id.Index)) {
		c.err = &TamperedError{Seq: c.seq, Reason: fmt.Sprintf("tree node %d/%d missing", id.Level, id.Index)}
		return
	}
	if !bytes.Equal(it.Value(), hash) {
		c.err = &TamperedError{Seq: c.seq, Reason: fmt.Sprintf("tree node %d/%d does not match the entries", id.Level, id.Index)}
	}
}

func (c *nodeChecker) close() {
	for _, it := range c.iters {
		it.Close()
	}
}

func (l *Ledger) verifyTree(ctx context.Context, r snapReader, size uint64, verifiers note.Verifiers, progress func(uint64), rep *VerifyReport) error {
	entries, err := prefixIter(r, []byte{tagEntry})
	if err != nil {
		return err
	}
	defer entries.Close()
	cps, err := prefixIter(r, []byte{tagCheckpoint})
	if err != nil {
		return err
	}
	defer cps.Close()
	nodes := &nodeChecker{r: r, iters: map[uint]*pebble.Iterator{}}
	defer nodes.close()

	rng := rangeFactory.NewEmptyRange(0)
	cpValid := cps.First()
	// checkCheckpoints verifies every stored checkpoint of tree size n.
	checkCheckpoints := func(n uint64) error {
		for ; cpValid; cpValid = cps.Next() {
			cpSize := binary.BigEndian.Uint64(cps.Key()[1:])
			if cpSize > n {
				return nil
			}
			if cpSize < n {
				return &TamperedError{Seq: cpSize, Reason: "checkpoint for a size that was skipped"}
			}
			if err := l.checkCheckpoint(cps.Value(), n, rootOf(rng), verifiers); err != nil {
				return &TamperedError{Seq: n, Reason: err.Error()}
			}
			rep.Checkpoints++
		}
		return nil
	}
	if err := checkCheckpoints(0); err != nil {
		return err
	}
	var seq uint64
	for valid := entries.First(); valid; valid = entries.Next() {
		if seq%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if progress != nil && seq > 0 {
				progress(seq)
			}
		}
		k := entries.Key()
		if len(k) != 9 {
			return &TamperedError{Seq: seq, Reason: "malformed entry key"}
		}
		if got := binary.BigEndian.Uint64(k[1:]); got != seq {
			return &TamperedError{Seq: seq, Reason: "entry missing"}
		}
		e, err := DecodeEntry(seq, bytes.Clone(entries.Value()))
		if err != nil {
			return err
		}
		nodes.seq = seq
		if err := rng.Append(e.leafHash, nodes.visit); err != nil {
			return err
		}
		if nodes.err != nil {
			return nodes.err
		}
		if err := checkEntryIndexes(r, e); err != nil {
			return err
		}
		seq++
		if err := checkCheckpoints(seq); err != nil {
			return err
		}
	}
	if seq != size {
		return &TamperedError{Seq: seq, Reason: fmt.Sprintf("tree size is %d but entries stop at %d", size, seq)}
	}
	if cpValid {
		return &TamperedError{Seq: seq, Reason: "checkpoint beyond the last entry"}
	}
	for level, it := range nodes.iters {
		if it.Next() {
			return &TamperedError{Seq: seq, Reason: fmt.Sprintf("unexpected tree node at level %d", level)}
		}
	}
	if progress != nil {
		progress(seq)
	}
	rep.Entries = seq
	rep.Root = rootOf(rng)
	return nil
}

// checkCheckpoint opens a signed checkpoint note and checks its origin, size
// and root.
func (l *Ledger) checkCheckpoint(signed []byte, size uint64, root []byte, verifiers note.Verifiers) error {
	n, err := note.Open(signed, verifiers)
	if err != nil {
		return fmt.Errorf("checkpoint of size %d: bad signature", size)
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return fmt.Errorf("checkpoint of size %d: malformed", size)
	}
	if cp.Origin != l.origin || cp.Size != size {
		return fmt.Errorf("checkpoint of size %d: wrong origin or size", size)
	}
	if !bytes.Equal(cp.Hash, root) {
		return fmt.Errorf("checkpoint of size %d: root does not match the entries", size)
	}
	return nil
}

func checkEntryIndexes(r reader, e *Entry) error {
	keys, vals := indexRowsOf(e)
	for i, k := range keys {
		v, ok, err := get(r, k)
		if err != nil {
			return err
		}
		if !ok || !bytes.Equal(v, vals[i]) {
			return &TamperedError{Seq: e.Seq, Reason: "index row missing or wrong"}
		}
	}
	if e.Kind != KindPayment {
		return nil
	}
	var p PaymentBody
	if err := e.DecodeBody(&p); err != nil {
		return &TamperedError{Seq: e.Seq, Reason: "payment body does not decode"}
	}
	if p.TransactionID == "" {
		return nil
	}
	s, err := readTxState(r, p.TransactionID)
	if err != nil {
		return err
	}
	if s == nil || !containsSeq(s.Seqs, e.Seq) {
		return &TamperedError{Seq: e.Seq, Reason: "transaction index does not list the entry"}
	}
	return nil
}

func containsSeq(s []uint64, seq uint64) bool {
	for _, v := range s {
		if v == seq {
			return true
		}
	}
	return false
}

// verifyIndexes checks every transaction state row against a re-fold of its
// entries, and that every other derived row points at an entry that
// produces it.
func verifyIndexes(ctx context.Context, r snapReader, rep *VerifyReport) error {
	it, err := prefixIter(r, []byte{tagIndex})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if rep.IndexRows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rep.IndexRows++
		k := it.Key()
		if len(k) < 4 || k[2] != 0 {
			return &TamperedError{Reason: "malformed index key"}
		}
		switch string(k[1:2]) {
		case idxTx:
			stored, err := readTxState(r, string(k[3:len(k)-1]))
			if err != nil {
				return err
			}
			if stored == nil || len(stored.Seqs) == 0 {
				return &TamperedError{Seq: 0, Reason: "empty transaction index row"}
			}
			got, err := refoldTx(r, stored)
			if err != nil {
				return err
			}
			if !sameState(got, stored) {
				return &TamperedError{Seq: stored.Seqs[0], Reason: "transaction state does not match its entries"}
			}
			for _, lk := range listKeys(got) {
				if _, ok, err := get(r, lk); err != nil {
					return err
				} else if !ok {
					return &TamperedError{Seq: stored.Seqs[0], Reason: "transaction list row missing"}
				}
			}
			rep.Transactions++
		case idxUnique, idxByID:
			v := it.Value()
			if len(v) < 8 {
				return &TamperedError{Reason: "malformed index row"}
			}
			seq := binary.BigEndian.Uint64(v)
			ev, ok, err := get(r, entryKey(seq))
			if err != nil {
				return err
			}
			if !ok {
				return &TamperedError{Seq: seq, Reason: "index row names a missing entry"}
			}
			e, err := DecodeEntry(seq, ev)
			if err != nil {
				return err
			}
			ks, vs := indexRowsOf(e)
			if !hasRow(ks, vs, k, v) {
				return &TamperedError{Seq: seq, Reason: "index row does not match its entry"}
			}
		}
	}
	return nil
}

func hasRow(keys, vals [][]byte, k, v []byte) bool {
	for i := range keys {
		if bytes.Equal(keys[i], k) && bytes.Equal(vals[i], v) {
			return true
		}
	}
	return false
}
