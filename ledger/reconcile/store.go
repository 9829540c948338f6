package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/paytrail/paytrail/ledger"
)

// MaxStoredExceptions caps the exceptions a run's ledger entry holds. The
// entry also records how many exceptions there were in all and the SHA-256
// of the complete exceptions CSV, so a truncated list is visible as such and
// the complete list, regenerated offline, can be checked against the entry.
const MaxStoredExceptions = 10_000

// Operator is who ran a reconciliation.
type Operator struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Role is the principal's role; empty for the command line.
	Role string `json:"role,omitempty"`
	// OriginIP is the client address of an API call; empty for the command
	// line.
	OriginIP string `json:"origin_ip,omitempty"`
}

// RunBody is the body of a [ledger.KindReconciliation] entry: what was
// reconciled, by whom, against which ledger state, and the outcome. The
// run's id and time are the entry's own id and time.
type RunBody struct {
	// Format is FormatGeneric or FormatStripe.
	Format string `json:"format"`
	// ReportSHA256 is the hex SHA-256 of the report's bytes exactly as
	// received, and ReportBytes their number: `sha256sum` of the file
	// reproduces it.
	ReportSHA256 string `json:"report_sha256"`
	ReportBytes  int64  `json:"report_bytes"`
	// DefaultMerchant is the merchant given to rows that name none.
	DefaultMerchant string   `json:"default_merchant,omitempty"`
	Operator        Operator `json:"operator"`
	// Scope is the operator's merchant scope at the time of the run (["*"]
	// for every merchant); rows of other merchants are out_of_scope.
	Scope []string `json:"scope"`
	// RequestedPeriod holds the explicit from/to bounds given by the
	// operator, if any; Summary.Period is the period actually used.
	RequestedPeriod *Period `json:"requested_period,omitempty"`
	// LedgerSize is the tree size of the ledger state the run read: the
	// state folded from entries 0 to LedgerSize-1.
	LedgerSize uint64 `json:"ledger_size"`
	// Summary holds the counts, totals, period, merchants and the first
	// MaxStoredExceptions exceptions (Exceptions, ExceptionsTruncated).
	Summary
	// ExceptionsTotal is the number of exceptions found, stored or not.
	ExceptionsTotal int `json:"exceptions_total"`
	// ExceptionsCSVSHA256 is the hex SHA-256 of the complete exceptions CSV
	// (as written by [ExceptionWriter], header included, in the order found).
	// When ExceptionsTruncated is false it is also the SHA-256 of the CSV of
	// the stored Exceptions.
	ExceptionsCSVSHA256 string `json:"exceptions_csv_sha256"`
}

// VisibleTo reports whether a caller may read the run: every merchant whose
// ledger data it read must be within the caller's scope, and a run that
// holds out_of_scope rows (rows of merchants outside its operator's scope,
// which say nothing of the ledger but are another merchant's report data)
// is visible only to its operator and to callers whose scope is every
// merchant (all).
func (b *RunBody) VisibleTo(actorID string, all bool, inScope func(merchant string) bool) bool {
	if all {
		return true
	}
	for _, m := range b.Merchants {
		if !inScope(m) {
			return false
		}
	}
	return b.Counts.OutOfScope == 0 || actorID == b.Operator.ID
}

// StoredRun is a reconciliation run as stored in the ledger, in the shape
// the API answers with: the run id (the entry's record id), its sequence
// number and time, and the body's fields.
type StoredRun struct {
	ID   string    `json:"id"`
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	RunBody
}

// RunConfig describes one run of [RunAndStore]. Fields without a default
// are required.
type RunConfig struct {
	// Format is FormatGeneric or FormatStripe.
	Format string
	// Report is the settlement report; it is read to its end, once.
	Report io.Reader
	// DefaultMerchant is the merchant of rows that name none; empty makes
	// such rows malformed.
	DefaultMerchant string
	// From and To are the optional explicit period; see Options.
	From, To time.Time
	// InScope reports whether the operator may see a merchant (AllMerchants
	// for the command line), and Scope is the scope recorded with the run.
	InScope func(merchant string) bool
	Scope   []string
	// Operator is recorded with the run.
	Operator Operator
	// Time is when the request was received; it becomes the entry's time.
	Time time.Time
	// Policy is the privacy policy version recorded in the entry.
	Policy int
	// Progress, if set, is called every 100,000 rows; see Options.
	Progress func(rows int)
	// OnException, if set, sees every exception as found (not only the
	// stored ones), before the run is known to succeed; see Options.
	OnException func(Exception) error
	// Appender, if set, appends the run's entry instead of the ledger
	// itself (a cluster node's stream).
	Appender interface {
		Append(context.Context, ledger.Record) (ledger.Result, error)
	}
}

