package reconcile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/paytrail/paytrail/ledger/money"
)

// Report formats accepted by [NewReader].
const (
	// FormatGeneric is paytrail's generic settlement CSV.
	FormatGeneric = "generic"
	// FormatStripe is Stripe's itemized balance change report
	// (balance_change_from_activity.itemized.3).
	FormatStripe = "stripe"
)

// Row types. A report row is exactly one of these.
const (
	TypeCharge     = "charge"
	TypeRefund     = "refund"
	TypeChargeback = "chargeback"
)

// maxLineBytes caps one physical line of a report. encoding/csv buffers a
// whole line before parsing it, so without a cap one newline-free upload
// would be held in memory in full.
const maxLineBytes = 1 << 20

// ErrUnknownFormat is returned by [NewReader] for a format other than
// [FormatGeneric] and [FormatStripe].
var ErrUnknownFormat = errors.New("unknown report format")

// ErrMalformed is wrapped by every [*LineError]: the report cannot be
// reconciled and nothing derived from it may be stored.
var ErrMalformed = errors.New("malformed report")

// LineError reports a malformed line of a settlement report.
//
// It never carries the offending cell's value, which may be anything,
// including cardholder data pasted into the wrong column: only the line, the
// name of the column (one of the format's known column names, or empty when
// the line as a whole is malformed) and a fixed reason.
type LineError struct {
	// Line counts physical lines of the file; the header is line 1. For a
	// record whose quoted fields span several lines it is the first line.
	Line int
	// Column is the known column name the problem is in, or "".
	Column string
	// Reason says what is wrong, without quoting the input.
	Reason string
}

func (e *LineError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d: column %s: %s", e.Line, e.Column, e.Reason)
}

// Unwrap returns [ErrMalformed].
func (e *LineError) Unwrap() error { return ErrMalformed }

// Row is one settlement line in a format-independent form.
//
// Its strings may share memory with the whole parsed line; a caller that
// keeps only a few of them for long should [strings.Clone] them.
type Row struct {
	// Line is the row's first physical line in the file (header = 1).
	Line int
	// TransactionID is the processor's id for the payment: for Stripe the
	// PaymentIntent id when present, else the Charge id, else the source id.
	TransactionID string
	// AltIDs are further ids the ledger may know the payment by (the Stripe
	// Charge id when TransactionID is a PaymentIntent id). Freshly allocated
	// for each row.
	AltIDs []string
	// MerchantID is the row's merchant, or the reader's default merchant
	// when the report names none.
	MerchantID string
	// Type is TypeCharge, TypeRefund or TypeChargeback.
	Type string
	// Currency is an upper-case ISO 4217 code.
	Currency string
	// Amount is the absolute amount in minor units of Currency, ≥ 0; the
	// direction is given by Type.
	Amount int64
	// SettledAt is when the processor settled the row, in UTC.
	SettledAt time.Time
	// Movement is set for a refund or chargeback row that is one movement
	// among possibly several of the transaction (Stripe lists each partial
	// refund as its own row, named by source_id): such rows are summed per
	// transaction before they are compared with the ledger's cumulative
	// amount. It is empty for rows that carry the cumulative amount
	// (generic reports).
	Movement string
}

// Reader streams the rows of a settlement report. It holds one line in
// memory at a time.
//
// The first call to [Reader.Next] reads the header. Every line must have as
// many fields as the header. After an error other than io.EOF, Next keeps
// returning that error.
type Reader struct {
	format          string
	defaultMerchant string
	lim             *lineLimiter
	csv             *csv.Reader
	col             columns // -1 for absent columns
	header          bool
	skipped         int
	err             error
}

// columns holds the field index of each column a format reads, -1 if absent.
type columns struct {
	transactionID, merchantID, typ, amount, currency, settledAt int
	// Stripe only.
	gross, category, created, sourceID, chargeID, paymentIntentID, account int
}

