package reconcile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Tx is the ledger's view of one transaction, derived from its entries.
type Tx struct {
	TransactionID, MerchantID, Currency string
	// Status is the transaction's current status in the ledger's vocabulary
	// (authorized, captured, settled, refunded, partially_refunded, voided,
	// failed, chargeback). It decides status_mismatch; see the package doc.
	Status string
	// AltIDs are the other ids the transaction is known by (the Stripe
	// Charge id of a PaymentIntent).
	AltIDs []string
	// Captured is the captured amount, Refunded the cumulative refunded
	// amount, ChargedBack the charged-back amount, all in minor units of
	// Currency.
	Captured, Refunded, ChargedBack int64
	// CapturedAt is when the transaction was captured; zero if never.
	CapturedAt time.Time
}

// Ledger is what reconciliation needs from the ledger.
type Ledger interface {
	// Transaction finds a transaction by its id or one of its alt ids.
	Transaction(ctx context.Context, id string) (Tx, bool, error)
	// CapturedBetween calls fn for every transaction of merchant captured in
	// [from, to), in any order. An error from fn stops the walk and is
	// returned.
	CapturedBetween(ctx context.Context, merchant string, from, to time.Time, fn func(Tx) error) error
}

// capturedIDLister is an optional extension of [Ledger]: CapturedBetween
// listing only transaction ids, without loading each transaction. When the
// Ledger has it, missing_in_report loads only the transactions the report
// did not name by their id, rather than every capture of the period.
type capturedIDLister interface {
	CapturedIDsBetween(ctx context.Context, merchant string, from, to time.Time, fn func(id string) error) error
}

// Kind is the kind of an [Exception].
type Kind string

// Exception kinds. The first six are the contract's; out_of_scope marks a
// row of a merchant the caller may not see.
const (
	KindMissingInLedger   Kind = "missing_in_ledger"
	KindMissingInReport   Kind = "missing_in_report"
	KindAmountMismatch    Kind = "amount_mismatch"
	KindCurrencyMismatch  Kind = "currency_mismatch"
	KindStatusMismatch    Kind = "status_mismatch"
	KindDuplicateInReport Kind = "duplicate_in_report"
	KindOutOfScope        Kind = "out_of_scope"
)

// Exception is one report row, or one ledger transaction, that did not
// match.
type Exception struct {
	Kind Kind `json:"kind"`
	// Line is the report line (header = 1); 0 for missing_in_report.
	Line int `json:"line"`
	// TransactionID is the row's id as the report gives it, or the ledger's
	// id for missing_in_report.
	TransactionID string `json:"transaction_id"`
	// Ledger is nil when the ledger has nothing the caller may see:
	// missing_in_ledger, out_of_scope.
	Ledger *LedgerSide `json:"ledger"`
	// Report is nil for missing_in_report.
	Report *ReportSide `json:"report"`
}

// LedgerSide is the ledger's figure for an exception: the amount of the
// row's type (captured, cumulative refunded or charged back; captured for
// missing_in_report), in minor units.
type LedgerSide struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

// ReportSide is the report row's figure for an exception, in minor units.
type ReportSide struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Type     string `json:"type"`
}

// Counts counts report rows by outcome, plus ledger-only transactions in
// MissingInReport. Every row is counted exactly once, so the fields other
// than MissingInReport sum to [Summary.Rows].
type Counts struct {
	Matched           int `json:"matched"`
	MissingInLedger   int `json:"missing_in_ledger"`
	MissingInReport   int `json:"missing_in_report"`
	AmountMismatch    int `json:"amount_mismatch"`
	CurrencyMismatch  int `json:"currency_mismatch"`
	StatusMismatch    int `json:"status_mismatch"`
	DuplicateInReport int `json:"duplicate_in_report"`
	OutOfScope        int `json:"out_of_scope"`
}

func (c *Counts) add(k Kind) {
	switch k {
	case KindMissingInLedger:
		c.MissingInLedger++
	case KindMissingInReport:
		c.MissingInReport++
	case KindAmountMismatch:
		c.AmountMismatch++
	case KindCurrencyMismatch:
		c.CurrencyMismatch++
	case KindStatusMismatch:
		c.StatusMismatch++
	case KindDuplicateInReport:
		c.DuplicateInReport++
	case KindOutOfScope:
		c.OutOfScope++
	}
}

// Total is the signed sum of one currency's amounts in minor units; see the
// package doc for exactly what each side sums.
type Total struct {
	Ledger int64 `json:"ledger"`
	Report int64 `json:"report"`
}

