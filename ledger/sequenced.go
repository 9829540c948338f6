package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// A ledger is fed in one of two ways, through the same appender:
//
//   - single node: handlers call [Ledger.Append], and the appender's queue
//     is the order;
//   - cluster node: an ordered, replicated log (NATS JetStream) is the
//     order, and the node's applier hands its records to [Ledger.Submit]
//     in log order, each with its log position.
//
// Either way the appender applies the records in order and
// deterministically: every node applying the same log holds byte-identical
// entries and trees.

// Pending is a submitted record on its way to disk.
type Pending struct{ req *request }

// Done is closed once the record's batch is durable, or failed.
func (p *Pending) Done() <-chan struct{} { return p.req.done }

// Result returns the record's outcome. Call it after Done is closed.
func (p *Pending) Result() (Result, error) { return p.req.res, p.req.err }

// Submit queues rec, the record at position pos (≥ 1) of the ordered log
// feeding this ledger, and returns without waiting for it. Records are
// applied in the order of the Submit calls, which must be log order from
// one goroutine; the position of the last durable one is [Ledger.Applied],
// stored atomically with it. A submitted record is always applied (no
// context can withdraw it), unless the ledger fails or closes first.
//
// Besides the records [Ledger.Append] takes, Submit takes records with no
// Kind: cut points ([Record].Cut), seeded checkpoints and state rows.
func (l *Ledger) Submit(rec Record, pos uint64) (*Pending, error) {
	if pos == 0 {
		return nil, errors.New("ledger: Submit needs a log position ≥ 1")
	}
	if l.opts.ReadOnly || l.queue == nil {
		return nil, errors.New("ledger is read-only")
	}
	req := &request{pos: pos, ctx: context.Background(), done: make(chan struct{})}
	switch {
	case rec.Entry != nil:
		e, enc, err := seededEntry(rec.Entry)
		if err != nil {
			return nil, err
		}
		rec.Kind, rec.ID, rec.Time, rec.Policy, rec.Unique = e.Kind, e.ID, e.Time, e.Policy, e.Unique
		rec.Body = nil
		if e.Kind == KindPayment {
			var p PaymentBody
			if err := e.DecodeBody(&p); err != nil {
				return nil, fmt.Errorf("failed to decode seeded payment entry %d: %w", e.Seq, err)
			}
			rec.Body = &p
		}
		req.enc = enc
	case rec.Kind != "":
		rec = canonical(rec)
		enc, err := encodeRecord(&rec)
		if err != nil {
			return nil, err
		}
		req.enc = enc
	}
	req.rec = &rec
	select {
	case l.queue <- req:
		return &Pending{req}, nil
	case <-l.stop:
		return nil, ErrClosed
	}
}

// seededEntry decodes a stored entry and re-forms the encoded record it was
// made from, so that the appender makes the same bytes at the same seq.
func seededEntry(b []byte) (*Entry, encodedRecord, error) {
	var head struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, encodedRecord{}, fmt.Errorf("%w: seeded entry does not decode", ErrSeedOrder)
	}
	e, err := DecodeEntry(head.Seq, b)
	if err != nil {
		return nil, encodedRecord{}, err
	}
	pre := newEntry(head.Seq, encodedRecord{buf: make([]byte, seqRoom)}).bytes
	if !bytes.HasPrefix(b, pre) {
		return nil, encodedRecord{}, fmt.Errorf("%w: seeded entry %d does not start as entries do", ErrSeedOrder, head.Seq)
	}
	tail := b[len(pre):]
	buf := append(make([]byte, seqRoom, seqRoom+len(tail)), tail...)
	return e, encodedRecord{buf: buf}, nil
}

// Applied returns the log position of the last durable submitted record,
// or 0 if none was.
func (l *Ledger) Applied() uint64 { return l.applied.Load() }

// UniqueSeq returns the sequence number and digest of the entry appended
// under idempotency key k, or found=false.
func (l *Ledger) UniqueSeq(k string) (seq uint64, digest []byte, found bool, err error) {
	release, err := l.acquire()
	if err != nil {
		return 0, nil, false, err
	}
	defer release()
	v, ok, err := get(l.db, uniqueKey(k))
	if err != nil || !ok {
		return 0, nil, false, err
	}
	if len(v) < 8 {
		return 0, nil, false, fmt.Errorf("failed to read idempotency row: %w", ErrTampered)
	}
	return binary.BigEndian.Uint64(v), bytes.Clone(v[8:]), true, nil
}

