package ledger

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Reads for reconciliation (ledger/reconcile): a consistent snapshot of
// transaction state, with the transactions captured per merchant within a
// period from the 'i' "c" index; and the entry of a reconciliation run by
// its id, from the 'i' "r" index.

// RunSeq returns the sequence number of the reconciliation run or subject
// request whose record id is id, or [ErrNotFound]. The caller checks the
// entry's kind.
func (l *Ledger) RunSeq(id string) (uint64, error) {
	if id == "" || strings.IndexByte(id, 0) >= 0 {
		return 0, ErrNotFound
	}
	release, err := l.acquire()
	if err != nil {
		return 0, err
	}
	defer release()
	v, ok, err := get(l.db, byIDKey(id))
	if err != nil {
		return 0, fmt.Errorf("failed to read run index: %w", err)
	}
	if !ok {
		return 0, ErrNotFound
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("failed to read run index: %w", ErrTampered)
	}
	return binary.BigEndian.Uint64(v), nil
}

// TxSnapshot is a consistent read-only view of the ledger's transaction
// state as of one tree size: appends committed after it was taken are not
// seen. Its methods are safe for concurrent use. Close it when done: until
// then it pins the store's files and holds the store open, so the ledger's
// Close waits for it.
type TxSnapshot struct {
	snap    *pebble.Snapshot
	size    uint64
	release func()
	once    sync.Once
}

// TxSnapshot takes a snapshot of the transaction state, or fails with
// [ErrClosed] after Close.
func (l *Ledger) TxSnapshot() (*TxSnapshot, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	snap := l.db.NewSnapshot()
	s := &TxSnapshot{snap: snap, release: release}
	if s.size, _, err = storedSize(snap); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Size returns the number of entries the snapshot's state is folded from.
// The snapshot may include a batch that is applied but whose sync has not
// yet returned; an entry appended after the snapshot was taken always has a
// sequence number of at least Size, and once such an entry is durable so is
// everything the snapshot holds (batches are synced in order).
func (s *TxSnapshot) Size() uint64 { return s.size }

// Transaction is [Ledger.Transaction] on the snapshot: the state of a
// transaction by its id or an alternative id (a Stripe charge id), or
// [ErrNotFound].
func (s *TxSnapshot) Transaction(id string) (*TxState, error) {
	return txByID(s.snap, id)
}

// CapturedBetween calls fn with the state of every transaction of merchant
// captured (its first capture's occurred_at) in [from, to), in capture time
// order, then transaction id order. An error from fn stops the walk and is
// returned as is. fn owns the state it is given.
func (s *TxSnapshot) CapturedBetween(merchant string, from, to time.Time, fn func(*TxState) error) error {
	return capturedBetween(s.snap, merchant, from, to, fn)
}

// CapturedIDsBetween is CapturedBetween listing only the transaction ids,
// read from the index keys without loading any transaction state.
func (s *TxSnapshot) CapturedIDsBetween(merchant string, from, to time.Time, fn func(id string) error) error {
	return capturedIDs(s.snap, merchant, from, to, fn)
}

// Close releases the snapshot. Calling it again does nothing.
func (s *TxSnapshot) Close() error {
	var err error
	s.once.Do(func() {
		if cerr := s.snap.Close(); cerr != nil {
			err = fmt.Errorf("failed to close snapshot: %w", cerr)
		}
		s.release()
	})
	return err
}

// txByID returns a transaction's state by its id or an alternative id, or
// ErrNotFound; the same lookup as Ledger.Transaction, on any reader.
func txByID(r reader, id string) (*TxState, error) {
	if id == "" || strings.IndexByte(id, 0) >= 0 {
		return nil, ErrNotFound
	}
	s, err := readTxState(r, id)
	if err != nil {
		return nil, err
	}
	if s != nil {
		return s, nil
	}
	alt, ok, err := get(r, altKey(id))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	if s, err = readTxState(r, string(alt)); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("failed to read transaction: alternative id names no transaction: %w", ErrTampered)
	}
	return s, nil
}

// maxKeyTime is the latest time whose UnixNano is representable, and so
// the latest a time key part can order correctly.
var maxKeyTime = time.Unix(0, math.MaxInt64)

// capturedBetween calls fn with the state of each transaction that
// capturedIDs lists.
func capturedBetween(r snapReader, merchant string, from, to time.Time, fn func(*TxState) error) error {
	return capturedIDs(r, merchant, from, to, func(id string) error {
		s, err := readTxState(r, id)
		if err != nil {
			return err
		}
		if s == nil {
			return fmt.Errorf("failed to list captures: capture index names no transaction: %w", ErrTampered)
		}
		return fn(s)
	})
}

// capturedIDs walks the 'i' "c" merchant captured_at txid rows of r.
func capturedIDs(r snapReader, merchant string, from, to time.Time, fn func(id string) error) error {
	// Keys are 0x00-terminated strings (keys.go): a merchant id holding a
	// 0x00 could reach into another merchant's rows.
	if merchant == "" || strings.IndexByte(merchant, 0) >= 0 || !from.Before(to) {
		return nil
	}
	prefix := key(tagIndex, idxCaptured, merchant)
	// Time parts are UnixNano as uint64: times before 1970 do not order, and
	// no capture is indexed before it, so the walk starts there at the
	// earliest.
	epoch := time.Unix(0, 0)
	if !to.After(epoch) {
		return nil
	}
	if from.Before(epoch) {
		from = epoch
	}
	lower := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(from.UnixNano()))
	var upper []byte
	if to.After(maxKeyTime) {
		upper = prefixEnd(prefix)
	} else {
		upper = binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(to.UnixNano()))
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("failed to list captures: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) < len(prefix)+8+1 || k[len(k)-1] != 0 {
			return fmt.Errorf("failed to list captures: malformed capture index key: %w", ErrTampered)
		}
		if err := fn(string(k[len(prefix)+8 : len(k)-1])); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("failed to list captures: %w", err)
	}
	return nil
}
