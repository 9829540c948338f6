// Package keystore keeps wrapped per-event data keys in a Pebble
// instance of their own, beside (never inside) the ledger's, so that ledger
// backups and replicas carry no keys and a destroyed key can be compacted
// out of the live files promptly.
//
// Keys are stored wrapped (encrypted by the datakey keyset, itself wrapped by
// the master key); this package never sees key material in clear.
package keystore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/paytrail/paytrail/ledger"
)

// Store is an open key store. Its methods are safe for concurrent use.
//
// On a full disk its writes wait for space (see ledger.DiskGuard) while
// its methods fail at once with an error wrapping ledger.ErrNoSpace; they
// succeed again once space returns, without a restart.
type Store struct {
	db    *pebble.DB
	guard *ledger.DiskGuard
	// mu is held for reading by every use of db and for writing by Close,
	// so that a write racing Close fails with ErrClosed instead of using a
	// closed Pebble (which panics).
	mu     sync.RWMutex
	closed bool
	// destroyMu serializes Destroy's deletions with RewrapBatch.
	destroyMu sync.Mutex
}

// ErrClosed is returned by a Store's methods after Close.
var ErrClosed = errors.New("key store closed")

// deleteCleaner deletes obsolete files (Clean and String of the embedded
// DeleteCleaner), but says it needs their contents (an unexported marker
// method promoted from ArchiveCleaner, one level deeper so that its Clean
// is shadowed): Pebble then never recycles an obsolete WAL file for a new
// WAL, which would leave the old file's wrapped keys in its unwritten
// tail. TestDestroyLeavesNoWrappedKey checks both halves.
type deleteCleaner struct {
	pebble.DeleteCleaner
	needsContents
}

type needsContents struct{ pebble.ArchiveCleaner }

// Open opens or creates the key store in dir.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Owner-only: the files hold wrapped keys.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create key store dir: %w", err)
	}
	guard := ledger.NewDiskGuard(dir, logger)
	db, err := pebble.Open(dir, &pebble.Options{
		Logger:        ledger.PebbleLogger(logger, "keystore"),
		EventListener: ledger.StoreEventListener(logger, "keystore"),
		FS:            guard.FS(vfs.Default),
		Cleaner:       deleteCleaner{},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to open key store: %w", err)
	}
	return &Store{db: db, guard: guard}, nil
}

// Healthy reports an error when the store cannot write now: after Close,
// or while its disk is full (an error wrapping ledger.ErrNoSpace).
func (s *Store) Healthy() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.guard.Err()
}

// Close closes the store. While the disk is full it does not wait for
// writes that wait for space: it returns an error wrapping
// ledger.ErrNoSpace, and the store closes once space returns.
func (s *Store) Close() error {
	done := make(chan error, 1)
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			done <- nil
			return
		}
		s.closed = true
		done <- s.db.Close()
	}()
	for {
		select {
		case err := <-done:
			return err
		case <-s.guard.Stalled():
			if err := s.guard.NoSpace(); err != nil {
				return fmt.Errorf("failed to close key store: %w", err)
			}
		}
	}
}

// write runs commit, which writes to the store, holding the store open
// until it returns. It returns commit's error, or, if the disk is full or
// fills before commit returns, an error wrapping ledger.ErrNoSpace: commit
// then goes on, and its writes may become durable once space returns.
func (s *Store) write(commit func() error) error {
	stalled := s.guard.Stalled()
	if err := s.guard.Err(); err != nil {
		return err
	}
	release, err := s.use()
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		defer release()
		done <- commit()
	}()
	select {
	case err := <-done:
		return err
	case <-stalled:
		select {
		case err := <-done:
			return err
		default:
		}
		if err := s.guard.Err(); err != nil {
			return err
		}
		return ledger.ErrNoSpace
	}
}

// use holds the store open for one call; it fails after Close.
func (s *Store) use() (release func(), err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	return s.mu.RUnlock, nil
}

func dataKey(id string) []byte { return append([]byte("k"), id...) }

