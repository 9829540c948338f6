package reconcile

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/paytrail/paytrail/ledger/money"
)

// exceptionsHeader returns the header of the exceptions CSV export.
func exceptionsHeader() []string {
	return []string{
		"kind", "line", "transaction_id",
		"ledger_amount", "ledger_currency", "ledger_status",
		"report_amount", "report_currency", "report_type",
	}
}

// ExceptionWriter streams exceptions as CSV: a header, then one line per
// exception, amounts in major units of their currency ("19.99"). A missing
// ledger or report side leaves its three cells empty.
//
// Text cells that a spreadsheet would read as a formula (starting with =, +,
// -, @, tab or carriage return) are prefixed with a single quote, since
// transaction ids come from an uploaded file.
type ExceptionWriter struct {
	w      *csv.Writer
	header bool
	rec    []string
}

// NewExceptionWriter returns an ExceptionWriter writing to w. Call Flush when
// done.
func NewExceptionWriter(w io.Writer) *ExceptionWriter {
	return &ExceptionWriter{w: csv.NewWriter(w), rec: make([]string, len(exceptionsHeader()))}
}

// Write writes one exception, preceded by the header on the first call.
func (e *ExceptionWriter) Write(ex Exception) error {
	if err := e.writeHeader(); err != nil {
		return err
	}
	rec := e.rec
	clear(rec)
	rec[0] = string(ex.Kind)
	rec[1] = strconv.Itoa(ex.Line)
	rec[2] = cell(ex.TransactionID)
	if l := ex.Ledger; l != nil {
		rec[3], rec[4], rec[5] = money.FormatMinor(l.Amount, l.Currency), cell(l.Currency), cell(l.Status)
	}
	if r := ex.Report; r != nil {
		rec[6], rec[7], rec[8] = money.FormatMinor(r.Amount, r.Currency), cell(r.Currency), cell(r.Type)
	}
	if err := e.w.Write(rec); err != nil {
		return fmt.Errorf("failed to write exception: %w", err)
	}
	return nil
}

// Flush writes the header if nothing was written yet, then flushes.
func (e *ExceptionWriter) Flush() error {
	if err := e.writeHeader(); err != nil {
		return err
	}
	e.w.Flush()
	if err := e.w.Error(); err != nil {
		return fmt.Errorf("failed to write exceptions: %w", err)
	}
	return nil
}

func (e *ExceptionWriter) writeHeader() error {
	if e.header {
		return nil
	}
	if err := e.w.Write(exceptionsHeader()); err != nil {
		return fmt.Errorf("failed to write exceptions header: %w", err)
	}
	e.header = true
	return nil
}

// WriteExceptionsCSV writes ex to w as described at [ExceptionWriter]; the
// header is written even when ex is empty.
func WriteExceptionsCSV(w io.Writer, ex []Exception) error {
	ew := NewExceptionWriter(w)
	for _, x := range ex {
		if err := ew.Write(x); err != nil {
			return err
		}
	}
	return ew.Flush()
}

// cell defuses spreadsheet formula injection in a text cell.
func cell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
