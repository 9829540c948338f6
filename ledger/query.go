package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Read queries for the audit views: transactions in first-seen order (all,
// per merchant, or per subject) and access entries in time order.
//
// Every query reads one Pebble snapshot and returns only what is durable:
// entries with a sequence number below [Ledger.Size] at the start of the
// call. The appender makes a batch visible before its fsync completes, so a
// reader could otherwise see an entry whose append is not yet acknowledged
// (and might never be).
//
// The work of one call is bounded: it examines at most MaxScan index rows
// (DefaultMaxScan when ≤ 0) and returns a position to resume after when it
// stopped early, so a page can hold fewer than Limit items, or none, and
// still have a next position.

// DefaultMaxScan is how many index rows one query examines when its MaxScan
// is ≤ 0.
const DefaultMaxScan = 10000

// TxPos is a position in the first-seen order of transactions: ordered by
// FirstSeen, then TransactionID.
type TxPos struct {
	FirstSeen     time.Time
	TransactionID string
}

func (p TxPos) suffix() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(p.FirstSeen.UnixNano()))
	return append(append(b, p.TransactionID...), 0)
}

func (p TxPos) less(q TxPos) bool {
	a, b := p.FirstSeen.UnixNano(), q.FirstSeen.UnixNano()
	return a < b || a == b && p.TransactionID < q.TransactionID
}

// TxQuery selects transactions for [Ledger.Transactions]. Its zero value
// selects nothing: a query must name its merchants or set AllMerchants, so
// a caller that forgets the scope gets an empty page, not every merchant's
// data.
type TxQuery struct {
	// AllMerchants selects every merchant; otherwise only Merchants.
	AllMerchants bool
	Merchants    []string
	// Subjects, if set, selects only the transactions of these subjects
	// ("card:<token>", "email:<blind index>"; see [Ledger.SubjectTransactions]),
	// still limited to the merchants above. Work is then proportional to the
	// subjects' transaction count, and MaxScan does not apply.
	Subjects []string
	// From (inclusive) and To (exclusive) bound FirstSeen; zero is
	// unbounded. Times before 1970 are not supported.
	From, To time.Time
	// Status and Type, if set, keep transactions whose current status is
	// Status and that have seen an event of type Type.
	Status, Type string
	// After resumes a previous page: only positions after it are returned.
	After *TxPos
	// Limit is the page size. Required, > 0.
	Limit int
	// MaxScan caps the index rows examined. The default value is
	// DefaultMaxScan.
	MaxScan int
}

// TxPage is one page of transactions in first-seen order.
type TxPage struct {
	Items []*TxState
	// Next is the position to pass as After for the next page; nil when the
	// range is exhausted.
	Next *TxPos
}

// Transactions returns the transactions selected by q, in first-seen
// order, folded from durable entries only. It returns [ErrClosed] once the
// ledger is closed.
func (l *Ledger) Transactions(ctx context.Context, q TxQuery) (*TxPage, error) {
	if q.Limit <= 0 {
		return nil, errors.New("failed to list transactions: limit must be positive")
	}
	if q.MaxScan <= 0 {
		q.MaxScan = DefaultMaxScan
	}
	if !q.AllMerchants && len(q.Merchants) == 0 {
		return &TxPage{}, nil
	}
	lo, hi, ok := timeBounds(q.From, q.To)
	if !ok {
		return &TxPage{}, nil
	}
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	size := l.Size()
	snap := l.db.NewSnapshot()
	defer snap.Close()
	if len(q.Subjects) > 0 {
		return subjectPage(ctx, snap, size, &q)
	}

	var prefixes [][]byte
	if q.AllMerchants {
		prefixes = [][]byte{key(tagIndex, idxList)}
	} else {
		for _, m := range q.Merchants {
			p := key(tagIndex, idxMerchant, m)
			if !slices.ContainsFunc(prefixes, func(o []byte) bool { return bytes.Equal(o, p) }) {
				prefixes = append(prefixes, p)
			}
		}
	}
	// One iterator per prefix, merged on (first_seen, transaction id): the
	// suffixes after each prefix are encoded alike and sort as positions.
	its := make([]*suffixIter, 0, len(prefixes))
	defer func() {
		for _, it := range its {
			it.close()
		}
	}()
	for _, p := range prefixes {
		var start []byte
		if q.After != nil {
			start = q.After.suffix()
		}
		it, err := newSuffixIter(snap, p, lo, hi, start)
		if err != nil {
			return nil, fmt.Errorf("failed to list transactions: %w", err)
		}
		its = append(its, it)
	}

	page := &TxPage{}
	var last *TxPos
	for scanned := 0; ; scanned++ {
		var cur *suffixIter
		for _, it := range its {
			if it.valid && (cur == nil || bytes.Compare(it.suffix(), cur.suffix()) < 0) {
				cur = it
			}
		}
		if cur == nil {
			return page, firstErr(its)
		}
		if len(page.Items) == q.Limit || scanned == q.MaxScan {
			page.Next = last
			return page, nil
		}
		if scanned%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		pos, err := parseTxSuffix(cur.suffix())
		if err != nil {
			return nil, err
		}
		last = &pos
		st, err := readTxState(snap, pos.TransactionID)
		if err != nil {
			return nil, err
		}
		if st == nil {
			return nil, fmt.Errorf("failed to list transactions: index names a transaction with no state: %w", ErrTampered)
		}
		if st, err = durableState(snap, st, size); err != nil {
			return nil, err
		}
		if st != nil && q.matches(st) {
			page.Items = append(page.Items, st)
		}
		cur.next()
	}
}

