package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"
)

// Result is the outcome of an append.
type Result struct {
	// Seq is the entry's sequence number; for a duplicate, the original's.
	Seq uint64
	// Duplicate is true when the record's idempotency key was already
	// appended with the same digest; nothing new was written.
	Duplicate bool
	// Shred, for an erasure ([Record].Erase), is what the caller must
	// destroy and then pass to [Ledger.FinishShred].
	Shred *Shred
}

type request struct {
	// pos is the record's position in the ordered log it came from
	// (Submit), or 0.
	pos  uint64
	ctx  context.Context
	rec  *Record
	enc  encodedRecord
	res  Result
	err  error
	done chan struct{}
}

// Append queues rec for the next group commit and waits until the batch
// holding it is durably on disk (synced), or failed. If ctx ends first,
// Append returns ctx's error, but the record may still be committed.
//
// While the disk is full Append fails at once with a [*NoSpaceError]; an
// Append already waiting when the disk fills returns one too, and its
// record may still be committed once space returns (its idempotency key
// then makes a retry a duplicate). Append never returns success for a
// record that is not durable.
func (l *Ledger) Append(ctx context.Context, rec Record) (Result, error) {
	// Taken before the health check, so that a stall that begins after it
	// closes this channel.
	stalled := l.guard.Stalled()
	if err := l.Healthy(); err != nil {
		return Result{}, err
	}
	rec = canonical(rec)
	enc, err := encodeRecord(&rec)
	if err != nil {
		return Result{}, err
	}
	req := &request{ctx: ctx, rec: &rec, enc: enc, done: make(chan struct{})}
	select {
	case l.queue <- req:
	case <-l.stop:
		return Result{}, ErrClosed
	case <-stalled:
		return Result{}, l.noSpace()
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-stalled:
		// The batch holding req waits for space (or came after one that
		// does): answer now rather than when the disk is cleaned up. req
		// may still commit then.
		select {
		case <-req.done:
			return req.res, req.err
		default:
			return Result{}, l.noSpace()
		}
	case <-l.stopped:
		// Close raced with the enqueue: the appender may have exited
		// without seeing req. Everything it did see is answered before
		// stopped closes.
		select {
		case <-req.done:
			return req.res, req.err
		default:
			return Result{}, ErrClosed
		}
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// run is the appender goroutine: it takes whatever is queued (up to
// MaxBatch), applies it as one batch and hands the batch to the syncer,
// which waits for the WAL fsync and answers the callers. While one batch
// syncs, the next ones are prepared and applied, and Pebble syncs them
// together, so N concurrent callers cost about one fsync per batch rather
// than one per entry.
func (l *Ledger) run() {
	syncq := make(chan *pending, 8)
	synced := make(chan struct{})
	go l.syncer(syncq, synced)
	defer func() {
		close(syncq)
		<-synced
		close(l.stopped)
	}()
	st := &appendState{size: l.Size(), rng: l.rng, lastAccess: l.lastAccess}
	batch := make([]*request, 0, l.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case req := <-l.queue:
			batch = append(batch, req)
		case <-l.stop:
			// Drain what was queued before Close.
			for {
				select {
				case req := <-l.queue:
					batch = append(batch, req)
					if len(batch) == cap(batch) {
						l.apply(st, batch, syncq)
						batch = make([]*request, 0, l.opts.MaxBatch)
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				l.apply(st, batch, syncq)
			}
			return
		}
		// Callers released by the last sync are runnable now, about to
		// queue their next records: yield while more keep arriving (a few
		// times at most), so this batch takes them all instead of one.
		// Without it the appender woke for each record, applied batches of
		// one or two, and its hand-offs made every caller wait longer for
		// the scheduler (BenchmarkAppend/callers=64: ~0.59 -> ~0.70 of the
		// raw baseline in the same run). With one caller nothing else is
		// runnable and the yield returns at once.
		for range 4 {
			n := len(l.queue)
			runtime.Gosched()
			if len(l.queue) == n {
				break
			}
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case req := <-l.queue:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		l.apply(st, batch, syncq)
		batch = make([]*request, 0, l.opts.MaxBatch)
	}
}

// appendState is the appender's view of the tree, including batches that
// are applied but not yet synced.
type appendState struct {
	size uint64
	rng  *compact.Range
	// lastAccess is the latest time of an access entry in the log. Access
	// entries are stamped no earlier, so that their times never decrease
	// with seq and a reader paging the access log by (time, seq) cannot
	// be passed by an entry that commits after its page was read.
	lastAccess time.Time
}

// pending is an applied batch waiting for its WAL sync.
type pending struct {
	b    *pebble.Batch
	reqs []*request
	size uint64
	rng  *compact.Range
	err  error
	// pos is the log position of the batch's last submitted record.
	pos uint64
	// cuts are the checkpoints to sign (or, seeded, to record) once the
	// batch is durable.
	cuts []cut
}

// cut is a checkpoint cut point of the log: the tree as of it, and for a
// seeded checkpoint the stored note.
type cut struct {
	req  *request
	size uint64
	tree *compact.Range
	note []byte
}

// syncer waits for each applied batch's fsync, in order, then publishes the
// new tree size and root and releases the batch's callers. Nothing is
// acknowledged, counted in Size or checkpointed before it is durable.
func (l *Ledger) syncer(q <-chan *pending, done chan<- struct{}) {
	defer close(done)
	for p := range q {
		err := p.err
		if p.b != nil {
			if serr := p.b.SyncWait(); serr != nil && err == nil {
				err = fmt.Errorf("failed to sync batch: %w", serr)
			}
			p.b.Close()
		}
		if err == nil {
			// After a failed batch, later ones (even duplicate-only batches,
			// whose originals may be in the failed one) must not succeed.
			err = l.brokenErr()
		}
		if err != nil {
			l.fail(p.reqs, err)
		} else if p.rng != nil {
			l.head.Store(&treeHead{size: p.size, tree: p.rng})
			l.cp.poke()
			for _, c := range p.cuts {
				c.req.err = l.checkpointCut(c)
			}
			// Applied counts a cut only once its checkpoint is stored.
			if p.pos > 0 {
				l.applied.Store(p.pos)
			}
		}
		for _, r := range p.reqs {
			close(r.done)
		}
	}
}

// apply prepares one batch and applies it without waiting for its sync.
func (l *Ledger) apply(st *appendState, reqs []*request, syncq chan<- *pending) {
	p := &pending{reqs: reqs}
	defer func() { syncq <- p }()
	if broken := l.brokenErr(); broken != nil {
		p.err = broken
		return
	}

	if l.applyHook != nil {
		l.applyHook()
	}

	ob := newOverlayBatch(l.db, l.txStates)
	defer ob.closeReader()
	b := ob.Batch
	// Work on a copy of the right border so a failed batch leaves the
	// appender's tree untouched.
	rng, err := rangeFactory.NewRange(0, st.rng.End(), cloneHashes(st.rng.Hashes()))
	if err != nil {
		b.Close()
		p.err = err
		return
	}
	size, lastAccess := st.size, st.lastAccess
	// hashes collects the tree hashes each leaf completes, for its row.
	hashes := make([]byte, 0, 32*8)
	visit := func(_ compact.NodeID, hash []byte) { hashes = append(hashes, hash...) }
	fail := func(err error) {
		b.Close()
		p.err = err
	}
	for _, r := range reqs {
		p.pos = max(p.pos, r.pos)
		if r.rec.Kind == "" {
			// A control record of the log: rows and cut points only.
			if err := writeRows(ob, size, r.rec, &r.res); err != nil {
				fail(err)
				return
			}
			r.res.Seq = size
			if r.rec.Cut || r.rec.Checkpoint != nil {
				c := cut{req: r, size: size, note: r.rec.Checkpoint}
				if c.tree, err = rangeFactory.NewRange(0, rng.End(), cloneHashes(rng.Hashes())); err != nil {
					fail(err)
					return
				}
				p.cuts = append(p.cuts, c)
			}
			continue
		}
		if r.ctx.Err() != nil {
			// The caller gave up before the record entered the log.
			r.err = r.ctx.Err()
			continue
		}
		if u := r.rec.Unique; u != nil {
			v, ok, err := get(ob, uniqueKey(u.Key))
			if err != nil {
				fail(err)
				return
			}
			if ok {
				if len(v) < 8 {
					fail(fmt.Errorf("failed to read idempotency row: %w", ErrTampered))
					return
				}
				r.res.Seq = binary.BigEndian.Uint64(v)
				if bytes.Equal(v[8:], u.Digest) {
					r.res.Duplicate = true
				} else {
					r.err = ErrConflict
				}
				continue
			}
		}
		// A seeded entry is a fact of the ledger it comes from, which
		// checked it against the rules of its day: it is not checked again.
		if p, ok := paymentOf(r.rec.Body); ok && p.TransactionID != "" && r.rec.Entry == nil {
			s, err := ob.txState(p.TransactionID)
			if err != nil {
				fail(err)
				return
			}
			if s != nil && s.MerchantID != p.MerchantID {
				r.err = ErrMerchantConflict
				continue
			}
			// The transaction belongs to the source that first posted it
			// (for a transaction older than this rule: the first source
			// to post after it).
			owner, found, err := get(ob, key(tagState, TableTxSource, p.TransactionID))
			if err != nil {
				fail(err)
				return
			}
			if found && string(owner) != p.Source {
				r.err = ErrSourceConflict
				continue
			}
			if !found {
				if err := ob.Set(key(tagState, TableTxSource, p.TransactionID), []byte(p.Source), nil); err != nil {
					fail(err)
					return
				}
			}
		}
		if r.rec.Kind == KindAccess && r.rec.Entry != nil {
			if t := r.rec.Time.UTC(); t.After(lastAccess) {
				lastAccess = t
			}
		} else if r.rec.Kind == KindAccess {
			moved, err := stampAccess(r, &lastAccess)
			if err != nil {
				r.err = err
				continue
			}
			if moved > time.Second {
				// More than a wait for the appender: the clock stepped
				// back, or a stored time is in the future.
				l.opts.Logger.Warn("access entry stamped later than its request to keep the access log in order; is the clock right?",
					"moved", moved.String(), "time", lastAccess.Format(time.RFC3339Nano))
			}
		}
		e := newEntry(size, r.enc)
		e.Kind, e.ID, e.Time, e.Unique = r.rec.Kind, r.rec.ID, r.rec.Time.UTC(), r.rec.Unique
		if r.rec.Entry != nil && !bytes.Equal(e.bytes, r.rec.Entry) {
			r.err = fmt.Errorf("%w: seeded entry is not entry %d", ErrSeedOrder, size)
			continue
		}
		if err := b.Set(entryKey(size), e.bytes, nil); err != nil {
			fail(err)
			return
		}
		hashes = hashes[:0]
		if err := rng.Append(e.leafHash, visit); err != nil {
			fail(err)
			return
		}
		if err := b.Set(hashRowKey(size), hashes, nil); err != nil {
			fail(err)
			return
		}
		if err := indexEntry(ob, e, r.rec.Body); err != nil {
			fail(err)
			return
		}
		if err := writeRows(ob, size, r.rec, &r.res); err != nil {
			fail(err)
			return
		}
		r.res.Seq = size
		size++
	}
	if p.pos > 0 {
		if err := b.Set(metaApplied, u64(p.pos), nil); err != nil {
			fail(err)
			return
		}
	}
	if size == st.size && b.Empty() {
		b.Close()
		return
	}
	if err := l.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		fail(fmt.Errorf("failed to commit batch: %w", err))
		return
	}
	p.b, p.size, p.rng = b, size, rng
	st.size, st.rng, st.lastAccess = size, rng, lastAccess
}

// stampAccess moves the time of access record r forward to *last if it is
// earlier, re-encoding it, makes *last its time, and returns how far it
// moved it. An access entry's time is when it was recorded, to within the
// time it waited for the appender: requests stamp their records in
// parallel and reach the appender in any order, so a record can be a few
// milliseconds older than the one before.
func stampAccess(r *request, last *time.Time) (time.Duration, error) {
	t := r.rec.Time.UTC()
	if !t.Before(*last) {
		*last = t
		return 0, nil
	}
	moved := last.Sub(t)
	r.rec.Time = *last
	enc, err := encodeRecord(r.rec)
	if err != nil {
		return 0, err
	}
	r.enc = enc
	return moved, nil
}

// fail answers every caller of the batch with err and marks the ledger
// broken: after a failed commit the in-memory and on-disk state may differ,
// and Pebble itself cannot go on after a failed WAL write or sync (see
// "Out of disk" in ledger.go), so the process must restart (reopening
// recovers from Pebble's WAL). A full disk never gets here: its writes
// wait in the [DiskGuard] instead of failing.
//
// Callers get an error wrapping [ErrUnavailable] (nothing of theirs was
// acknowledged), except for tampering, which stays [ErrTampered].
func (l *Ledger) fail(reqs []*request, err error) {
	if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// The cache may hold states of the failed batch.
	l.txStates.Purge()
	if l.broken.CompareAndSwap(nil, &failure{err}) {
		// Once: every later batch fails with the same error.
		l.opts.Logger.Error("ledger commit failed; refusing further appends until restart", "err", err)
	}
	for _, r := range reqs {
		if r.err == nil {
			r.err = err
		}
		r.res = Result{}
	}
}

func cloneHashes(h [][]byte) [][]byte {
	out := make([][]byte, len(h))
	copy(out, h)
	return out
}
