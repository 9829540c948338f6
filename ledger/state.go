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
	return l.scan(key(tagState, table), func(rest, v []byte) error {
		return fn(string(lastPart(rest)), v)
	})
}

// scan calls fn, under the read lock, with the key after prefix and the
// value of every row with prefix, in key order. fn must not keep either
// slice.
func (l *Ledger) scan(prefix []byte, fn func(rest, v []byte) error) error {
	release, err := l.acquire()
	if err != nil {
		return err
	}
	defer release()
	it, err := prefixIter(l.db, prefix)
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if err := fn(it.Key()[len(prefix):], it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// lastPart strips the terminator key adds after a string part.
func lastPart(k []byte) []byte {
	if len(k) > 0 && k[len(k)-1] == 0 {
		return k[:len(k)-1]
	}
	return k
}
