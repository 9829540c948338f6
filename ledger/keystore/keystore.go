// Package keystore keeps wrapped per-cardholder data keys in a Pebble
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

	"github.com/cockroachdb/pebble/v2"

	"github.com/paytrail/paytrail/ledger"
)

// Store is an open key store. Its methods are safe for concurrent use.
type Store struct {
	db *pebble.DB
}

// Open opens or creates the key store in dir.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Owner-only: the files hold wrapped keys.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create key store dir: %w", err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: ledger.PebbleLogger(logger, "keystore")})
	if err != nil {
		return nil, fmt.Errorf("failed to open key store: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

func dataKey(id string) []byte { return append([]byte("k"), id...) }

// PutWrapped durably stores wrapped keys (one synced batch). Concurrent
// callers share fsyncs.
func (s *Store) PutWrapped(ctx context.Context, keys []ledger.WrappedKey) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		if k.ID == "" || len(k.Wrapped) == 0 {
			return errors.New("failed to store data key: empty id or key")
		}
		if err := b.Set(dataKey(k.ID), k.Wrapped, nil); err != nil {
			return fmt.Errorf("failed to store data key: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("failed to store data keys: %w", err)
	}
	return nil
}

// Wrapped returns the wrapped key stored under id. found is false once the
// key was destroyed. It implements crypto.KeyStore.
func (s *Store) Wrapped(ctx context.Context, id string) ([]byte, bool, error) {
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

// Destroy deletes the wrapped keys ids (crypto-shredding). Each key is
// removed with a range deletion that is synced, flushed out of the memtable
// and compacted, so that no live SSTable holds the wrapped bytes when
// Destroy returns. See SECURITY.md for what can remain outside live files
// (a recycled WAL file until it is overwritten, filesystem free blocks,
// backups).
func (s *Store) Destroy(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		k := dataKey(id)
		if err := b.DeleteRange(k, append(bytes.Clone(k), 0), nil); err != nil {
			return fmt.Errorf("failed to delete data key: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("failed to delete data keys: %w", err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("failed to flush key store: %w", err)
	}
	for _, id := range ids {
		k := dataKey(id)
		if err := s.db.Compact(ctx, k, append(bytes.Clone(k), 0), false); err != nil {
			return fmt.Errorf("failed to compact key store: %w", err)
		}
	}
	return nil
}