// Root returns the root of the tree of the given size, which must be at
// most Size.
func (l *Ledger) Root(size uint64) ([]byte, error) {
	h := l.head.Load()
	if size == h.size {
		return rootOf(h.tree), nil
	}
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	if size > h.size {
		return nil, fmt.Errorf("%w: tree size %d is beyond %d", ErrNotFound, size, h.size)
	}
	rng, err := loadTree(l.db, size)
	if err != nil {
		return nil, err
	}
	return rootOf(rng), nil
}

// checkpointCut signs (or, seeded, checks and stores) the checkpoint of a
// cut point once its batch is durable. It runs in the syncer, before the
// batch's callers are released, so a cut's caller sees its checkpoint
// stored. The cluster's agreement on the root comes first: a node that
// disagrees halts and never stores the checkpoint.
func (l *Ledger) checkpointCut(c cut) error {
	root := rootOf(c.tree)
	if c.note != nil {
		cp, err := parseCheckpointText(c.note)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSeedOrder, err)
		}
		if cp.Origin != l.origin || cp.Size != c.size || !bytes.Equal(cp.Hash, root) {
			return fmt.Errorf("%w: seeded checkpoint of size %d does not match the tree at %d", ErrSeedOrder, cp.Size, c.size)
		}
	}
	if l.signer == nil && c.note == nil {
		return l.db.Delete(pendingCutKey(c.size), pebble.Sync)
	}
	if l.opts.Agree != nil {
		if err := l.agree(c.size, root); err != nil {
			if errors.Is(err, ErrForked) && l.broken.CompareAndSwap(nil, &failure{err}) {
				l.opts.Logger.Error("halting: this node's tree disagrees with the cluster's; it applies and serves nothing more", "size", c.size, "err", err)
			}
			return err
		}
	}
	l.cp.mu.Lock()
	defer l.cp.mu.Unlock()
	if c.note != nil {
		if err := l.db.Set(checkpointKey(c.size), c.note, pebble.Sync); err != nil {
			return fmt.Errorf("failed to store seeded checkpoint: %w", err)
		}
		l.signedAt(c.size)
	} else if err := l.signTree(c.size, c.tree); err != nil {
		return err
	}
	// Stored (and synced): the cut is done. Should this delete be lost in
	// a crash, FinishCuts finds the checkpoint stored and only deletes.
	if err := l.db.Delete(pendingCutKey(c.size), pebble.Sync); err != nil {
		return fmt.Errorf("failed to finish cut: %w", err)
	}
	return nil
}