// matches applies the status and type filters.
func (q *TxQuery) matches(s *TxState) bool {
	return (q.Status == "" || s.Status == q.Status) && (q.Type == "" || slices.Contains(s.Types, q.Type))
}

// subjectPage answers a query with Subjects: it reads every transaction of
// the subjects, filters, sorts and pages them.
func subjectPage(ctx context.Context, snap snapReader, size uint64, q *TxQuery) (*TxPage, error) {
	seen := map[string]bool{}
	var all []*TxState
	for _, subj := range q.Subjects {
		ids, err := rowsUnder(snap, key(tagSubject, subjTxs, subj))
		if err != nil {
			return nil, fmt.Errorf("failed to read subject transactions: %w", err)
		}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			st, err := readTxState(snap, id)
			if err != nil {
				return nil, err
			}
			if st == nil {
				continue // an alternative id, or a transaction not yet indexed
			}
			if st, err = durableState(snap, st, size); err != nil {
				return nil, err
			}
			if st == nil || !q.matches(st) || !q.AllMerchants && !slices.Contains(q.Merchants, st.MerchantID) {
				continue
			}
			pos := TxPos{st.FirstSeen, st.TransactionID}
			if !q.From.IsZero() && pos.FirstSeen.Before(q.From) || !q.To.IsZero() && !pos.FirstSeen.Before(q.To) {
				continue
			}
			if q.After != nil && !q.After.less(pos) {
				continue
			}
			all = append(all, st)
		}
	}
	slices.SortFunc(all, func(a, b *TxState) int {
		switch pa, pb := (TxPos{a.FirstSeen, a.TransactionID}), (TxPos{b.FirstSeen, b.TransactionID}); {
		case pa.less(pb):
			return -1
		case pb.less(pa):
			return 1
		}
		return 0
	})
	page := &TxPage{Items: all}
	if len(all) > q.Limit {
		page.Items = all[:q.Limit]
		last := all[q.Limit-1]
		page.Next = &TxPos{last.FirstSeen, last.TransactionID}
	}
	return page, nil
}

// DurableTransaction is [Ledger.Transaction] folded from durable entries
// only (sequence numbers below Size at the call), so a view never shows an
// event whose append is not yet acknowledged. It returns [ErrNotFound] when
// none of the transaction's entries is durable yet, and [ErrClosed] once the
// ledger is closed.
func (l *Ledger) DurableTransaction(id string) (*TxState, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	size := l.Size()
	s, err := l.transaction(id)
	if err != nil {
		return nil, err
	}
	d, err := durableState(l.db, s, size)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, ErrNotFound
	}
	return d, nil
}

