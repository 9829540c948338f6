package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// EraseSubjects removes what still links subjects (card tokens, email blind
// indexes) to dataKeys, once the caller has destroyed those keys
// (crypto-shredding, DESIGN.md policy item 5). Entries are never touched:
// their ciphertexts stay, the tree and every derived index still verify,
// and only the mutable rows outside the tree change.
//
// For each subject that has a row naming one of dataKeys:
//
//   - if every data key of the subject is in dataKeys, all of the subject's
//     rows go, with range deletions (the common case: the subject that was
//     erased, and the email or fingerprint seen only with it);
//   - otherwise the subject also has a live key (an email seen with a
//     second card, or a card used again after an earlier erasure), and only
//     its rows for dataKeys go, with the rows of the transactions whose
//     payment entries are all sealed under dataKeys (or carry no personal
//     data), so that the subject's live data stays findable.
//
// Subjects with no row naming dataKeys are left alone, so a repeated call is
// cheap. The restriction and correction rows ([TableRestricted],
// [TableCorrections]) of dataKeys are deleted too.
//
// The memtable is flushed first, then the deletions are committed as one
// synced batch, then the key range of every subject touched is compacted
// (flushing the deletions), so that the rows and their tombstones meet in a
// compaction to the bottom level, which drops both: when EraseSubjects
// returns, no live SSTable holds the erased tokens or blind indexes, and
// the SSTables it caused to be written do not have them as bounds in the
// MANIFEST. What can remain outside live SSTables (an old WAL file until it
// is recycled and overwritten, SSTable bounds recorded in the MANIFEST by
// earlier flushes and compactions until it is rotated, the view of an open
// snapshot, filesystem free blocks, backups) is described in
// docs/privacy-requests.md.
//
// An append racing the erasure leaves no row naming dataKeys behind: from
// the call on, Append refuses with [ErrDataKeyErased] a record whose
// subject rows name one of dataKeys (sealed under a key in hand before it
// was destroyed), and the rows of a batch the appender was already
// applying are committed before the subject rows are read, and so deleted.
// EraseSubjects must not be called concurrently with [Ledger.Close].
func (l *Ledger) EraseSubjects(ctx context.Context, subjects, dataKeys []string) error {
	if err := l.Healthy(); err != nil {
		return fmt.Errorf("failed to erase subjects: %w", err)
	}
	erased := make(map[string]bool, len(dataKeys))
	for _, k := range dataKeys {
		if !validKeyPart(k) {
			return errors.New("failed to erase subjects: malformed data key id")
		}
		erased[k] = true
	}
	for _, subj := range subjects {
		if !validKeyPart(subj) {
			return errors.New("failed to erase subjects: malformed subject")
		}
	}
	l.markErased(dataKeys)
	// A batch that read the erased keys before the mark is applied once
	// this returns, so the rows read below include its rows.
	l.waitApplying()
	b := l.db.NewBatch()
	defer b.Close()
	var spans [][2][]byte
	for _, subj := range subjects {
		if err := ctx.Err(); err != nil {
			return err
		}
		touched, err := l.eraseSubjectRows(b, subj, erased)
		if err != nil {
			return fmt.Errorf("failed to erase subject rows: %w", err)
		}
		if touched {
			kp, tp := key(tagSubject, subjKeys, subj), key(tagSubject, subjTxs, subj)
			spans = append(spans, [2][]byte{kp, prefixEnd(kp)}, [2][]byte{tp, prefixEnd(tp)})
		}
	}
	for _, k := range dataKeys {
		for _, table := range []string{TableRestricted, TableCorrections} {
			if err := b.Delete(key(tagState, table, k), nil); err != nil {
				return fmt.Errorf("failed to delete %s row: %w", table, err)
			}
		}
	}
	if b.Empty() {
		return nil
	}
	if len(spans) > 0 {
		// The rows go to an SSTable before the tombstones are written, so
		// that the two meet in a compaction that rewrites them. Were they
		// flushed together, the one SSTable holding both could be moved
		// down the LSM unchanged, tombstones, token and all.
		if err := l.flushBracketed(); err != nil {
			return err
		}
		// The upper bracket is there already: the state rows' deletions.
		if err := b.Delete([]byte(subjectsLow), nil); err != nil {
			return err
		}
	}
	if err := l.db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("failed to commit subject erasure: %w", err)
	}
	for _, sp := range spans {
		if err := l.db.Compact(ctx, sp[0], sp[1], false); err != nil {
			return fmt.Errorf("failed to compact erased subject rows: %w", err)
		}
	}
	return nil
}