// Period is the half-open interval [From, To) of capture times that
// missing_in_report looks at.
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Summary is the outcome of a reconciliation run. The caller adds its id and
// the ledger sequence number it is stored at.
type Summary struct {
	// Rows is the number of report rows reconciled (Stripe rows of skipped
	// categories excluded).
	Rows int `json:"rows"`
	// Skipped is the number of Stripe rows of other reporting categories.
	Skipped int    `json:"skipped"`
	Counts  Counts `json:"counts"`
	// Totals maps a currency code to its totals. Amounts in different
	// currencies are never added together.
	Totals map[string]Total `json:"totals"`
	// Exceptions holds the first Options.MaxExceptions exceptions, in the
	// order they were found: rows in file order, then missing_in_report.
	Exceptions []Exception `json:"exceptions"`
	// ExceptionsTruncated reports that Exceptions holds fewer than counted.
	ExceptionsTruncated bool   `json:"exceptions_truncated"`
	Period              Period `json:"period"`
	// Merchants are the merchants of the in-scope rows, sorted: the
	// merchants whose ledger data the run read.
	Merchants []string `json:"merchants"`
}

// AllMatched reports whether every row matched and no ledger transaction is
// missing from the report: `paytrail reconcile` exits 0 exactly then.
func (s *Summary) AllMatched() bool {
	return s.Counts.Matched == s.Rows && s.Counts.MissingInReport == 0
}

// DefaultMaxExceptions is the number of exceptions a Summary keeps when
// Options.MaxExceptions is 0.
const DefaultMaxExceptions = 1000

// progressEvery is how many rows pass between calls to Options.Progress.
const progressEvery = 100_000

// ErrNoScope is returned by [Run] when Options.InScope is nil.
var ErrNoScope = errors.New("no merchant scope given")

// AllMerchants is an Options.InScope for callers that may see every
// merchant, such as the operator's command line.
func AllMerchants(string) bool { return true }

// Options configure [Run].
type Options struct {
	// InScope reports whether the caller may see merchantID. Required (use
	// AllMerchants for an unrestricted caller). A row of a merchant outside
	// scope is counted as out_of_scope and never looked up, so its exception
	// says nothing about whether the ledger knows the transaction.
	InScope func(merchantID string) bool
	// From and To bound the capture times missing_in_report considers,
	// [From, To). A zero From defaults to the earliest settled_at of the
	// in-scope rows, a zero To to the latest plus one nanosecond.
	From, To time.Time
	// OnException, if set, is called with every exception as it is found;
	// an error stops the run. It sees exceptions before the run is known to
	// succeed: a caller persisting them must discard them if Run fails.
	OnException func(Exception) error
	// MaxExceptions caps the exceptions kept in Summary.Exceptions. The
	// default value is DefaultMaxExceptions; a negative value keeps none.
	MaxExceptions int
	// Progress, if set, is called with the number of rows read so far every
	// 100,000 rows.
	Progress func(rows int)
}

// Run reconciles the report read from r against l and returns the summary.
//
// On error (a malformed line, a ledger or OnException error, a cancelled
// ctx) it returns no summary; a malformed line is returned as the reader's
// *LineError. Nothing is written anywhere by Run itself.
//
// Memory is bounded by the number of distinct transactions in the report
// (one map entry of about 40 bytes each, whatever the id's length), the
// merchants, the currencies and MaxExceptions, not by the report's size in
// bytes.
func Run(ctx context.Context, l Ledger, r *Reader, opts Options) (*Summary, error) {
	if opts.InScope == nil {
		return nil, ErrNoScope
	}
	if !opts.From.IsZero() && !opts.To.IsZero() && !opts.From.Before(opts.To) {
		return nil, fmt.Errorf("failed to reconcile: period from %s is not before to %s", opts.From, opts.To)
	}
	maxEx := opts.MaxExceptions
	if maxEx == 0 {
		maxEx = DefaultMaxExceptions
	}
	rn := &runner{
		l:         l,
		opts:      opts,
		maxEx:     max(maxEx, 0),
		seen:      make(map[idKey]uint8),
		movements: make(map[idKey]struct{}),
		partial:   make(map[partialKey]*partialSum),
		merchants: make(map[string]struct{}),
		totals:    make(map[string]*Total),
		sum:       &Summary{Exceptions: []Exception{}},
	}
	for {
		if rn.sum.Rows%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("failed to reconcile: %w", err)
			}
		}
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rn.sum.Rows++
		if err := rn.row(ctx, row); err != nil {
			return nil, err
		}
		if opts.Progress != nil && rn.sum.Rows%progressEvery == 0 {
			opts.Progress(rn.sum.Rows)
		}
	}
	if err := rn.settleMovements(); err != nil {
		return nil, err
	}
	rn.sum.Skipped = r.Skipped()
	rn.sum.Merchants = make([]string, 0, len(rn.merchants))
	for m := range rn.merchants {
		rn.sum.Merchants = append(rn.sum.Merchants, m)
	}
	slices.Sort(rn.sum.Merchants) // deterministic order, also for missingInReport
	if err := rn.missingInReport(ctx); err != nil {
		return nil, err
	}
	rn.sum.Totals = make(map[string]Total, len(rn.totals))
	for cur, t := range rn.totals {
		rn.sum.Totals[cur] = *t
	}
	return rn.sum, nil
}

