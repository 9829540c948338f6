package reconcile

import (
	"context"
	"errors"
	"time"

	"github.com/paytrail/paytrail/ledger"
)

// Snapshot is the [Ledger] over a *ledger.Ledger: it reads a consistent
// snapshot of the ledger's transaction state, so that a run sees the ledger
// as of one tree size whatever is appended meanwhile. Close it when done;
// the ledger's Close waits for it.
type Snapshot struct {
	snap *ledger.TxSnapshot
}

// NewSnapshot takes a snapshot of l's transaction state.
func NewSnapshot(l *ledger.Ledger) (*Snapshot, error) {
	snap, err := l.TxSnapshot()
	if err != nil {
		return nil, err
	}
	return &Snapshot{snap: snap}, nil
}

// LedgerSize returns the tree size the snapshot's state is folded from:
// every entry below it and none at or above it.
func (s *Snapshot) LedgerSize() uint64 { return s.snap.Size() }

// Close releases the snapshot. Calling it again does nothing.
func (s *Snapshot) Close() error { return s.snap.Close() }

// Transaction implements [Ledger]. It finds the transaction by its id or one
// of its alt ids (a Stripe charge id).
func (s *Snapshot) Transaction(ctx context.Context, id string) (Tx, bool, error) {
	if err := ctx.Err(); err != nil {
		return Tx{}, false, err
	}
	st, err := s.snap.Transaction(id)
	if errors.Is(err, ledger.ErrNotFound) {
		return Tx{}, false, nil
	}
	if err != nil {
		return Tx{}, false, err
	}
	return txOf(st), true, nil
}

// CapturedBetween implements [Ledger] over the ledger's index of captures
// per merchant, in capture time order.
func (s *Snapshot) CapturedBetween(ctx context.Context, merchant string, from, to time.Time, fn func(Tx) error) error {
	n := 0
	return s.snap.CapturedBetween(merchant, from, to, func(st *ledger.TxState) error {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return fn(txOf(st))
	})
}

// CapturedIDsBetween implements the optional capturedIDLister: the ids of
// CapturedBetween, read from the index alone.
func (s *Snapshot) CapturedIDsBetween(ctx context.Context, merchant string, from, to time.Time, fn func(id string) error) error {
	n := 0
	return s.snap.CapturedIDsBetween(merchant, from, to, func(id string) error {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return fn(id)
	})
}

// txOf is the reconciliation view of a transaction's folded state.
func txOf(s *ledger.TxState) Tx {
	return Tx{
		TransactionID: s.TransactionID,
		MerchantID:    s.MerchantID,
		Currency:      s.Currency,
		Status:        s.Status,
		AltIDs:        s.AltIDs,
		Captured:      s.Captured,
		Refunded:      s.Refunded,
		ChargedBack:   s.ChargedBack,
		CapturedAt:    s.CapturedAt,
	}
}
