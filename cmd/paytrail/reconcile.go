package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paytrail/paytrail/api"
	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger/money"
	"github.com/paytrail/paytrail/ledger/reconcile"
)

// reconcileShown is how many exceptions the summary lists; --out has all.
const reconcileShown = 20

// cmdReconcile reconciles a settlement report offline, on the data dir,
// stores the run in the ledger as the API does, and prints its summary.
// Exit 0: every row matched; 1: exceptions were found; 2: error.
func cmdReconcile(ctx context.Context, e env) error {
	fs := newFlags("reconcile", "[--data DIR] --format generic|stripe [--out exceptions.csv] [--merchant-default M] [--from T --to T] FILE")
	df := addDataFlags(fs, false)
	format := fs.String("format", "", "report format: generic or stripe (required)")
	out := fs.String("out", "", "write every exception to this CSV file")
	defMerchant := fs.String("merchant-default", "", "merchant of rows that name none (Stripe reports without connected_account)")
	fromFlag := fs.String("from", "", "start of the period for missing_in_report, RFC 3339 (default: earliest settled_at)")
	toFlag := fs.String("to", "", "end of the period, exclusive, RFC 3339 (default: just after the latest settled_at)")
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if *format != reconcile.FormatGeneric && *format != reconcile.FormatStripe {
		return usageError{"reconcile needs --format generic or --format stripe", ""}
	}
	if len(args) != 1 {
		return usageError{"reconcile needs exactly one report file", "example: paytrail reconcile --data DIR --format generic settlement.csv"}
	}
	from, err := reconFlagTime("from", *fromFlag)
	if err != nil {
		return err
	}
	to, err := reconFlagTime("to", *toFlag)
	if err != nil {
		return err
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return usageError{"--from must be before --to", ""}
	}
	if *defMerchant != "" && !auth.ValidID(*defMerchant) {
		return usageError{"--merchant-default is not a valid merchant id", ""}
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	path := args[0]
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("failed to open report: %w", err)
	}
	defer f.Close()

	var exOut *exceptionsFile
	if *out != "" {
		if exOut, err = createExceptionsFile(*out); err != nil {
			return err
		}
		defer exOut.abort()
	}
	node, err := openNode(ctx, e, s, s.datadir(false, false))
	if err != nil {
		return err
	}
	defer node.Close()

	start := time.Now()
	last := start
	cfg := reconcile.RunConfig{
		Format:          *format,
		Report:          f,
		DefaultMerchant: *defMerchant,
		From:            from,
		To:              to,
		InScope:         reconcile.AllMerchants,
		Scope:           []string{"*"},
		Operator:        reconcile.Operator{ID: auth.CLIActor.ID, Name: auth.CLIActor.Name},
		Time:            start.UTC(),
		Policy:          api.PolicyVersion,
		Progress: func(rows int) {
			if time.Since(last) >= time.Second {
				fmt.Fprintf(e.stderr, "paytrail: reconciled %d rows (%s)...\n", rows, time.Since(start).Round(time.Second))
				last = time.Now()
			}
		},
	}
	if exOut != nil {
		cfg.OnException = exOut.w.Write
	}
	run, err := reconcile.RunAndStore(ctx, node.Ledger, cfg)
	if err != nil {
		var le *reconcile.LineError
		if errors.As(err, &le) {
			return hinted{fmt.Errorf("%s: %w", filepath.Base(path), le),
				[]string{"fix the report and run again; nothing was stored"}}
		}
		return fmt.Errorf("failed to reconcile %s: %w", filepath.Base(path), err)
	}
	if err := node.Close(); err != nil {
		return err
	}
	if exOut != nil {
		if err := exOut.commit(); err != nil {
			return fmt.Errorf("run %s is stored, but %w", run.ID, err)
		}
	}
	printReconRun(e.stdout, run, path, *out, time.Since(start))
	if !run.AllMatched() {
		return errSilent
	}
	return nil
}

// reconFlagTime parses an optional RFC 3339 flag value.
func reconFlagTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageError{fmt.Sprintf("--%s must be an RFC 3339 time", name), "example: 2026-11-22T00:00:00Z"}
	}
	return t.UTC(), nil
}

