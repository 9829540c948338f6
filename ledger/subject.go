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

func writeSubjects(b *pebble.Batch, refs []SubjectRef) error {
	for _, r := range refs {
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
