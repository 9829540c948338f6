package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Derived index rows, all under tagIndex and rebuildable from entries:
//
//	'i' "u" key              -> seq(8) digest       idempotency keys
//	'i' "t" txid             -> TxState JSON        transaction state, with its card entry's card (CardCopy)
//	'i' "a" alt id           -> txid                alternative transaction ids (Stripe charge ids)
//	'i' "l" first_seen txid  -> ""                  transactions by first occurrence
//	'i' "m" merchant first_seen txid -> ""          the same per merchant
//	'i' "c" merchant captured_at txid -> ""         captures per merchant, for reconciliation
//	'i' "A" time seq         -> ""                  access entries by time
//	'i' "r" entry id         -> seq(8)              reconciliation runs and subject requests by id
//	'i' "e" txid seq         -> fold row            each payment entry's contribution to its transaction (foldrow.go)
const (
	idxUnique   = "u"
	idxTx       = "t"
	idxAlt      = "a"
	idxList     = "l"
	idxMerchant = "m"
	idxCaptured = "c"
	idxAccess   = "A"
	idxByID     = "r"
	idxTxEntry  = "e"
)

func uniqueKey(k string) []byte   { return key(tagIndex, idxUnique, k) }
func txStateKey(id string) []byte { return key(tagIndex, idxTx, id) }
func altKey(id string) []byte     { return key(tagIndex, idxAlt, id) }
func byIDKey(id string) []byte    { return key(tagIndex, idxByID, id) }

func txEntryKey(txid string, seq uint64) []byte { return key(tagIndex, idxTxEntry, txid, seq) }

// txEntryRow returns the 'e' row of payment entry seq, whose id is
// entryID (see foldrow.go), and the entry's card copy (nil if it is not a
// card entry). Without copies, it is the row of an entry appended before
// card copies were kept: no copy, no digest.
func txEntryRow(seq uint64, entryID string, p *PaymentBody, copies bool) (k, v []byte, card *CardCopy) {
	in := foldInputOf(p)
	if in.Card && copies {
		card = cardCopyOf(entryID, p)
		in.CardDigest = cardDigest(appendCardCopy(make([]byte, 0, 512), card))
	}
	return txEntryKey(p.TransactionID, seq), appendFoldRow(nil, in), card
}

func listKeys(s *TxState) [][]byte {
	ks := [][]byte{
		key(tagIndex, idxList, s.FirstSeen, s.TransactionID),
		key(tagIndex, idxMerchant, s.MerchantID, s.FirstSeen, s.TransactionID),
	}
	if !s.CapturedAt.IsZero() {
		ks = append(ks, key(tagIndex, idxCaptured, s.MerchantID, s.CapturedAt, s.TransactionID))
	}
	return ks
}

// reader is the read side of a Pebble DB or indexed batch.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// writer is the write side of a Pebble batch.
type writer interface {
	reader
	Set(key, value []byte, o *pebble.WriteOptions) error
	Delete(key []byte, o *pebble.WriteOptions) error
}

// overlayBatch is a plain (unindexed) Pebble batch plus a map of the index
// rows written to it, so the appender can read its own writes without the
// cost of an indexed batch. Batches applied earlier are visible in the DB.
type overlayBatch struct {
	*pebble.Batch
	db      reader
	written map[string][]byte // nil value: deleted
	// subjects are the transaction data key rows written (nil: deleted),
	// by transaction prefix ('s' "d" txid), which an erasure later in the
	// batch reads (prefixRows).
	subjects map[string]map[string]*[]byte
	states   *lru.Cache[string, *TxState]
}

// newOverlayBatch starts a batch whose reads see db plus the batch's own
// writes. Call closeReader when done reading.
func newOverlayBatch(db *pebble.DB, states *lru.Cache[string, *TxState]) *overlayBatch {
	return &overlayBatch{Batch: db.NewBatch(), db: &filteredReader{db: db}, written: map[string][]byte{}, subjects: map[string]map[string]*[]byte{}, states: states}
}

// closeReader releases the batch's view of the store (not the batch).
func (o *overlayBatch) closeReader() {
	if r, ok := o.db.(*filteredReader); ok && r.it != nil {
		r.it.Close()
	}
}

// filteredReader answers point reads through one iterator that consults
// the bloom filters of every level. Pebble's Get skips the last level's
// filters, so looking up an absent key — the appender's common case: a new
// event's idempotency key, a new transaction — read and decompressed a data
// block of the last level every time. The iterator is made on first use (a
// batch of admin entries reads nothing) and sees the store as of then.
type filteredReader struct {
	db *pebble.DB
	it *pebble.Iterator
}

