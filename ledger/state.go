package ledger

import (
	"fmt"
)

// State returns the value of a mutable state row written by an earlier
// record's [StateRow] (principals, restrictions), or found=false.
func (l *Ledger) State(table, k string) (v []byte, found bool, err error) {
	release, err := l.acquire()
	if err != nil {
		return nil, false, err
	}
	defer release()
	v, found, err = get(l.db, key(tagState, table, k))
	if err != nil {
		return nil, false, fmt.Errorf("failed to read %s state: %w", table, err)
	}
	return v, found, nil
}

// ScanState calls fn for every row of a state table, in key order.
func (l *Ledger) ScanState(table string, fn func(k string, v []byte) error) error {
	release, err := l.acquire()
	if err != nil {
		return err
	}
	defer release()
	prefix := key(tagState, table)
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
		if err := fn(string(k), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}