// idKey is the first 128 bits of the SHA-256 of a transaction id. Keying
// runner.seen by it instead of by the id halves the memory of a million
// entries (about 40 MB instead of 85 MB for Stripe-length ids) and leaves no
// pointers for the garbage collector to scan. Two distinct ids of a report
// share a key with probability about n²/2^129: 2^-89 for a million ids,
// 2^-69 for a billion, also for ids chosen by an adversary; and, unlike a
// seeded hash, SHA-256 keeps every run's outcome deterministic.
type idKey [16]byte

func keyOf(id string) idKey {
	sum := sha256.Sum256([]byte(id))
	return idKey(sum[:16])
}

// Bits of runner.seen: the row types a transaction has appeared with.
const (
	seenCharge uint8 = 1 << iota
	seenRefund
	seenChargeback
)

func seenBit(typ string) uint8 {
	switch typ {
	case TypeCharge:
		return seenCharge
	case TypeRefund:
		return seenRefund
	}
	return seenChargeback
}

type runner struct {
	l     Ledger
	opts  Options
	maxEx int
	sum   *Summary
	// seen maps each in-scope transaction of the report to the row types it
	// appeared with. The key is the digest of the ledger's id when the
	// ledger has the transaction (so rows naming it by an alt id meet), else
	// of the row's id.
	seen      map[idKey]uint8
	merchants map[string]struct{}
	totals    map[string]*Total
	// minAt and maxAt are the settled_at range of the in-scope rows.
	minAt, maxAt time.Time
	// movements and partial hold the refund and chargeback rows that are
	// individual movements (Row.Movement): they are summed per transaction
	// and type and compared once the report is read. Only such rows are
	// kept, so memory grows with the number of partial movements, not rows.
	movements map[idKey]struct{}
	partial   map[partialKey]*partialSum
	order     []*partialSum // first-line order, for deterministic output
}

type partialKey struct {
	tx  idKey
	typ string
}

// partialSum is the running sum of one transaction's movements of a type.
type partialSum struct {
	tx     Tx
	typ    string
	sum    int64
	rows   []Row
	ledger int64
}

func (rn *runner) total(cur string) *Total {
	t, ok := rn.totals[cur]
	if !ok {
		t = &Total{}
		rn.totals[strings.Clone(cur)] = t
	}
	return t
}

// signed returns amount with the sign of typ's effect on the merchant's
// balance: charges +, refunds and chargebacks −.
func signed(typ string, amount int64) int64 {
	if typ == TypeCharge {
		return amount
	}
	return -amount
}

// addInt64 returns a+b, or false if that overflows.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

func (rn *runner) emit(ex Exception) error {
	rn.sum.Counts.add(ex.Kind)
	if len(rn.sum.Exceptions) < rn.maxEx {
		rn.sum.Exceptions = append(rn.sum.Exceptions, ex)
	} else {
		rn.sum.ExceptionsTruncated = true
	}
	if rn.opts.OnException != nil {
		if err := rn.opts.OnException(ex); err != nil {
			return fmt.Errorf("failed to handle exception: %w", err)
		}
	}
	return nil
}

// lookup finds row's transaction by its id, then its alt ids.
func (rn *runner) lookup(ctx context.Context, row Row) (Tx, bool, error) {
	for i := -1; i < len(row.AltIDs); i++ {
		id := row.TransactionID
		if i >= 0 {
			id = row.AltIDs[i]
		}
		tx, ok, err := rn.l.Transaction(ctx, id)
		if err != nil {
			return Tx{}, false, fmt.Errorf("failed to look up transaction of line %d: %w", row.Line, err)
		}
		if ok {
			return tx, true, nil
		}
	}
	return Tx{}, false, nil
}

