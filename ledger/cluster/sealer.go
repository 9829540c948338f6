package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// DataKeySealer is the [Sealer] of a node: it seals under the per-event
// data keys of crypto.DataKeys, with associated data naming the ledger,
// the record and the part, exactly as entries' fields are sealed.
type DataKeySealer struct {
	LedgerID string
	DataKeys *crypto.DataKeys
	// Store keeps the keys NewKey makes.
	Store interface {
		PutWrapped(ctx context.Context, keys []ledger.WrappedKey) error
	}
}

func (s *DataKeySealer) ad(recordID, part string) crypto.AD {
	return crypto.AD{Ledger: s.LedgerID, Entry: recordID, Field: part}
}

// Seal implements [Sealer].
func (s *DataKeySealer) Seal(ctx context.Context, keyID, recordID, part string, plaintext []byte) ([]byte, error) {
	k, err := s.DataKeys.Get(ctx, keyID)
	if err != nil {
		return nil, err
	}
	return k.Seal(s.ad(recordID, part), plaintext)
}

// Open implements [Sealer].
func (s *DataKeySealer) Open(ctx context.Context, keyID, recordID, part string, ciphertext []byte) ([]byte, error) {
	k, err := s.DataKeys.Get(ctx, keyID)
	if errors.Is(err, crypto.ErrDataKeyDestroyed) {
		return nil, fmt.Errorf("%w: %w", ErrKeyGone, err)
	}
	if err != nil {
		return nil, err
	}
	plain, err := k.Open(s.ad(recordID, part), ciphertext)
	if errors.Is(err, crypto.ErrDecrypt) {
		// Not this key's ciphertext for this record: no retry will help.
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return plain, err
}

// SealNew implements [Sealer].
func (s *DataKeySealer) SealNew(ctx context.Context, recordID, part string, plaintext []byte) (string, []byte, error) {
	k, wrapped, err := s.DataKeys.New()
	if err != nil {
		return "", nil, err
	}
	if err := s.Store.PutWrapped(ctx, []ledger.WrappedKey{{ID: k.ID(), Wrapped: wrapped}}); err != nil {
		return "", nil, err
	}
	box, err := k.Seal(s.ad(recordID, part), plaintext)
	if err != nil {
		return "", nil, err
	}
	return k.ID(), box, nil
}
