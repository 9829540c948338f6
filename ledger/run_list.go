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
	release, err := l.acquire()
	if err != nil {
		return err
	}
	defer release()
	prefix := key(tagIndex, idxByID)
	it, err := prefixIter(l.db, prefix)
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) > 0 && k[len(k)-1] == 0 {
			k = k[:len(k)-1]
		}
		v := it.Value()
		if len(v) != 8 {
			return fmt.Errorf("failed to read run index: %w", ErrTampered)
		}
		if err := fn(string(k), binary.BigEndian.Uint64(v)); err != nil {
			return err
		}
	}
	return it.Error()
}