// durableState returns s as folded from its entries below size: s itself
// when all of them are (the common case), a refold of the durable prefix
// otherwise, and nil when none is.
func durableState(r reader, s *TxState, size uint64) (*TxState, error) {
	n := 0
	for n < len(s.Seqs) && s.Seqs[n] < size {
		n++
	}
	switch n {
	case len(s.Seqs):
		return s, nil
	case 0:
		return nil, nil
	}
	partial := *s
	partial.Seqs = s.Seqs[:n]
	d, err := refoldTx(r, &partial)
	if err != nil {
		return nil, fmt.Errorf("failed to fold durable entries of a transaction: %w", err)
	}
	return d, nil
}

// AccessPos is a position in the time order of access entries.
type AccessPos struct {
	Time time.Time
	Seq  uint64
}

func (p AccessPos) suffix() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(p.Time.UnixNano())), p.Seq)
}

// latestAccessTime returns the time of the latest access entry of the
// ledger of size entries, found through the access index and read from the
// entry itself, or the zero time if there is none. An index row that names
// no access entry of that time is tampering: it must not set the time of
// every later access entry.
func latestAccessTime(db *pebble.DB, size uint64) (time.Time, error) {
	prefix := key(tagIndex, idxAccess)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return time.Time{}, fmt.Errorf("failed to read access index: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		return time.Time{}, it.Error()
	}
	pos, err := parseAccessRow(it.Key()[len(prefix):])
	if err != nil {
		return time.Time{}, err
	}
	if pos.Seq >= size {
		return time.Time{}, &TamperedError{Seq: size, Reason: "access index names an entry past the end"}
	}
	e, _, err := readAccessEntry(db, pos)
	if err != nil {
		return time.Time{}, err
	}
	return e.Time, nil
}

// parseAccessRow returns the position an access index row's key suffix
// holds: the entry's time and sequence number.
func parseAccessRow(sfx []byte) (AccessPos, error) {
	if len(sfx) != 16 {
		return AccessPos{}, fmt.Errorf("failed to read access index: malformed index row: %w", ErrTampered)
	}
	return AccessPos{time.Unix(0, int64(binary.BigEndian.Uint64(sfx))).UTC(), binary.BigEndian.Uint64(sfx[8:])}, nil
}

// readAccessEntry reads the entry an access index row at pos names, which
// must be an access entry of pos's time.
func readAccessEntry(r reader, pos AccessPos) (*Entry, AccessBody, error) {
	var body AccessBody
	v, ok, err := get(r, entryKey(pos.Seq))
	if err != nil {
		return nil, body, fmt.Errorf("failed to read access entry: %w", err)
	}
	if !ok {
		return nil, body, &TamperedError{Seq: pos.Seq, Reason: "access index names a missing entry"}
	}
	e, err := DecodeEntry(pos.Seq, v)
	if err != nil {
		return nil, body, err
	}
	if e.Kind != KindAccess || e.DecodeBody(&body) != nil || !e.Time.Equal(pos.Time) {
		return nil, body, &TamperedError{Seq: pos.Seq, Reason: "access index row disagrees with its entry"}
	}
	return e, body, nil
}

// AccessQuery selects access entries for [Ledger.AccessEntries].
type AccessQuery struct {
	// ActorID, if set, keeps the entries of one principal.
	ActorID string
	// From (inclusive) and To (exclusive) bound the entry time; zero is
	// unbounded.
	From, To time.Time
	// After resumes a previous page.
	After *AccessPos
	// Limit is the page size. Required, > 0.
	Limit int
	// MaxScan caps the index rows examined. The default value is
	// DefaultMaxScan.
	MaxScan int
}

// AccessRecord is one access entry.
type AccessRecord struct {
	Seq  uint64
	Time time.Time
	Body AccessBody
}

// AccessPage is one page of access entries in time order.
type AccessPage struct {
	Items []AccessRecord
	// Next is the position to pass as After for the next page; nil when no
	// durable entry follows yet.
	Next *AccessPos
}