// NewReader returns a Reader for a report in format (FormatGeneric or
// FormatStripe; otherwise ErrUnknownFormat). defaultMerchant is the merchant
// of rows that name none: a generic row with an empty merchant_id, or a
// Stripe row without connected_account. If it is empty such rows are
// malformed.
//
// NewReader does no I/O.
func NewReader(format string, r io.Reader, defaultMerchant string) (*Reader, error) {
	if format != FormatGeneric && format != FormatStripe {
		return nil, ErrUnknownFormat
	}
	lim := &lineLimiter{r: r, max: maxLineBytes}
	c := csv.NewReader(lim)
	c.ReuseRecord = true
	// FieldsPerRecord 0: the header fixes the field count for every line.
	c.FieldsPerRecord = 0
	return &Reader{format: format, defaultMerchant: defaultMerchant, lim: lim, csv: c}, nil
}

// Skipped returns how many data lines were read but not returned because
// their Stripe reporting_category is not charge, refund or dispute (fees,
// payouts, transfers and the like).
func (r *Reader) Skipped() int { return r.skipped }

// Next returns the next row, or io.EOF after the last one. A malformed line
// returns a *LineError wrapping ErrMalformed; another read error is returned
// wrapped.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	row, err := r.next()
	if err != nil {
		r.err = err
	}
	return row, err
}

func (r *Reader) next() (Row, error) {
	if !r.header {
		if err := r.readHeader(); err != nil {
			return Row{}, err
		}
		r.header = true
	}
	for {
		rec, err := r.read()
		if err != nil {
			return Row{}, err
		}
		line, _ := r.csv.FieldPos(0)
		if r.format == FormatGeneric {
			return r.generic(rec, line)
		}
		row, ok, err := r.stripe(rec, line)
		if err != nil || ok {
			return row, err
		}
		r.skipped++
	}
}

