package ledger

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

// writeRows writes the mutable rows of rec, appended as entry seq: subject
// rows and state rows.
func writeRows(b writer, seq uint64, rec *Record) error {
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

// SubjectKeys returns the ids of the data keys recorded for subject, in key
// order.
func (l *Ledger) SubjectKeys(subject string) ([]string, error) {
	return l.subjectRows(subjKeys, subject)
}

// SubjectTransactions returns the ids of the transactions recorded for
// subject, in id order.
func (l *Ledger) SubjectTransactions(subject string) ([]string, error) {
	return l.subjectRows(subjTxs, subject)
}

func (l *Ledger) subjectRows(table, subject string) ([]string, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	prefix := key(tagSubject, table, subject)
	it, err := prefixIter(l.db, prefix)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()[len(prefix):]
		out = append(out, string(k[:len(k)-1]))
	}
	return out, it.Error()
}
