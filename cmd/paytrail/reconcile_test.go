package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
	"github.com/paytrail/paytrail/ledger/reconcile"
)

// reconTestDir creates a data dir holding the ledger side of
// testdata/settlement-generic.csv, with pay_0002's amount off by 1.00 and
// pay_0005 missing from the report, and returns its path.
func reconTestDir(t *testing.T) string {
	t.Helper()
	// A data dir paytrail creates itself, mode 0700, as serve would.
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	node, err := datadir.Open(ctx, datadir.Config{Dir: dir, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	for _, p := range []struct {
		tx, merchant, typ, cur string
		amount                 int64
		at                     string
	}{
		{"pay_0001", "m_bookshop", ledger.TypeCaptured, "USD", 4550, "2026-11-22T00:00:00Z"},
		{"pay_0002", "m_bookshop", ledger.TypeCaptured, "USD", 1100, "2026-11-21T09:00:00Z"},
		{"pay_0003", "m_bookshop", ledger.TypeCaptured, "USD", 2000, "2026-11-21T10:00:00Z"},
		{"pay_0003", "m_bookshop", ledger.TypeRefunded, "USD", 500, "2026-11-21T11:00:00Z"},
		{"pay_0004", "m_tokyo", ledger.TypeCaptured, "JPY", 1500, "2026-11-21T12:00:00Z"},
		{"pay_0005", "m_bookshop", ledger.TypeCaptured, "USD", 999, "2026-11-22T00:00:00Z"},
	} {
		at, _ := time.Parse(time.RFC3339, p.at)
		_, err := node.Ledger.Append(ctx, ledger.Record{
			Kind: ledger.KindPayment, ID: ledger.NewRecordID(), Time: at, Policy: 1,
			Body: &ledger.PaymentBody{
				Source: "test", EventID: ledger.NewRecordID(), Type: p.typ, TransactionID: p.tx, MerchantID: p.merchant,
				Amount: p.amount, Currency: p.cur, Status: strings.TrimPrefix(p.typ, "payment."), OccurredAt: at,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// reconRun runs the command in-process and returns its exit code and output.
func reconRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), env{
		args:   append([]string{"reconcile"}, args...),
		getenv: func(string) string { return "" },
		stdout: &out, stderr: &errb, stdin: strings.NewReader(""),
	})
	return code, out.String(), errb.String()
}

// reconWrite writes a report file and returns its path.
func reconWrite(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// reconNode opens the data dir, closed with t.
func reconNode(t *testing.T, dir string) *datadir.Node {
	t.Helper()
	node, err := datadir.Open(context.Background(), datadir.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}

const reconHeader = "transaction_id,merchant_id,type,amount,currency,settled_at\n"

func TestReconcileExceptions(t *testing.T) {
	dir := reconTestDir(t)
	report, err := os.ReadFile("../../testdata/settlement-generic.csv")
	if err != nil {
		t.Fatal(err)
	}
	path := reconWrite(t, "settlement.csv", string(report))
	out := filepath.Join(t.TempDir(), "exceptions.csv")

	code, stdout, stderr := reconRun(t, "--data", dir, "--format", "generic", "--out", out, path)
	if code != exitFailure {
		t.Fatalf("exit %d, want 1 (exceptions found)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	sum := sha256.Sum256(report)
	for _, want := range []string{
		"reconciliation ", "stored at ledger seq 6",
		"sha256 " + hex.EncodeToString(sum[:]),
		"amount_mismatch               1\n", "missing_in_report             1\n", "matched                       3\n",
		"USD                   61.49              52.50              -8.99\n",
		"JPY                    1500               1500                  0\n",
		"2 exceptions:", "amount_mismatch    3     pay_0002     11.00 USD captured  12.00 USD charge",
		"missing_in_report  -     pay_0005     9.99 USD captured   -",
		"every exception is in " + out,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	csv, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := "kind,line,transaction_id,ledger_amount,ledger_currency,ledger_status,report_amount,report_currency,report_type\n" +
		"amount_mismatch,3,pay_0002,11.00,USD,captured,12.00,USD,charge\n" +
		"missing_in_report,0,pay_0005,9.99,USD,captured,,,\n"
	if string(csv) != wantCSV {
		t.Errorf("--out =\n%s\nwant\n%s", csv, wantCSV)
	}

	// The run is in the ledger, by the CLI actor, with the --out file's hash.
	node := reconNode(t, dir)
	l := node.Ledger
	e, err := l.Entry(6)
	if err != nil {
		t.Fatal(err)
	}
	run, err := reconcile.LoadRun(l, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	csvSum := sha256.Sum256(csv)
	if run.Operator.ID != "cli" || run.ExceptionsCSVSHA256 != hex.EncodeToString(csvSum[:]) || run.Scope[0] != "*" {
		t.Errorf("stored run %+v", run.RunBody)
	}
	if !strings.Contains(stdout, "reconciliation "+run.ID) {
		t.Errorf("stdout does not name the run id %s", run.ID)
	}
	verifiers, _, err := node.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify(context.Background(), verifiers, nil); err != nil {
		t.Fatal(err)
	}
}

func TestReconcileAllMatched(t *testing.T) {
	dir := reconTestDir(t)
	path := reconWrite(t, "ok.csv", reconHeader+
		"pay_0001,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\n"+
		"pay_0005,m_bookshop,charge,9.99,USD,2026-11-22T00:00:00Z\n")
	code, stdout, stderr := reconRun(t, "--data", dir, "--format", "generic", path)
	if code != exitOK || !strings.Contains(stdout, "every row matched") || stderr != "" {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// An explicit period brings in pay_0002 and pay_0003, captured the day
	// before and absent from this report.
	code, stdout, _ = reconRun(t, "--data", dir, "--format", "generic", "--from", "2026-11-21T00:00:00Z", "--to", "2026-11-23T00:00:00Z", path)
	if code != exitFailure || !strings.Contains(stdout, "missing_in_report             2\n") {
		t.Errorf("explicit period: exit %d\n%s", code, stdout)
	}
}

func TestReconcileStripeDefaultMerchant(t *testing.T) {
	dir := reconTestDir(t)
	path := reconWrite(t, "stripe.csv", "balance_transaction_id,created_utc,currency,gross,reporting_category,source_id,charge_id,payment_intent_id\n"+
		"txn_1,2026-11-22 00:00:00,usd,45.50,charge,ch_1,ch_1,pay_0001\n"+
		"txn_2,2026-11-22 00:00:00,usd,9.99,charge,ch_5,ch_5,pay_0005\n"+
		"txn_3,2026-11-22 00:00:00,usd,-1.00,payout,po_1,,\n")
	code, stdout, stderr := reconRun(t, "--data", dir, "--format", "stripe", "--merchant-default", "m_bookshop", path)
	if code != exitOK || !strings.Contains(stdout, "2 reconciled, 1 skipped") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Without it, rows without connected_account are malformed.
	code, _, stderr = reconRun(t, "--data", dir, "--format", "stripe", path)
	if code != exitUsage || !strings.Contains(stderr, "line 2: column connected_account") {
		t.Errorf("no default merchant: exit %d\n%s", code, stderr)
	}
}

func TestReconcileErrors(t *testing.T) {
	dir := reconTestDir(t)
	good := reconWrite(t, "ok.csv", reconHeader+"pay_0001,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\n")
	bad := reconWrite(t, "bad.csv", reconHeader+
		"pay_0001,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\n"+
		"pay_0002,m_bookshop,charge,12.001,USD,2026-11-22T00:00:00Z\n")
	out := filepath.Join(t.TempDir(), "exceptions.csv")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"malformed line", []string{"--data", dir, "--format", "generic", "--out", out, bad}, "paytrail: bad.csv: line 3: column amount: not a plain decimal with at most 2 decimals for USD\npaytrail: hint: fix the report and run again; nothing was stored\n"},
		{"no format", []string{"--data", dir, good}, "--format generic or --format stripe"},
		{"bad format", []string{"--data", dir, "--format", "xlsx", good}, "--format generic or --format stripe"},
		{"no file", []string{"--data", dir, "--format", "generic"}, "exactly one report file"},
		{"two files", []string{"--data", dir, "--format", "generic", good, good}, "exactly one report file"},
		{"bad from", []string{"--data", dir, "--format", "generic", "--from", "monday", good}, "--from must be an RFC 3339 time"},
		{"from after to", []string{"--data", dir, "--format", "generic", "--from", "2026-11-23T00:00:00Z", "--to", "2026-11-22T00:00:00Z", good}, "--from must be before --to"},
		{"bad merchant", []string{"--data", dir, "--format", "generic", "--merchant-default", "a b", good}, "--merchant-default is not a valid merchant id"},
		{"missing file", []string{"--data", dir, "--format", "generic", filepath.Join(dir, "nope.csv")}, "failed to open report"},
		{"unknown flag", []string{"--data", dir, "--format", "generic", "--verbose", good}, "flag provided but not defined"},
		{"no data dir", []string{"--data", filepath.Join(t.TempDir(), "none"), "--format", "generic", good}, "check --data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := reconRun(t, c.args...)
			if code != exitUsage || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s\nwant %q", code, stdout, stderr, c.want)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run left %s behind: %v", out, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) != 0 {
		t.Errorf("a failed run left files behind: %v", left)
	}
	if l := reconNode(t, dir).Ledger; l.Size() != 6 {
		t.Errorf("failed runs appended %d entries", l.Size()-6)
	}
}

func TestReconcileDataDirInUse(t *testing.T) {
	dir := reconTestDir(t)
	l := reconNode(t, dir).Ledger // holds the data dir, as a running server would
	path := reconWrite(t, "ok.csv", reconHeader+"pay_0001,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\n")
	code, _, stderr := reconRun(t, "--data", dir, "--format", "generic", path)
	if code != exitUsage || !strings.Contains(stderr, "is in use by another paytrail process") || !strings.Contains(stderr, "hint: stop the server first") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
	if l.Size() != 6 {
		t.Errorf("ledger grew to %d", l.Size())
	}
}
