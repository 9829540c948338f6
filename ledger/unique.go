package ledger

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// EntryByUnique returns the entry appended with the idempotency key k
// ([Record].Unique.Key), or [ErrNotFound]. Callers use it to answer a
// repeated request before redoing work that the original may have made
// impossible (a second erasure finds no subject). An entry whose batch is
// not yet synced is not found; Append still detects the duplicate.
func (l *Ledger) EntryByUnique(k string) (*Entry, error) {
	if !validKeyPart(k) {
		return nil, ErrNotFound
	}
	v, ok, err := get(l.db, uniqueKey(k))
	if err != nil {
		return nil, fmt.Errorf("failed to read idempotency row: %w", err)
	}
	if !ok {
		return nil, ErrNotFound
	}
	if len(v) < 8 {
		return nil, fmt.Errorf("failed to read idempotency row: %w", ErrTampered)
	}
	seq := binary.BigEndian.Uint64(v)
	e, err := l.Entry(seq)
	if err != nil {
		return nil, err
	}
	if e.Unique == nil || e.Unique.Key != k {
		return nil, &TamperedError{Seq: seq, Reason: "idempotency row names an entry with another key"}
	}
	return e, nil
}

// validKeyPart reports whether s can be a string part of a key (see key).
func validKeyPart(s string) bool {
	return s != "" && !strings.ContainsRune(s, 0)
}