// read returns the next record, turning csv and size errors into LineErrors.
func (r *Reader) read() ([]string, error) {
	rec, err := r.csv.Read()
	if err == nil || err == io.EOF {
		return rec, err
	}
	if errors.Is(err, errLineTooLong) {
		return nil, &LineError{Line: r.lim.badLine, Reason: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		// csv.ParseError's own message names positions only, never content.
		line := pe.StartLine
		if line == 0 {
			line = pe.Line
		}
		reason := "malformed csv"
		switch {
		case errors.Is(pe.Err, csv.ErrFieldCount):
			reason = "field count differs from the header"
		case errors.Is(pe.Err, csv.ErrBareQuote):
			reason = `bare " in a non-quoted field`
		case errors.Is(pe.Err, csv.ErrQuote):
			reason = `extraneous or missing " in a quoted field`
		}
		return nil, &LineError{Line: line, Reason: reason}
	}
	return nil, fmt.Errorf("failed to read report: %w", err)
}

// Column names of the generic format.
const (
	colTransactionID = "transaction_id"
	colMerchantID    = "merchant_id"
	colType          = "type"
	colAmount        = "amount"
	colCurrency      = "currency"
	colSettledAt     = "settled_at"
)

// Column names of the Stripe itemized report that are read.
const (
	colCreatedUTC        = "created_utc"
	colGross             = "gross"
	colReportingCategory = "reporting_category"
	colSourceID          = "source_id"
	colChargeID          = "charge_id"
	colPaymentIntentID   = "payment_intent_id"
	colConnectedAccount  = "connected_account"
)

func (r *Reader) readHeader() error {
	rec, err := r.read()
	if err == io.EOF {
		return &LineError{Line: 1, Reason: "missing header"}
	}
	if err != nil {
		return err
	}
	// csv skips blank lines, so the header may sit below line 1.
	hline, _ := r.csv.FieldPos(0)
	index := make(map[string]int, len(rec))
	for i, name := range rec {
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF") // spreadsheet byte order mark
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if _, dup := index[name]; dup {
			index[name] = -2 // ambiguous; an error only if the column is read
			continue
		}
		index[name] = i
	}
	// lookup returns the column's index, -1 if absent, or an error if the
	// column is required and absent or appears twice.
	var herr error
	lookup := func(name string, required bool) int {
		i, ok := index[name]
		switch {
		case herr != nil:
		case i == -2:
			herr = &LineError{Line: hline, Column: name, Reason: "column appears more than once"}
		case !ok && required:
			herr = &LineError{Line: hline, Column: name, Reason: "missing required column"}
		case ok:
			return i
		}
		return -1
	}
	c := columns{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
	if r.format == FormatGeneric {
		c.transactionID = lookup(colTransactionID, true)
		c.merchantID = lookup(colMerchantID, true)
		c.typ = lookup(colType, true)
		c.amount = lookup(colAmount, true)
		c.currency = lookup(colCurrency, true)
		c.settledAt = lookup(colSettledAt, true)
	} else {
		c.created = lookup(colCreatedUTC, true)
		c.currency = lookup(colCurrency, true)
		c.gross = lookup(colGross, true)
		c.category = lookup(colReportingCategory, true)
		c.sourceID = lookup(colSourceID, true)
		c.chargeID = lookup(colChargeID, false)
		c.paymentIntentID = lookup(colPaymentIntentID, false)
		c.account = lookup(colConnectedAccount, false)
	}
	if herr != nil {
		return herr
	}
	r.col = c
	return nil
}

func field(rec []string, i int) string {
	if i < 0 {
		return ""
	}
	return rec[i]
}

func (r *Reader) generic(rec []string, line int) (Row, error) {
	c := &r.col
	row := Row{Line: line, TransactionID: rec[c.transactionID], MerchantID: rec[c.merchantID], Type: rec[c.typ]}
	if row.TransactionID == "" {
		return Row{}, &LineError{Line: line, Column: colTransactionID, Reason: "empty"}
	}
	if row.MerchantID == "" {
		if r.defaultMerchant == "" {
			return Row{}, &LineError{Line: line, Column: colMerchantID, Reason: "empty and no default merchant"}
		}
		row.MerchantID = r.defaultMerchant
	}
	switch row.Type {
	case TypeCharge, TypeRefund, TypeChargeback:
	default:
		return Row{}, &LineError{Line: line, Column: colType, Reason: "not charge, refund or chargeback"}
	}
	cur, err := money.NormalizeCurrency(rec[c.currency])
	if err != nil {
		return Row{}, &LineError{Line: line, Column: colCurrency, Reason: "not an ISO 4217 currency"}
	}
	row.Currency = cur
	amount, err := parseAmount(rec[c.amount], cur)
	if err != nil {
		return Row{}, &LineError{Line: line, Column: colAmount, Reason: err.Error()}
	}
	// A negative amount is accepted where its meaning is unambiguous: money
	// going back out (refund, chargeback). A negative charge is not.
	if amount < 0 {
		if row.Type == TypeCharge {
			return Row{}, &LineError{Line: line, Column: colAmount, Reason: "negative charge"}
		}
		amount = -amount
	}
	row.Amount = amount
	t, err := time.Parse(time.RFC3339, rec[c.settledAt])
	if err != nil {
		return Row{}, &LineError{Line: line, Column: colSettledAt, Reason: "not an RFC 3339 time"}
	}
	row.SettledAt = t.UTC()
	return row, nil
}

// stripeType maps the reporting categories that are reconciled to row
// types. Every other category (fee, payout, transfer, dispute_reversal,
// partial_capture_reversal, ...) is skipped: ok is false.
func stripeType(category string) (typ string, ok bool) {
	switch category {
	case "charge":
		return TypeCharge, true
	case "refund":
		return TypeRefund, true
	case "dispute":
		return TypeChargeback, true
	}
	return "", false
}

// stripeTimeLayout is the created_utc format of Stripe reports.
const stripeTimeLayout = "2006-01-02 15:04:05"

// stripe converts one Stripe itemized line. ok is false for a line of a
// category that is skipped.
func (r *Reader) stripe(rec []string, line int) (row Row, ok bool, err error) {
	c := &r.col
	category := strings.TrimSpace(rec[c.category])
	if category == "" {
		return Row{}, false, &LineError{Line: line, Column: colReportingCategory, Reason: "empty"}
	}
	typ, ok := stripeType(category)
	if !ok {
		return Row{}, false, nil
	}
	row = Row{Line: line, Type: typ}
	pi, ch, src := field(rec, c.paymentIntentID), field(rec, c.chargeID), rec[c.sourceID]
	switch {
	case pi != "":
		row.TransactionID = pi
		if ch != "" && ch != pi {
			row.AltIDs = []string{ch}
		}
	case ch != "":
		row.TransactionID = ch
	case src != "":
		row.TransactionID = src
	default:
		return Row{}, false, &LineError{Line: line, Column: colSourceID, Reason: "no payment_intent_id, charge_id or source_id"}
	}
	row.MerchantID = field(rec, c.account)
	if row.MerchantID == "" {
		if r.defaultMerchant == "" {
			return Row{}, false, &LineError{Line: line, Column: colConnectedAccount, Reason: "empty and no default merchant"}
		}
		row.MerchantID = r.defaultMerchant
	}
	cur, err := money.NormalizeCurrency(rec[c.currency])
	if err != nil {
		return Row{}, false, &LineError{Line: line, Column: colCurrency, Reason: "not an ISO 4217 currency"}
	}
	row.Currency = cur
	gross, err := parseAmount(rec[c.gross], cur)
	if err != nil {
		return Row{}, false, &LineError{Line: line, Column: colGross, Reason: err.Error()}
	}
	// Charges credit the balance, refunds and disputes debit it. A sign
	// against the category is not something abs() should paper over.
	if (typ == TypeCharge && gross < 0) || (typ != TypeCharge && gross > 0) {
		return Row{}, false, &LineError{Line: line, Column: colGross, Reason: "sign does not match reporting_category"}
	}
	if gross < 0 {
		gross = -gross
	}
	row.Amount = gross
	created := rec[c.created]
	t, err := time.ParseInLocation(stripeTimeLayout, created, time.UTC)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, created); err != nil {
			return Row{}, false, &LineError{Line: line, Column: colCreatedUTC, Reason: "not a UTC time (2006-01-02 15:04:05 or RFC 3339)"}
		}
	}
	row.SettledAt = t.UTC()
	if typ != TypeCharge {
		row.Movement = strings.Clone(src)
	}
	return row, true, nil
}