// ErrBadConfig is returned by [RunAndStore] for a RunConfig missing a
// required field.
var ErrBadConfig = errors.New("bad reconciliation config")

// RunAndStore reconciles cfg.Report against a snapshot of l and appends the
// run to l as one [ledger.KindReconciliation] entry with a [RunBody], then
// returns it. The entry is durable when RunAndStore returns.
//
// If the report is malformed (a [*LineError]), the context ends, or the
// ledger fails, nothing is appended and the error is returned; errors.As
// finds the *LineError. A run with exceptions is a success.
func RunAndStore(ctx context.Context, l *ledger.Ledger, cfg RunConfig) (*StoredRun, error) {
	if cfg.Report == nil || cfg.InScope == nil || cfg.Time.IsZero() {
		return nil, fmt.Errorf("%w: Report, InScope and Time are required", ErrBadConfig)
	}
	report := &countingHash{h: sha256.New()}
	r, err := NewReader(cfg.Format, io.TeeReader(cfg.Report, report), cfg.DefaultMerchant)
	if err != nil {
		return nil, err
	}
	snap, err := NewSnapshot(l)
	if err != nil {
		return nil, fmt.Errorf("failed to snapshot the ledger: %w", err)
	}
	defer snap.Close() // on early returns; Close is idempotent

	exHash := sha256.New()
	exCSV := NewExceptionWriter(exHash)
	total := 0
	sum, err := Run(ctx, snap, r, Options{
		InScope:       cfg.InScope,
		From:          cfg.From,
		To:            cfg.To,
		MaxExceptions: MaxStoredExceptions,
		Progress:      cfg.Progress,
		OnException: func(ex Exception) error {
			total++
			if err := exCSV.Write(ex); err != nil {
				return err
			}
			if cfg.OnException != nil {
				return cfg.OnException(ex)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	ledgerSize := snap.LedgerSize()
	if err := snap.Close(); err != nil { // the store stays pinned no longer than needed
		return nil, err
	}
	// The CSV reader stops at EOF, but hash whatever a reader might still
	// hold so that the digest always covers the whole upload.
	if _, err := io.Copy(io.Discard, io.TeeReader(cfg.Report, report)); err != nil {
		return nil, fmt.Errorf("failed to read report: %w", err)
	}
	if err := exCSV.Flush(); err != nil {
		return nil, err
	}
	body := RunBody{
		Format:              cfg.Format,
		ReportSHA256:        hex.EncodeToString(report.h.Sum(nil)),
		ReportBytes:         report.n,
		DefaultMerchant:     cfg.DefaultMerchant,
		Operator:            cfg.Operator,
		Scope:               cfg.Scope,
		LedgerSize:          ledgerSize,
		Summary:             *sum,
		ExceptionsTotal:     total,
		ExceptionsCSVSHA256: hex.EncodeToString(exHash.Sum(nil)),
	}
	if body.Scope == nil {
		body.Scope = []string{}
	}
	if !cfg.From.IsZero() || !cfg.To.IsZero() {
		body.RequestedPeriod = &Period{From: cfg.From.UTC(), To: cfg.To.UTC()}
	}
	run := &StoredRun{ID: ledger.NewRecordID(), Time: cfg.Time.UTC(), RunBody: body}
	appender := cfg.Appender
	if appender == nil {
		appender = l
	}
	res, err := appender.Append(ctx, ledger.Record{
		Kind: ledger.KindReconciliation, ID: run.ID, Time: run.Time, Policy: cfg.Policy, Body: &run.RunBody,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to store reconciliation run: %w", err)
	}
	run.Seq = res.Seq
	return run, nil
}

// LoadRun returns the stored run with id, or an error wrapping
// [ledger.ErrNotFound] when no reconciliation entry has that id. It does not
// check who may see it; see [RunBody.VisibleTo].
func LoadRun(l *ledger.Ledger, id string) (*StoredRun, error) {
	seq, err := l.RunSeq(id)
	if err != nil {
		return nil, err
	}
	e, err := l.Entry(seq)
	if err != nil {
		return nil, err
	}
	// The by-id index also holds subject requests.
	if e.Kind != ledger.KindReconciliation || e.ID != id {
		return nil, ledger.ErrNotFound
	}
	run := &StoredRun{ID: e.ID, Seq: e.Seq, Time: e.Time}
	if err := e.DecodeBody(&run.RunBody); err != nil {
		return nil, err
	}
	return run, nil
}

// countingHash is a hash that also counts the bytes written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