func (r *filteredReader) Get(k []byte) ([]byte, io.Closer, error) {
	if r.it == nil {
		it, err := r.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
		if err != nil {
			return nil, nil, err
		}
		r.it = it
	}
	if !r.it.SeekPrefixGE(k) || !bytes.Equal(r.it.Key(), k) {
		if err := r.it.Error(); err != nil {
			return nil, nil, err
		}
		return nil, nil, pebble.ErrNotFound
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		return nil, nil, err
	}
	// v is valid until the iterator moves; get copies it at once.
	return v, io.NopCloser(nil), nil
}

// txState returns a transaction's current state for the appender: from the
// cache of decoded states (the appender is the only writer of state rows,
// so the cache is coherent), else from the store. The caller may mutate the
// result and must then hand it back with putTxState.
func (o *overlayBatch) txState(id string) (*TxState, error) {
	if o.states != nil {
		if s, ok := o.states.Get(id); ok {
			return s, nil
		}
	}
	return readTxState(o, id)
}

func (o *overlayBatch) putTxState(s *TxState) {
	if o.states != nil {
		o.states.Add(s.TransactionID, s)
	}
}

func (o *overlayBatch) Get(k []byte) ([]byte, io.Closer, error) {
	if v, ok := o.written[string(k)]; ok {
		if v == nil {
			return nil, nil, pebble.ErrNotFound
		}
		return v, io.NopCloser(nil), nil
	}
	return o.db.Get(k)
}

func (o *overlayBatch) Set(k, v []byte, opts *pebble.WriteOptions) error {
	if k[0] == tagIndex || k[0] == tagState {
		o.written[string(k)] = append([]byte{}, v...)
	} else if p, ok := txKeyRowPrefix(k); ok {
		c := bytes.Clone(v)
		o.subjectRows(p)[string(k)] = &c
	}
	return o.Batch.Set(k, v, opts)
}

func (o *overlayBatch) Delete(k []byte, opts *pebble.WriteOptions) error {
	if k[0] == tagIndex || k[0] == tagState {
		o.written[string(k)] = nil
	} else if p, ok := txKeyRowPrefix(k); ok {
		o.subjectRows(p)[string(k)] = nil
	}
	return o.Batch.Delete(k, opts)
}

// get returns a copy of the value at k, or nil and false.
func get(r reader, k []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(k)
	if err == pebble.ErrNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

// readTxState returns the stored state of a transaction, or nil.
func readTxState(r reader, id string) (*TxState, error) {
	v, ok, err := get(r, txStateKey(id))
	if err != nil || !ok {
		return nil, err
	}
	var s TxState
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("failed to decode state of transaction: %w", ErrTampered)
	}
	return &s, nil
}

// paymentOf returns a record body as a payment body, if it is one.
func paymentOf(body any) (*PaymentBody, bool) {
	switch p := body.(type) {
	case PaymentBody:
		return &p, true
	case *PaymentBody:
		return p, true
	}
	return nil, false
}

// indexEntry writes the derived index rows of e into w, which must be an
// indexed batch so that earlier entries of the same batch are visible. body
// is the record's body, the value e's body was encoded from.
func indexEntry(w *overlayBatch, e *Entry, body any) error {
	if e.Unique != nil {
		v := append(u64(e.Seq), e.Unique.Digest...)
		if err := w.Set(uniqueKey(e.Unique.Key), v, nil); err != nil {
			return err
		}
	}
	switch e.Kind {
	case KindPayment:
		p, ok := paymentOf(body)
		if !ok {
			return fmt.Errorf("failed to index entry: payment body is %T", body)
		}
		return indexPayment(w, e.Seq, e.ID, p)
	case KindAccess:
		return w.Set(key(tagIndex, idxAccess, e.Time, e.Seq), nil, nil)
	case KindReconciliation, KindSubjectRequest:
		return w.Set(byIDKey(e.ID), u64(e.Seq), nil)
	}
	return nil
}