// rowException returns row's exception of kind k, with the ledger's side
// when tx is not nil. The sides are built only here: most rows match.
func rowException(k Kind, row Row, tx *Tx, ledgerAmount int64) Exception {
	ex := Exception{
		Kind:          k,
		Line:          row.Line,
		TransactionID: row.TransactionID,
		Report:        &ReportSide{Amount: row.Amount, Currency: row.Currency, Type: row.Type},
	}
	if tx != nil {
		ex.Ledger = &LedgerSide{Amount: ledgerAmount, Currency: tx.Currency, Status: tx.Status}
	}
	return ex
}

func (rn *runner) row(ctx context.Context, row Row) error {
	if !rn.opts.InScope(row.MerchantID) {
		return rn.emit(rowException(KindOutOfScope, row, nil, 0))
	}
	if _, ok := rn.merchants[row.MerchantID]; !ok {
		rn.merchants[strings.Clone(row.MerchantID)] = struct{}{}
	}
	if rn.minAt.IsZero() || row.SettledAt.Before(rn.minAt) {
		rn.minAt = row.SettledAt
	}
	if row.SettledAt.After(rn.maxAt) {
		rn.maxAt = row.SettledAt
	}
	t := rn.total(row.Currency)
	sum, ok := addInt64(t.Report, signed(row.Type, row.Amount))
	if !ok {
		return &LineError{Line: row.Line, Reason: "amount overflows the report's total"}
	}
	t.Report = sum

	tx, found, err := rn.lookup(ctx, row)
	if err != nil {
		return err
	}
	// A transaction of another merchant is reported as absent: the row's
	// merchant may be in scope while the transaction's is not.
	if found && tx.MerchantID != row.MerchantID {
		found = false
	}
	key := row.TransactionID
	var ledgerTx *Tx
	var ledgerAmount int64
	if found {
		key, ledgerTx = tx.TransactionID, &tx
		switch row.Type {
		case TypeCharge:
			ledgerAmount = tx.Captured
		case TypeRefund:
			ledgerAmount = tx.Refunded
		default:
			ledgerAmount = tx.ChargedBack
		}
	}

	bit, id := seenBit(row.Type), keyOf(key)
	if row.Movement != "" {
		return rn.movement(row, id, bit, found, ledgerTx, ledgerAmount)
	}
	seen := rn.seen[id]
	if seen&bit != 0 {
		return rn.emit(rowException(KindDuplicateInReport, row, ledgerTx, ledgerAmount))
	}
	rn.seen[id] = seen | bit

	if !found {
		return rn.emit(rowException(KindMissingInLedger, row, nil, 0))
	}
	if ledgerAmount != 0 {
		t := rn.total(tx.Currency)
		sum, ok := addInt64(t.Ledger, signed(row.Type, ledgerAmount))
		if !ok {
			return fmt.Errorf("failed to total ledger amounts at line %d: overflow", row.Line)
		}
		t.Ledger = sum
	}
	var k Kind
	switch {
	case tx.Currency != row.Currency:
		k = KindCurrencyMismatch
	case ledgerAmount == 0 && !statusAllows(row.Type, tx.Status):
		k = KindStatusMismatch
	case ledgerAmount != row.Amount:
		k = KindAmountMismatch
	default:
		rn.sum.Counts.Matched++
		return nil
	}
	return rn.emit(rowException(k, row, ledgerTx, ledgerAmount))
}

// movement handles a refund or chargeback row that is one of possibly
// several movements: the same movement twice is a duplicate; otherwise its
// amount joins the transaction's sum, compared in settleMovements.
func (rn *runner) movement(row Row, id idKey, bit uint8, found bool, tx *Tx, ledgerAmount int64) error {
	mk := keyOf("movement\x00" + row.Movement)
	if _, dup := rn.movements[mk]; dup {
		return rn.emit(rowException(KindDuplicateInReport, row, tx, ledgerAmount))
	}
	rn.movements[mk] = struct{}{}
	rn.seen[id] |= bit
	if !found {
		return rn.emit(rowException(KindMissingInLedger, row, nil, 0))
	}
	pk := partialKey{tx: id, typ: row.Type}
	p, ok := rn.partial[pk]
	if !ok {
		p = &partialSum{tx: *tx, typ: row.Type, ledger: ledgerAmount}
		rn.partial[pk] = p
		rn.order = append(rn.order, p)
	}
	sum, ok := addInt64(p.sum, row.Amount)
	if !ok {
		return &LineError{Line: row.Line, Reason: "amount overflows the transaction's total"}
	}
	p.sum = sum
	row.AltIDs = nil
	p.rows = append(p.rows, row)
	return nil
}

