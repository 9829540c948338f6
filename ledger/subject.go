package ledger

import "github.com/cockroachdb/pebble/v2"

// Subject rows (mutable, outside the Merkle tree):
//
//	's' "k" subject data-key-id -> ""   data keys a subject's fields are sealed under
//	's' "t" subject txid        -> ""   transactions that carry the subject
//
// A subject is a card token or an email blind index. Erasure deletes both.
const (
	subjKeys = "k"
	subjTxs  = "t"
)

// writeRows writes a record's mutable rows: subject rows and state rows.
func writeRows(b *pebble.Batch, rec *Record) error {
	for _, r := range rec.State {
		k := key(tagState, r.Table, r.Key)
		var err error
		if r.Value == nil {
			err = b.Delete(k, nil)
		} else {
			err = b.Set(k, r.Value, nil)
		}
		if err != nil {
			return err
		}
	}
	for _, r := range rec.Subjects {
		if r.DataKey != "" {
			if err := b.Set(key(tagSubject, subjKeys, r.Subject, r.DataKey), nil, nil); err != nil {
				return err
			}
		}
		if r.TransactionID != "" {
			if err := b.Set(key(tagSubject, subjTxs, r.Subject, r.TransactionID), nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}