// printReconRun prints a run's summary for finance staff.
func printReconRun(w io.Writer, run *reconcile.StoredRun, path, out string, took time.Duration) {
	fmt.Fprintf(w, "reconciliation %s stored at ledger seq %d\n", run.ID, run.Seq)
	fmt.Fprintf(w, "report  %s (%s, %d bytes, sha256 %s)\n", path, run.Format, run.ReportBytes, run.ReportSHA256)
	fmt.Fprintf(w, "rows    %d reconciled, %d skipped (other Stripe categories), in %s\n", run.Rows, run.Skipped, took.Round(time.Millisecond))
	if !run.Period.From.IsZero() {
		fmt.Fprintf(w, "period  %s to %s (captures considered for missing_in_report)\n",
			run.Period.From.Format(time.RFC3339Nano), run.Period.To.Format(time.RFC3339Nano))
	}
	fmt.Fprintln(w)
	c := run.Counts
	for _, r := range []struct {
		name string
		n    int
	}{
		{"matched", c.Matched},
		{string(reconcile.KindAmountMismatch), c.AmountMismatch},
		{string(reconcile.KindCurrencyMismatch), c.CurrencyMismatch},
		{string(reconcile.KindStatusMismatch), c.StatusMismatch},
		{string(reconcile.KindMissingInLedger), c.MissingInLedger},
		{string(reconcile.KindMissingInReport), c.MissingInReport},
		{string(reconcile.KindDuplicateInReport), c.DuplicateInReport},
	} {
		fmt.Fprintf(w, "%-20s %10d\n", r.name, r.n)
	}

	if len(run.Totals) > 0 {
		curs := make([]string, 0, len(run.Totals))
		for cur := range run.Totals {
			curs = append(curs, cur)
		}
		slices.Sort(curs)
		fmt.Fprintf(w, "\n%-8s %18s %18s %18s\n", "currency", "ledger", "report", "report - ledger")
		for _, cur := range curs {
			t := run.Totals[cur]
			fmt.Fprintf(w, "%-8s %18s %18s %18s\n", cur, money.FormatMinor(t.Ledger, cur), money.FormatMinor(t.Report, cur),
				money.FormatMinor(t.Report-t.Ledger, cur))
		}
	}

	if run.ExceptionsTotal == 0 {
		fmt.Fprintln(w, "\nevery row matched")
		return
	}
	fmt.Fprintf(w, "\n%d exceptions", run.ExceptionsTotal)
	if n := min(len(run.Exceptions), reconcileShown); n < run.ExceptionsTotal {
		fmt.Fprintf(w, ", the first %d:", n)
	} else {
		fmt.Fprint(w, ":")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tline\ttransaction\tledger\treport")
	for _, ex := range run.Exceptions[:min(len(run.Exceptions), reconcileShown)] {
		line := "-"
		if ex.Line > 0 {
			line = fmt.Sprint(ex.Line)
		}
		ledgerSide, reportSide := "-", "-"
		if l := ex.Ledger; l != nil {
			ledgerSide = fmt.Sprintf("%s %s %s", money.FormatMinor(l.Amount, l.Currency), l.Currency, l.Status)
		}
		if r := ex.Report; r != nil {
			reportSide = fmt.Sprintf("%s %s %s", money.FormatMinor(r.Amount, r.Currency), r.Currency, r.Type)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ex.Kind, line, reconPrintable(ex.TransactionID), ledgerSide, reportSide)
	}
	tw.Flush()
	if out != "" {
		fmt.Fprintf(w, "every exception is in %s (sha256 %s)\n", out, run.ExceptionsCSVSHA256)
	} else if run.ExceptionsTotal > reconcileShown {
		fmt.Fprintln(w, "write them all to a CSV file with --out FILE")
	}
}

// reconPrintable keeps a report-supplied id from moving the terminal's cursor.
func reconPrintable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// exceptionsFile writes the --out CSV to a temporary file next to the
// target, renamed into place only once the run is stored, so a failed run
// leaves no partial or stale export behind.
type exceptionsFile struct {
	f    *os.File
	path string
	w    *reconcile.ExceptionWriter
	done bool
}

func createExceptionsFile(path string) (*exceptionsFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("failed to create exceptions file: %w", err)
	}
	return &exceptionsFile{f: f, path: path, w: reconcile.NewExceptionWriter(f)}, nil
}

func (x *exceptionsFile) commit() error {
	if err := x.w.Flush(); err != nil {
		return fmt.Errorf("failed to write %s: %w", x.path, err)
	}
	if err := x.f.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", x.path, err)
	}
	if err := os.Rename(x.f.Name(), x.path); err != nil {
		return fmt.Errorf("failed to write %s: %w", x.path, err)
	}
	x.done = true
	return nil
}

// abort removes the temporary file unless commit succeeded.
func (x *exceptionsFile) abort() {
	if x.done {
		return
	}
	x.f.Close()
	os.Remove(x.f.Name())
}
