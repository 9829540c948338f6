package ledger

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound is returned for an entry, checkpoint or row that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned by Append when a record's idempotency key was
	// already used with a different digest.
	ErrConflict = errors.New("idempotency conflict")
	// ErrMerchantConflict is returned by Append for a payment event whose
	// transaction id is already the transaction of another merchant: the
	// ledger never merges two merchants' payments into one transaction.
	ErrMerchantConflict = errors.New("transaction id belongs to another merchant")
	// ErrSourceConflict is returned by Append for a payment of a
	// transaction first posted by another webhook source: a source never
	// folds events into another processor's transactions.
	ErrSourceConflict = errors.New("transaction id belongs to another webhook source")
	// ErrOldLayout is returned by Open for a store whose cardholder data
	// uses a layout this version cannot act on exactly.
	ErrOldLayout = errors.New("ledger uses an older cardholder data layout")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("ledger closed")
	// ErrTampered marks corruption: stored bytes, hashes or checkpoints that
	// do not agree. Errors wrapping it never carry stored plaintext.
	ErrTampered = errors.New("ledger tampered")
	// ErrWrongLedger is returned by Open when the store holds another
	// ledger than Options.ID.
	ErrWrongLedger = errors.New("data directory holds another ledger")
	// ErrForked halts a node that computed a root for a checkpoint size
	// other than the one the cluster agreed on.
	ErrForked = errors.New("checkpoint root disagrees with the cluster")
	// ErrSeedOrder refuses a seeded entry ([Record].Entry) or checkpoint
	// that does not continue the tree where it stands.
	ErrSeedOrder = errors.New("seeded record out of order")
	// ErrClusterNode refuses to open a cluster node's ledger for writing
	// as a single node's (a CLI command writing to it offline).
	ErrClusterNode = errors.New("this ledger belongs to a cluster node: change it through the cluster's API, not offline")
	// ErrLocked is returned by Open when another process holds the data dir.
	ErrLocked = errors.New("data directory is in use by another process")
	// ErrUnavailable marks a write the store cannot make durable now: the
	// disk is full, or a commit failed. Nothing it was returned for was
	// acknowledged; it may still have been committed, so callers retry
	// with the same idempotency key.
	ErrUnavailable = errors.New("ledger unavailable")
	// ErrNoSpace marks a write refused because the store's disk is full.
	// Writes resume by themselves once space returns.
	ErrNoSpace = fmt.Errorf("%w: no space left on device", ErrUnavailable)
)

// NoSpaceError reports that writes to the store in Dir wait for disk
// space. It wraps [ErrNoSpace].
type NoSpaceError struct {
	Dir   string
	Since time.Time // zero when unknown
}

func (e *NoSpaceError) Error() string {
	if e.Since.IsZero() {
		return "disk full at " + e.Dir
	}
	return fmt.Sprintf("disk full at %s since %s", e.Dir, e.Since.UTC().Format(time.RFC3339))
}

func (e *NoSpaceError) Unwrap() error { return ErrNoSpace }

// TamperedError reports the first sequence number at which the ledger fails
// verification. It wraps [ErrTampered].
type TamperedError struct {
	Seq    uint64
	Reason string
	// Index is set when derived index rows disagree with the entries in a
	// way no single entry is to blame for (a missing, extra or altered
	// row found by comparing multiset hashes); Seq is then meaningless.
	Index bool
}

func (e *TamperedError) Error() string {
	if e.Index {
		return "ledger index rows tampered: " + e.Reason
	}
	return fmt.Sprintf("ledger tampered at sequence number %d: %s", e.Seq, e.Reason)
}

func indexTampered(reason string) *TamperedError {
	return &TamperedError{Reason: reason, Index: true}
}

func (e *TamperedError) Unwrap() error { return ErrTampered }
