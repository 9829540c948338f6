package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

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
}

type request struct {
	ctx  context.Context
	rec  *Record
	res  Result
	err  error
	done chan struct{}
}

// Append queues rec for the next group commit and waits until the batch
// holding it is durably on disk (synced), or failed. If ctx ends first,
// Append returns ctx's error, but the record may still be committed.
func (l *Ledger) Append(ctx context.Context, rec Record) (Result, error) {
	if err := l.Healthy(); err != nil {
		return Result{}, err
	}
	req := &request{ctx: ctx, rec: &rec, done: make(chan struct{})}
	select {
	case l.queue <- req:
	case <-l.stop:
		return Result{}, ErrClosed
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// run is the appender goroutine: it takes whatever is queued (up to
// MaxBatch), commits it as one synced batch, and answers the callers. While
// one batch syncs, the next one accumulates, so N concurrent callers cost
// about one fsync per batch rather than one per entry.
func (l *Ledger) run() {
	defer close(l.stopped)
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
						l.commit(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				l.commit(batch)
			}
			return
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
		l.commit(batch)
	}
}

// commit applies and durably writes one batch, then releases its callers.
func (l *Ledger) commit(reqs []*request) {
	defer func() {
		for _, r := range reqs {
			close(r.done)
		}
	}()
	l.mu.RLock()
	broken, size := l.broken, l.size
	l.mu.RUnlock()
	if broken != nil {
		for _, r := range reqs {
			r.err = broken
		}
		return
	}

	b := l.db.NewIndexedBatch()
	defer b.Close()
	// Work on a copy of the right border so a failed commit leaves the
	// in-memory tree untouched.
	rng, err := rangeFactory.NewRange(0, l.rng.End(), cloneHashes(l.rng.Hashes()))
	if err != nil {
		l.fail(reqs, err)
		return
	}
	var visitErr error
	visit := func(id compact.NodeID, hash []byte) {
		if err := b.Set(nodeKey(id.Level, id.Index), hash, nil); err != nil && visitErr == nil {
			visitErr = err
		}
	}
	var keys []WrappedKey
	live := 0
	for _, r := range reqs {
		if r.ctx.Err() != nil {
			// The caller gave up before the record entered the log.
			r.err = r.ctx.Err()
			continue
		}
		if u := r.rec.Unique; u != nil {
			v, ok, err := get(b, uniqueKey(u.Key))
			if err != nil {
				l.fail(reqs, err)
				return
			}
			if ok {
				if len(v) < 8 {
					l.fail(reqs, fmt.Errorf("failed to read idempotency row: %w", ErrTampered))
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
		if len(r.rec.NewKeys) > 0 && l.opts.KeyStore == nil {
			r.err = fmt.Errorf("failed to append: record carries data keys but the ledger has no key store")
			continue
		}
		e, err := newEntry(size, r.rec)
		if err != nil {
			r.err = err
			continue
		}
		if err := b.Set(entryKey(size), e.bytes, nil); err != nil {
			l.fail(reqs, err)
			return
		}
		if err := rng.Append(e.leafHash, visit); err != nil {
			l.fail(reqs, err)
			return
		}
		if err := indexEntry(b, e); err != nil {
			l.fail(reqs, err)
			return
		}
		if err := writeSubjects(b, r.rec.Subjects); err != nil {
			l.fail(reqs, err)
			return
		}
		keys = append(keys, r.rec.NewKeys...)
		r.res.Seq = size
		size++
		live++
	}
	if visitErr != nil {
		l.fail(reqs, visitErr)
		return
	}
	if live == 0 && b.Empty() {
		return
	}
	if err := b.Set(metaSize, u64(size), nil); err != nil {
		l.fail(reqs, err)
		return
	}
	if len(keys) > 0 {
		// Keys first: an entry must never be durable without its key. A
		// crash between the two leaves an unused key, which is harmless.
		if err := l.opts.KeyStore.PutWrapped(context.Background(), keys); err != nil {
			l.fail(reqs, fmt.Errorf("failed to store data keys: %w", err))
			return
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		l.fail(reqs, fmt.Errorf("failed to commit batch: %w", err))
		return
	}
	root := rootOf(rng)
	l.mu.Lock()
	l.rng, l.size, l.root = rng, size, root
	l.mu.Unlock()
	l.cp.poke()
}

// fail answers every caller of the batch with err and marks the ledger
// broken: after a failed commit the in-memory and on-disk state may differ,
// so the process must restart (reopening recovers from Pebble's WAL).
func (l *Ledger) fail(reqs []*request, err error) {
	l.opts.Logger.Error("ledger commit failed; refusing further appends", "err", err)
	l.mu.Lock()
	if l.broken == nil {
		l.broken = err
	}
	l.mu.Unlock()
	for _, r := range reqs {
		r.err = err
		r.res = Result{}
	}
}

func cloneHashes(h [][]byte) [][]byte {
	out := make([][]byte, len(h))
	copy(out, h)
	return out
}
