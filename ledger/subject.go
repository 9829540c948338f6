package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Subject rows (mutable, outside the Merkle tree) link a cardholder's
// identifiers to transactions, and transactions to the data keys their
// personal fields are sealed under:
//
//	's' "t" subject txid            -> ""                 transactions in which an event carries the subject
//	's' "d" txid data-key-id        -> subjects, 0-joined  data keys of a transaction's events, and the
//	                                                       subjects each event carried
//
// A subject is an identifier's clear card token or blind index, prefixed by
// its kind ("card:", "email:", "fingerprint:", "customer:"). Every payment
// event is sealed under a data key of its own, so a transaction's personal
// data is exactly the data keys of its "d" rows, and an erasure, ordered
// among the appends, destroys exactly the keys of the events before it
// ([Record].Erase). Erasure deletes a transaction's rows of both kinds.
const (
	subjTxs     = "t"
	subjTxKeys  = "d"
	subjLegacyK = "k" // per-cardholder data keys of layout 1; see checkLayout
)

// SubjectLink indexes one payment event for cardholder requests: its
// transaction, the data key of its sealed fields and the subjects of the
// identifiers it carries.
type SubjectLink struct {
	TransactionID string
	DataKey       string
	Subjects      []string
}

// Erasure is the part of a subject request record that erases: the
// transactions whose subject rows the appender deletes, in order with the
// appends, and whose data keys it hands back ([Result].Shred) for the
// caller to destroy. The keys are also kept in a [TableShred] row until
// [Ledger.FinishShred], so an erasure interrupted by a crash is completed
// on the next start.
type Erasure struct {
	Transactions []string
}

// TableShred: erasure record id -> JSON of the [Shred] still to destroy.
const TableShred = "shred"

// Shred is what an erasure left to destroy: the data keys of the erased
// transactions' events and the subjects whose rows it deleted (to be
// compacted out of the store's files).
type Shred struct {
	ID       string   `json:"id"`
	DataKeys []string `json:"data_keys"`
	Subjects []string `json:"subjects"`
	TxIDs    []string `json:"transactions"`
}