// settleMovements compares each transaction's summed movements with the
// ledger's cumulative amount. Every row of a sum gets the sum's outcome:
// all matched, or one exception per row (report side: the row's own
// amount; ledger side: the cumulative amount).
func (rn *runner) settleMovements() error {
	for _, p := range rn.order {
		if p.ledger != 0 {
			t := rn.total(p.tx.Currency)
			sum, ok := addInt64(t.Ledger, signed(p.typ, p.ledger))
			if !ok {
				return fmt.Errorf("failed to total ledger amounts: overflow")
			}
			t.Ledger = sum
		}
		var k Kind
		switch {
		case p.tx.Currency != p.rows[0].Currency:
			k = KindCurrencyMismatch
		case p.ledger == 0 && !statusAllows(p.typ, p.tx.Status):
			k = KindStatusMismatch
		case p.ledger != p.sum:
			k = KindAmountMismatch
		default:
			rn.sum.Counts.Matched += len(p.rows)
			continue
		}
		for _, row := range p.rows {
			if err := rn.emit(rowException(k, row, &p.tx, p.ledger)); err != nil {
				return err
			}
		}
	}
	return nil
}

// statusAllows reports whether a transaction in status may have had a
// movement of typ even though its amount for typ is zero (a zero-amount
// capture, say). It is consulted only when that amount is zero, so it only
// separates "never happened" (status_mismatch) from "happened for 0"
// (amount compared as usual).
func statusAllows(typ, status string) bool {
	switch typ {
	case TypeCharge:
		switch status {
		case "captured", "settled", "refunded", "partially_refunded", "chargeback":
			return true
		}
	case TypeRefund:
		switch status {
		case "refunded", "partially_refunded":
			return true
		}
	case TypeChargeback:
		return status == "chargeback"
	}
	return false
}

// missingInReport reports the ledger transactions of the report's in-scope
// merchants captured within the period that no charge row of the report
// named, and sets the summary's period.
func (rn *runner) missingInReport(ctx context.Context) error {
	from, to := rn.opts.From, rn.opts.To
	if from.IsZero() {
		from = rn.minAt
	}
	if to.IsZero() && !rn.maxAt.IsZero() {
		to = rn.maxAt.Add(time.Nanosecond)
	}
	rn.sum.Period = Period{From: from.UTC(), To: to.UTC()}
	if len(rn.sum.Merchants) == 0 || from.IsZero() || to.IsZero() || !from.Before(to) {
		return nil
	}
	for _, m := range rn.sum.Merchants {
		var err error
		if il, ok := rn.l.(capturedIDLister); ok {
			err = il.CapturedIDsBetween(ctx, m, from, to, func(id string) error {
				// The common case, a charge row named it by its id, needs no
				// lookup; the rest is decided by notInReport.
				if rn.seen[keyOf(id)]&seenCharge != 0 {
					return nil
				}
				tx, found, err := rn.l.Transaction(ctx, id)
				if err != nil {
					return err
				}
				if !found {
					return fmt.Errorf("ledger lists a capture it cannot find")
				}
				return rn.notInReport(m, tx)
			})
		} else {
			n := 0
			err = rn.l.CapturedBetween(ctx, m, from, to, func(tx Tx) error {
				if n++; n%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				return rn.notInReport(m, tx)
			})
		}
		if err != nil {
			return fmt.Errorf("failed to list captured transactions: %w", err)
		}
	}
	return nil
}

// notInReport reports tx, a transaction of merchant m captured within the
// period, as missing_in_report unless a charge row named it.
func (rn *runner) notInReport(m string, tx Tx) error {
	if tx.MerchantID != m {
		return nil // not ours to report; never disclose another merchant's
	}
	// A transaction captured in the period owes the report a charge row; a
	// refund or chargeback row alone does not settle that.
	if rn.seen[keyOf(tx.TransactionID)]&seenCharge != 0 {
		return nil
	}
	for _, id := range tx.AltIDs {
		if rn.seen[keyOf(id)]&seenCharge != 0 {
			return nil
		}
	}
	if tx.Captured != 0 {
		t := rn.total(tx.Currency)
		sum, ok := addInt64(t.Ledger, tx.Captured)
		if !ok {
			return fmt.Errorf("failed to total ledger amounts in %s: overflow", tx.Currency)
		}
		t.Ledger = sum
	}
	return rn.emit(Exception{
		Kind:          KindMissingInReport,
		TransactionID: tx.TransactionID,
		Ledger:        &LedgerSide{Amount: tx.Captured, Currency: tx.Currency, Status: tx.Status},
	})
}
