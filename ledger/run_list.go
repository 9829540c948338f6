package ledger

import (
	"encoding/binary"
	"fmt"
)

// RunSeqs calls fn with the record id and sequence number of every
// reconciliation run and subject request (the 'i' "r" index), in id order,
// which is random: callers sort. Runs are few (one per settlement report),
// so a full scan of the index is cheap; it reads no entry.
func (l *Ledger) RunSeqs(fn func(id string, seq uint64) error) error {
	return l.scan(key(tagIndex, idxByID), func(rest, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("failed to read run index: %w", ErrTampered)
		}
		return fn(string(lastPart(rest)), binary.BigEndian.Uint64(v))
	})
}