// PutWrapped durably stores wrapped keys (one synced batch). Concurrent
// callers share fsyncs.
func (s *Store) PutWrapped(ctx context.Context, keys []ledger.WrappedKey) error {
	for _, k := range keys {
		if k.ID == "" || len(k.Wrapped) == 0 {
			return errors.New("failed to store data key: empty id or key")
		}
	}
	err := s.write(func() error {
		b := s.db.NewBatch()
		defer b.Close()
		for _, k := range keys {
			if err := b.Set(dataKey(k.ID), k.Wrapped, nil); err != nil {
				return fmt.Errorf("failed to store data key: %w", err)
			}
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("failed to store data keys: %w", err)
		}
		return nil
	})
	if errors.Is(err, ledger.ErrNoSpace) {
		return fmt.Errorf("failed to store data keys: %w", err)
	}
	return err
}

// Wrapped returns the wrapped key stored under id. found is false once the
// key was destroyed. It implements crypto.KeyStore.
func (s *Store) Wrapped(ctx context.Context, id string) ([]byte, bool, error) {
	release, err := s.use()
	if err != nil {
		return nil, false, err
	}
	defer release()
	v, closer, err := s.db.Get(dataKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("failed to read data key: %w", err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

// Destroy deletes the wrapped keys ids (crypto-shredding) from every file
// of the store before it returns:
//
//   - the deletions are committed in one synced batch;
//   - the memtable is flushed, so the WAL that held the keys becomes
//     obsolete, and it is deleted, never recycled (see deleteCleaner);
//   - the key range from the first id to the last is compacted to the
//     bottom level, where each key and its tombstone meet and both are
//     dropped, and the SSTables that held them are deleted;
//   - Destroy waits for those deletions.
//
// What can remain outside the store's files (filesystem free blocks, SSD
// remapped blocks, backups and copies) is described in SECURITY.md.
func (s *Store) Destroy(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	// On a full disk the erasure would wait for space; fail at once
	// instead, before anything is deleted.
	if err := s.guard.Err(); err != nil {
		return fmt.Errorf("failed to delete data keys: %w", err)
	}
	release, err := s.use()
	if err != nil {
		return err
	}
	defer release()
	ids = slices.Sorted(slices.Values(ids))
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		if err := b.Delete(dataKey(id), nil); err != nil {
			return fmt.Errorf("failed to delete data key: %w", err)
		}
	}
	s.destroyMu.Lock()
	err = b.Commit(pebble.Sync)
	s.destroyMu.Unlock()
	if err != nil {
		return fmt.Errorf("failed to delete data keys: %w", err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("failed to flush key store: %w", err)
	}
	lo, hi := dataKey(ids[0]), append(dataKey(ids[len(ids)-1]), 0)
	if err := s.db.Compact(ctx, lo, hi, true); err != nil {
		return fmt.Errorf("failed to compact key store: %w", err)
	}
	// Obsolete files are deleted in the background; the erasure is not
	// done until they are gone. (The method's name notwithstanding, it is
	// the only way Pebble offers to wait for its cleaner.)
	s.db.TestOnlyWaitForCleaning()
	return nil
}

// Each calls fn for every stored wrapped key, in id order.
func (s *Store) Each(ctx context.Context, fn func(ledger.WrappedKey) error) error {
	release, err := s.use()
	if err != nil {
		return err
	}
	defer release()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte("k"), UpperBound: []byte("l")})
	if err != nil {
		return fmt.Errorf("failed to read key store: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ledger.WrappedKey{ID: string(it.Key()[1:]), Wrapped: bytes.Clone(it.Value())}); err != nil {
			return err
		}
	}
	return it.Error()
}

// Snapshot writes a consistent copy of the store into dir, which must not
// exist, while writes go on (Pebble's Checkpoint). Keys destroyed after
// it stay in the copy: see SECURITY.md on backups and erasure.
func (s *Store) Snapshot(dir string) error {
	release, err := s.use()
	if err != nil {
		return err
	}
	defer release()
	if err := s.db.Checkpoint(dir); err != nil {
		return fmt.Errorf("failed to snapshot the key store: %w", err)
	}
	return nil
}

// Footprint reports where the store's bytes go (see ledger.Footprint):
// its rows are all of one class, "k" (wrapped data keys).
func (s *Store) Footprint() (*ledger.Footprint, error) {
	release, err := s.use()
	if err != nil {
		return nil, err
	}
	defer release()
	return ledger.StoreFootprint(s.db, func(k []byte) string { return string(k[:1]) + " data key" })
}