// parseAmount wraps money.ParseMajor with a reason fit for a LineError.
func parseAmount(s, currency string) (int64, error) {
	v, err := money.ParseMajor(s, currency)
	if err == nil {
		return v, nil
	}
	exp, _ := money.Exponent(currency)
	if exp == 0 {
		return 0, fmt.Errorf("not a whole number (%s has no decimals)", currency)
	}
	return 0, fmt.Errorf("not a plain decimal with at most %d decimals for %s", exp, currency)
}

// errLineTooLong is returned by lineLimiter, and never leaves this package.
var errLineTooLong = errors.New("line too long")

// lineLimiter fails the read once a physical line grows past max bytes,
// recording that line's number (1-based) in badLine.
type lineLimiter struct {
	r       io.Reader
	max     int
	run     int // bytes since the last '\n'
	lines   int // '\n' seen
	badLine int
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if l.badLine != 0 {
		return 0, errLineTooLong
	}
	n, err := l.r.Read(p)
	b := p[:n]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := len(b)
		if i >= 0 {
			seg = i
		}
		if l.run+seg > l.max {
			l.badLine = l.lines + 1
			return n - len(b) + (l.max - l.run), errLineTooLong
		}
		if i < 0 {
			l.run += seg
			break
		}
		l.run = 0
		l.lines++
		b = b[i+1:]
	}
	return n, err
}