// markErased adds dataKeys to the keys the appender refuses.
func (l *Ledger) markErased(dataKeys []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.erasedKeys()
	m := make(map[string]bool, len(old)+len(dataKeys))
	for k := range old {
		m[k] = true
	}
	for _, k := range dataKeys {
		m[k] = true
	}
	l.erased.Store(&m)
}

// waitApplying returns once the batch the appender is applying, if any, is
// applied (and visible to reads).
func (l *Ledger) waitApplying() {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
}

// erasedKeys returns the data keys EraseSubjects was called for since
// Open; the map must not be modified.
func (l *Ledger) erasedKeys() map[string]bool {
	if m := l.erased.Load(); m != nil {
		return *m
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

// flushBracketed writes the bracketing tombstones and flushes the memtable.
func (l *Ledger) flushBracketed() error {
	b := l.db.NewBatch()
	defer b.Close()
	for _, k := range []string{subjectsLow, subjectsHigh} {
		if err := b.Delete([]byte(k), nil); err != nil {
			return err
		}
	}
	if err := l.db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("failed to write bracketing tombstones: %w", err)
	}
	if err := l.db.Flush(); err != nil {
		return fmt.Errorf("failed to flush ledger: %w", err)
	}
	return nil
}

// eraseSubjectRows adds to b the deletions of subj's rows for the erased
// keys (see EraseSubjects) and reports whether there were any.
func (l *Ledger) eraseSubjectRows(b *pebble.Batch, subj string, erased map[string]bool) (bool, error) {
	keys, err := l.SubjectKeys(subj)
	if err != nil {
		return false, err
	}
	var hit, live bool
	for _, k := range keys {
		if erased[k] {
			hit = true
		} else {
			live = true
		}
	}
	if !hit {
		return false, nil
	}
	if !live {
		for _, table := range []string{subjKeys, subjTxs} {
			p := key(tagSubject, table, subj)
			if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	for _, k := range keys {
		if erased[k] {
			if err := b.Delete(key(tagSubject, subjKeys, subj, k), nil); err != nil {
				return false, err
			}
		}
	}
	txs, err := l.SubjectTransactions(subj)
	if err != nil {
		return false, err
	}
	for _, tx := range txs {
		only, err := l.sealedOnlyUnder(tx, erased)
		if err != nil {
			return false, err
		}
		if only {
			if err := b.Delete(key(tagSubject, subjTxs, subj, tx), nil); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// sealedOnlyUnder reports whether every payment entry of transaction tx is
// sealed under one of keys or has no sealed fields. A transaction whose
// state is missing counts as erased: its row links to nothing readable.
func (l *Ledger) sealedOnlyUnder(tx string, keys map[string]bool) (bool, error) {
	st, err := readTxState(l.db, tx)
	if err != nil || st == nil {
		return true, err
	}
	for _, seq := range st.Seqs {
		// Read past Size: an entry applied but not yet synced counts too.
		v, ok, err := get(l.db, entryKey(seq))
		if err != nil {
			return false, err
		}
		if !ok {
			return false, &TamperedError{Seq: seq, Reason: "transaction index names a missing entry"}
		}
		e, err := DecodeEntry(seq, v)
		if err != nil {
			return false, err
		}
		var p struct {
			DataKey string `json:"data_key"`
		}
		if err := json.Unmarshal(e.Body, &p); err != nil {
			return false, &TamperedError{Seq: seq, Reason: "payment body does not decode"}
		}
		if p.DataKey != "" && !keys[p.DataKey] {
			return false, nil
		}
	}
	return true, nil
}

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