func indexPayment(w *overlayBatch, seq uint64, entryID string, p *PaymentBody) error {
	if p.TransactionID == "" {
		return nil
	}
	s, err := w.txState(p.TransactionID)
	if err != nil {
		return err
	}
	if s == nil {
		s = &TxState{}
	}
	// The fields the list rows are keyed by, before this event.
	old := TxState{TransactionID: s.TransactionID, MerchantID: s.MerchantID, FirstSeen: s.FirstSeen, CapturedAt: s.CapturedAt}
	// Appends are past the ledger's size when it was opened, so past the
	// first entry with card copies.
	ek, ev, card := txEntryRow(seq, entryID, p, true)
	if err := w.Set(ek, ev, nil); err != nil {
		return err
	}
	s.fold(seq, p.TransactionID, foldInputOf(p))
	if card != nil {
		s.Card = card
	}
	v, err := marshalTxState(s)
	if err != nil {
		return err
	}
	if err := w.Set(txStateKey(s.TransactionID), v, nil); err != nil {
		return err
	}
	w.putTxState(s)
	for _, id := range p.AltIDs {
		if id != p.TransactionID {
			if err := w.Set(altKey(id), []byte(p.TransactionID), nil); err != nil {
				return err
			}
		}
	}
	// List rows move only when first_seen or captured_at changed, which
	// most events of a transaction do not do.
	if old.TransactionID != "" && old.MerchantID == s.MerchantID && old.FirstSeen.Equal(s.FirstSeen) && old.CapturedAt.Equal(s.CapturedAt) {
		return nil
	}
	var before [][]byte
	if old.TransactionID != "" {
		before = listKeys(&old)
	}
	after := listKeys(s)
	for _, k := range before {
		if !slices.ContainsFunc(after, func(a []byte) bool { return bytes.Equal(a, k) }) {
			if err := w.Delete(k, nil); err != nil {
				return err
			}
		}
	}
	for _, k := range after {
		if !slices.ContainsFunc(before, func(b []byte) bool { return bytes.Equal(b, k) }) {
			if err := w.Set(k, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// refoldTx recomputes a transaction's state from the entries stored.Seqs
// names (views use it for the durable prefix of a transaction; verify folds
// from the 'e' rows instead).
func refoldTx(r reader, stored *TxState) (*TxState, error) {
	s := &TxState{}
	for i, seq := range stored.Seqs {
		if i > 0 && seq <= stored.Seqs[i-1] {
			return nil, &TamperedError{Seq: seq, Reason: "transaction index lists entries out of order"}
		}
		v, ok, err := get(r, entryKey(seq))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &TamperedError{Seq: seq, Reason: "transaction index names a missing entry"}
		}
		var e struct {
			Kind Kind         `json:"kind"`
			ID   string       `json:"id"`
			Body lightPayment `json:"body"`
		}
		if !bytes.HasPrefix(v, entryPrefix(nil, seq)) || json.Unmarshal(v, &e) != nil {
			return nil, &TamperedError{Seq: seq, Reason: "entry bytes do not decode"}
		}
		p, err := e.Body.payment()
		if err != nil {
			return nil, &TamperedError{Seq: seq, Reason: "entry bytes do not decode"}
		}
		if e.Kind != KindPayment || p.TransactionID != stored.TransactionID {
			return nil, &TamperedError{Seq: seq, Reason: "transaction index names an entry of another transaction"}
		}
		in := foldInputOf(&p)
		s.fold(seq, p.TransactionID, in)
		if in.Card {
			s.Card = cardCopyOf(e.ID, &p)
		}
	}
	return s, nil
}

// lightPayment decodes a payment body without decoding most of its
// ciphertexts: folding needs only the names of the sealed fields, and the
// card copy the card fields.
type lightPayment struct {
	PaymentBody
	Sealed map[string]borrowedJSON `json:"sealed"`
}

// payment returns the body with the sealed field names, and nil values
// but for the card fields. It fails if those do not decode.
func (lp *lightPayment) payment() (PaymentBody, error) {
	p := lp.PaymentBody
	p.Sealed = make(map[string][]byte, len(lp.Sealed))
	for f := range lp.Sealed {
		p.Sealed[f] = nil
	}
	for _, f := range cardFields {
		if raw, ok := lp.Sealed[f]; ok {
			var ct []byte
			if err := json.Unmarshal(raw, &ct); err != nil {
				return PaymentBody{}, err
			}
			p.Sealed[f] = ct
		}
	}
	return p, nil
}

// indexRowsOf lists the immutable-per-entry index rows of e (not the
// aggregate transaction rows), with their expected values, for verify.
func indexRowsOf(e *Entry) (keys [][]byte, vals [][]byte) {
	if e.Unique != nil {
		keys = append(keys, uniqueKey(e.Unique.Key))
		vals = append(vals, append(u64(e.Seq), e.Unique.Digest...))
	}
	switch e.Kind {
	case KindAccess:
		keys = append(keys, key(tagIndex, idxAccess, e.Time, e.Seq))
		vals = append(vals, nil)
	case KindReconciliation, KindSubjectRequest:
		keys = append(keys, byIDKey(e.ID))
		vals = append(vals, u64(e.Seq))
	}
	return keys, vals
}

// txKeyRowPrefix returns the transaction prefix ('s' "d" txid) of a
// transaction data key row, and false for any other key.
func txKeyRowPrefix(k []byte) (string, bool) {
	if len(k) < 3 || k[0] != tagSubject || k[1] != subjTxKeys[0] || k[2] != 0 {
		return "", false
	}
	end := bytes.IndexByte(k[3:], 0)
	if end < 0 {
		return "", false
	}
	return string(k[:3+end+1]), true
}

func (o *overlayBatch) subjectRows(prefix string) map[string]*[]byte {
	m := o.subjects[prefix]
	if m == nil {
		m = map[string]*[]byte{}
		o.subjects[prefix] = m
	}
	return m
}