// AccessEntries returns the access entries selected by q, in (time,
// sequence number) order, which is append order: the appender never
// stamps an access entry earlier than the one before it (see
// stampAccess), so an entry that commits after a page was read sorts after
// that page's cursor. It stops at the first entry that is not durable yet.
// It returns [ErrClosed] once the ledger is closed.
func (l *Ledger) AccessEntries(ctx context.Context, q AccessQuery) (*AccessPage, error) {
	if q.Limit <= 0 {
		return nil, errors.New("failed to list access entries: limit must be positive")
	}
	if q.MaxScan <= 0 {
		q.MaxScan = DefaultMaxScan
	}
	lo, hi, ok := timeBounds(q.From, q.To)
	if !ok {
		return &AccessPage{}, nil
	}
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	size := l.Size()
	snap := l.db.NewSnapshot()
	defer snap.Close()
	var start []byte
	if q.After != nil {
		start = q.After.suffix()
	}
	it, err := newSuffixIter(snap, key(tagIndex, idxAccess), lo, hi, start)
	if err != nil {
		return nil, fmt.Errorf("failed to list access entries: %w", err)
	}
	defer it.close()
	page := &AccessPage{}
	var last *AccessPos
	for scanned := 0; it.valid; scanned++ {
		if len(page.Items) == q.Limit || scanned == q.MaxScan {
			page.Next = last
			return page, nil
		}
		if scanned%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		pos, err := parseAccessRow(it.suffix())
		if err != nil {
			return nil, err
		}
		if pos.Seq >= size {
			page.Next = last
			return page, nil
		}
		last = &pos
		e, body, err := readAccessEntry(snap, pos)
		if err != nil {
			return nil, err
		}
		if q.ActorID == "" || body.ActorID == q.ActorID {
			page.Items = append(page.Items, AccessRecord{Seq: e.Seq, Time: e.Time, Body: body})
		}
		it.next()
	}
	return page, it.err()
}

// timeBounds encodes [from, to) as key suffix bounds (nil: unbounded). ok
// is false when the range is empty.
func timeBounds(from, to time.Time) (lo, hi []byte, ok bool) {
	if !from.IsZero() && from.UnixNano() > 0 {
		lo = u64(uint64(from.UnixNano()))
	}
	if !to.IsZero() {
		if to.UnixNano() <= 0 || !from.IsZero() && !from.Before(to) {
			return nil, nil, false
		}
		hi = u64(uint64(to.UnixNano()))
	}
	return lo, hi, true
}

// suffixIter walks the keys under one prefix within suffix bounds and
// exposes the part after the prefix.
type suffixIter struct {
	prefix []byte
	it     *pebble.Iterator
	valid  bool
}

// newSuffixIter positions an iterator on the first key under prefix whose
// suffix is ≥ lo (nil: any), < hi (nil: any) and > after (nil: any).
func newSuffixIter(r snapReader, prefix, lo, hi, after []byte) (*suffixIter, error) {
	lower := append(slices.Clip(prefix), lo...)
	upper := prefixEnd(prefix)
	if hi != nil {
		upper = append(slices.Clip(prefix), hi...)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	s := &suffixIter{prefix: prefix, it: it}
	if after == nil {
		s.valid = it.First()
		return s, nil
	}
	seek := append(slices.Clip(prefix), after...)
	s.valid = it.SeekGE(seek)
	if s.valid && bytes.Equal(it.Key(), seek) {
		s.valid = it.Next()
	}
	return s, nil
}

func (s *suffixIter) suffix() []byte { return s.it.Key()[len(s.prefix):] }
func (s *suffixIter) next()          { s.valid = s.it.Next() }
func (s *suffixIter) err() error     { return s.it.Error() }
func (s *suffixIter) close()         { s.it.Close() }

func firstErr(its []*suffixIter) error {
	for _, it := range its {
		if err := it.err(); err != nil {
			return err
		}
	}
	return nil
}

// parseTxSuffix decodes first_seen(8) txid 0x00.
func parseTxSuffix(s []byte) (TxPos, error) {
	if len(s) < 10 || s[len(s)-1] != 0 {
		return TxPos{}, fmt.Errorf("failed to list transactions: malformed index row: %w", ErrTampered)
	}
	return TxPos{
		FirstSeen:     time.Unix(0, int64(binary.BigEndian.Uint64(s))).UTC(),
		TransactionID: string(s[8 : len(s)-1]),
	}, nil
}

// rowsUnder returns the string parts that follow prefix in its keys.
func rowsUnder(r snapReader, prefix []byte) ([]string, error) {
	it, err := prefixIter(r, prefix)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) > 0 && k[len(k)-1] == 0 {
			k = k[:len(k)-1]
		}
		out = append(out, string(k))
	}
	return out, it.Error()
}