// FinishCuts signs the checkpoints of the log's cut points that a crash
// left unsigned: a cut's batch, and the log position past it, were durable
// but its checkpoint was not stored. A cluster node calls it before it
// applies anything, so that it holds every checkpoint the other nodes do.
func (l *Ledger) FinishCuts() error {
	var cuts []cut
	err := l.scan([]byte("apending_cut/"), func(rest, v []byte) error {
		if len(rest) != 8 {
			return nil
		}
		c := cut{size: binary.BigEndian.Uint64(rest)}
		if len(v) > 0 {
			c.note = bytes.Clone(v)
		}
		var err error
		c.tree, err = loadTree(l.db, c.size)
		cuts = append(cuts, c)
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to read pending cuts: %w", err)
	}
	for _, c := range cuts {
		if err := l.checkpointCut(c); err != nil {
			return fmt.Errorf("failed to finish the cut at %d: %w", c.size, err)
		}
	}
	return nil
}

// agree asks the cluster to agree on the root of size, retrying (with
// backoff) while the cluster cannot be asked: every node must sign the
// checkpoint of every cut, so none may skip one. Only a disagreement, or
// Close, ends it without agreement.
func (l *Ledger) agree(size uint64, root []byte) error {
	backoff := 50 * time.Millisecond
	for {
		err := l.opts.Agree(context.Background(), size, root)
		if err == nil || errors.Is(err, ErrForked) {
			return err
		}
		l.opts.Logger.Warn("cannot record the checkpoint's root with the cluster yet; retrying", "size", size, "err", err)
		select {
		case <-time.After(backoff):
		case <-l.stop:
			return err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// parseCheckpointText parses the body of a checkpoint note without
// checking its signatures (a seeded one is the operator's own).
func parseCheckpointText(b []byte) (*log.Checkpoint, error) {
	text, _, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		return nil, errors.New("checkpoint note has no signature")
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(append(text, '\n')); err != nil {
		return nil, fmt.Errorf("bad checkpoint: %w", err)
	}
	return &cp, nil
}

// signTree signs and durably stores the checkpoint of tree (of size) if
// none is stored for its size; if one is, it adds the current signer's
// signature when it lacks it. The caller holds cp.mu.
func (l *Ledger) signTree(size uint64, tree *compact.Range) error {
	if stored, ok, err := get(l.db, checkpointKey(size)); err != nil {
		return err
	} else if ok {
		// After a signer rotation the latest checkpoint must also carry
		// the new key's signature, or clients pinned to the new key see
		// nothing until the tree grows.
		if err := l.cosign(size, stored); err != nil {
			return err
		}
		l.cp.prev = nil
		l.signedAt(size)
		return nil
	}
	body := log.Checkpoint{Origin: l.origin, Size: size, Hash: rootOf(tree)}.Marshal()
	signers := []note.Signer{l.signer}
	if l.cp.prev != nil {
		// The first checkpoint after an online rotation (RotateSigner): a
		// verifier pinned to the old key accepts it and learns the new one.
		signers = append(signers, l.cp.prev)
	}
	signed, err := note.Sign(&note.Note{Text: string(body)}, signers...)
	if err != nil {
		return fmt.Errorf("failed to sign checkpoint: %w", err)
	}
	b := l.db.NewBatch()
	defer b.Close()
	b.Set(checkpointKey(size), signed, nil)
	if len(signers) > 1 {
		b.Set(handoverKey(size), nil, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("failed to store checkpoint: %w", err)
	}
	l.cp.prev = nil
	l.signedAt(size)
	return nil
}

// LatestCheckpointRoot returns the size of the newest stored checkpoint,
// the root it states and the root the stored tree has at that size, which
// differ only if the store was altered. found is false if there is none.
func (l *Ledger) LatestCheckpointRoot() (size uint64, stated, stored []byte, found bool, err error) {
	cp, err := l.LatestCheckpoint()
	if errors.Is(err, ErrNotFound) {
		return 0, nil, nil, false, nil
	}
	if err != nil {
		return 0, nil, nil, false, err
	}
	c, err := parseCheckpointText(cp)
	if err != nil {
		return 0, nil, nil, false, fmt.Errorf("%w: stored checkpoint: %w", ErrTampered, err)
	}
	root, err := l.Root(c.Size)
	if err != nil {
		return 0, nil, nil, false, err
	}
	return c.Size, c.Hash, root, true, nil
}

// LinkSubjects returns the subjects recorded for the event of transaction
// tx sealed under data key dataKey (its SubjectLink), found=false once
// erased. Seeding a cluster republishes them, sealed, with the event.
func (l *Ledger) LinkSubjects(tx, dataKey string) (subjects []string, found bool, err error) {
	release, err := l.acquire()
	if err != nil {
		return nil, false, err
	}
	defer release()
	v, found, err := get(l.db, key(tagSubject, subjTxKeys, tx, dataKey))
	if err != nil || !found {
		return nil, false, err
	}
	return splitSubjects(v), true, nil
}

// EachState calls fn for every row of every state table, in key order (a
// copy of the ledger's mutable state, for seeding a cluster).
func (l *Ledger) EachState(fn func(StateRow) error) error {
	return l.scan([]byte{tagState}, func(rest, v []byte) error {
		table, k, ok := bytes.Cut(rest, []byte{0})
		if !ok || len(k) == 0 || k[len(k)-1] != 0 {
			return fmt.Errorf("%w: malformed state row key", ErrTampered)
		}
		return fn(StateRow{Table: string(table), Key: string(k[:len(k)-1]), Value: bytes.Clone(v)})
	})
}

// Halt makes the ledger refuse every later append and submitted record
// with an error wrapping err (a cluster node that found its store
// disagrees with the cluster). It is undone only by reopening.
func (l *Ledger) Halt(err error) {
	if l.broken.CompareAndSwap(nil, &failure{err}) {
		l.opts.Logger.Error("ledger halted; refusing further appends until restart", "err", err)
	}
}