// writeRows writes the mutable rows of rec, appended as entry seq: state
// rows, then subject rows (erasure first, so that a record never deletes
// its own links).
func writeRows(b *overlayBatch, seq uint64, rec *Record, res *Result) error {
	for _, r := range rec.State {
		k := key(tagState, r.Table, r.Key)
		var err error
		if r.AppendSeq {
			old, _, gerr := get(b, k)
			if gerr != nil {
				return gerr
			}
			err = b.Set(k, append(old, u64(seq)...), nil)
		} else if r.Value == nil {
			err = b.Delete(k, nil)
		} else {
			err = b.Set(k, r.Value, nil)
		}
		if err != nil {
			return err
		}
	}
	if rec.Erase != nil {
		sh, err := eraseRows(b, rec.ID, rec.Erase.Transactions)
		if err != nil {
			return err
		}
		res.Shred = sh
	}
	if l := rec.Link; l != nil && l.TransactionID != "" {
		for _, s := range l.Subjects {
			if err := b.Set(key(tagSubject, subjTxs, s, l.TransactionID), nil, nil); err != nil {
				return err
			}
		}
		if l.DataKey != "" {
			if err := b.Set(key(tagSubject, subjTxKeys, l.TransactionID, l.DataKey), joinSubjects(l.Subjects), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinSubjects(s []string) []byte { return []byte(strings.Join(s, "\x00")) }

func splitSubjects(v []byte) []string {
	if len(v) == 0 {
		return nil
	}
	return strings.Split(string(v), "\x00")
}

// eraseRows deletes, in b, the subject rows of txs and their corrections
// rows, and records what is left to destroy in a [TableShred] row. It
// reads the rows as of the batch: the store plus the batch's own earlier
// records.
func eraseRows(b *overlayBatch, id string, txs []string) (*Shred, error) {
	sh := &Shred{ID: id, TxIDs: txs}
	subjects := map[string]bool{}
	for _, tx := range txs {
		rows, err := b.prefixRows(key(tagSubject, subjTxKeys, tx))
		if err != nil {
			return nil, fmt.Errorf("failed to read data keys of a transaction: %w", err)
		}
		for _, r := range rows {
			sh.DataKeys = append(sh.DataKeys, r.part)
			for _, s := range splitSubjects(r.value) {
				if err := b.Delete(key(tagSubject, subjTxs, s, tx), nil); err != nil {
					return nil, err
				}
				subjects[s] = true
			}
			if err := b.Delete(r.key, nil); err != nil {
				return nil, err
			}
		}
		if err := b.Delete(key(tagState, TableCorrections, tx), nil); err != nil {
			return nil, err
		}
	}
	for s := range subjects {
		sh.Subjects = append(sh.Subjects, s)
	}
	slices.Sort(sh.Subjects)
	slices.Sort(sh.DataKeys)
	sh.DataKeys = slices.Compact(sh.DataKeys)
	v, err := json.Marshal(sh)
	if err != nil {
		return nil, err
	}
	// The bracketing deletions keep the erased rows' keys from being the
	// bounds of the SSTable this memtable is flushed to (see subjectsLow).
	for _, k := range []string{subjectsLow, subjectsHigh} {
		if err := b.Delete([]byte(k), nil); err != nil {
			return nil, err
		}
	}
	return sh, b.Set(key(tagState, TableShred, id), v, nil)
}

// SubjectTransactions returns the ids of the transactions in which an event
// carries subject, in id order.
func (l *Ledger) SubjectTransactions(subject string) ([]string, error) {
	return l.parts(key(tagSubject, subjTxs, subject))
}

// TransactionSubjects returns the subjects carried by the events of
// transaction tx whose data keys were not erased, sorted.
func (l *Ledger) TransactionSubjects(tx string) ([]string, error) {
	rows, err := l.rows(key(tagSubject, subjTxKeys, tx))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		out = append(out, splitSubjects(r.value)...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// TransactionDataKeys returns the ids of the data keys of transaction tx's
// events that were not erased, in id order.
func (l *Ledger) TransactionDataKeys(tx string) ([]string, error) {
	return l.parts(key(tagSubject, subjTxKeys, tx))
}

// parts returns the last key part of every row with prefix, in key order.
func (l *Ledger) parts(prefix []byte) ([]string, error) {
	rows, err := l.rows(prefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.part
	}
	return out, nil
}

// row is one row of a prefix scan: its key, the key's last string part
// (after the prefix) and its value.
type row struct {
	key   []byte
	part  string
	value []byte
}

func (l *Ledger) rows(prefix []byte) ([]row, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return scanRows(l.db, prefix)
}

func scanRows(r snapReader, prefix []byte) ([]row, error) {
	it, err := prefixIter(r, prefix)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []row
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		out = append(out, row{key: bytes.Clone(k), part: string(k[len(prefix) : len(k)-1]), value: bytes.Clone(it.Value())})
	}
	return out, it.Error()
}

// prefixRows returns the rows with prefix as the batch sees them: the
// store's, overlaid with the subject rows the batch wrote or deleted.
func (o *overlayBatch) prefixRows(prefix []byte) ([]row, error) {
	db, ok := o.db.(*filteredReader)
	if !ok {
		return nil, errors.New("ledger: batch reads no store")
	}
	rows, err := scanRows(db.db, prefix)
	if err != nil {
		return nil, err
	}
	byKey := map[string]row{}
	for _, r := range rows {
		byKey[string(r.key)] = r
	}
	for k, v := range o.subjects[string(prefix)] {
		if v == nil {
			delete(byKey, k)
		} else {
			byKey[k] = row{key: []byte(k), part: k[len(prefix) : len(k)-1], value: *v}
		}
	}
	out := make([]row, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b row) int { return bytes.Compare(a.key, b.key) })
	return out, nil
}

// PendingShreds returns the erasures whose keys are not yet known to be
// destroyed ([Ledger.FinishShred] not called).
func (l *Ledger) PendingShreds() ([]Shred, error) {
	var out []Shred
	err := l.ScanState(TableShred, func(_ string, v []byte) error {
		var sh Shred
		if err := json.Unmarshal(v, &sh); err != nil {
			return fmt.Errorf("failed to decode pending erasure: %w", ErrTampered)
		}
		out = append(out, sh)
		return nil
	})
	return out, err
}

// FinishShred purges the deleted subject rows of erasure sh from the
// store's files and then forgets sh: the caller has destroyed its data
// keys. The memtable is flushed and the key range of every row sh deleted
// is compacted, so that the rows and their tombstones meet in a compaction
// to the bottom level, which drops both: when FinishShred returns, no live
// SSTable holds the erased transactions' tokens or blind indexes.
func (l *Ledger) FinishShred(ctx context.Context, sh Shred) error {
	release, err := l.acquire()
	if err != nil {
		return err
	}
	defer release()
	// One span per table, from the first erased row to the last: subjects
	// and transaction ids are scattered, and one compaction of the span
	// costs less than one per subject or transaction (each of which would
	// rewrite the files it overlaps at every level).
	var spans [][2][]byte
	for _, t := range []struct {
		table string
		ids   []string
	}{{subjTxs, sh.Subjects}, {subjTxKeys, sh.TxIDs}} {
		if len(t.ids) == 0 {
			continue
		}
		ids := slices.Sorted(slices.Values(t.ids))
		spans = append(spans, [2][]byte{key(tagSubject, t.table, ids[0]), prefixEnd(key(tagSubject, t.table, ids[len(ids)-1]))})
	}
	if err := l.db.Flush(); err != nil {
		return fmt.Errorf("failed to flush erased subject rows: %w", err)
	}
	for _, sp := range spans {
		if err := l.db.Compact(ctx, sp[0], sp[1], true); err != nil {
			return fmt.Errorf("failed to compact erased subject rows: %w", err)
		}
	}
	if err := l.db.Delete(key(tagState, TableShred, sh.ID), pebble.Sync); err != nil {
		return fmt.Errorf("failed to record a finished erasure: %w", err)
	}
	return nil
}

// subjectsLow and subjectsHigh bracket the subject rows: "s" sorts before
// every subject row and "x" after them, and neither key is ever written.
// Deleting both in a memtable makes the SSTable it is flushed to start and
// end outside the subject rows. This matters because Pebble records every
// SSTable's smallest and largest keys in its MANIFEST, which keeps them
// until it is rotated: a bound must not be an erased subject's row.
const (
	subjectsLow  = string(rune(tagSubject))
	subjectsHigh = string(rune(tagState))
)

// checkLayout refuses a store of layout 1, which sealed a cardholder's
// fields under one data key per card or email shared by every transaction
// carrying it: an erasure there cannot be limited to one merchant's
// transactions, and its subject rows cannot be mapped onto per-event keys
// without the keys' owners. The rows are recognised by their table.
func checkLayout(db *pebble.DB, dir string) error {
	rows, err := func() (bool, error) {
		it, err := prefixIter(db, key(tagSubject, subjLegacyK))
		if err != nil {
			return false, err
		}
		defer it.Close()
		return it.First(), it.Error()
	}()
	if err != nil {
		return fmt.Errorf("failed to read ledger layout: %w", err)
	}
	if rows {
		return fmt.Errorf("%w: %s holds cardholder data sealed under per-cardholder data keys (layout 1); this version seals each event under its own key and cannot erase layout-1 data exactly: keep the old binary for this data dir, or start a new one (see docs/operations.md, changelog)", ErrOldLayout, dir)
	}
	return nil
}
