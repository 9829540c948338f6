package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paytrail/paytrail/ledger"
)

// openTestLedger opens a real Pebble ledger in a temp dir, without a
// checkpoint signer or key store (payment records here carry no keys).
func openTestLedger(t testing.TB) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// pay is one payment event to append.
type pay struct {
	tx, merchant, typ, cur string
	amount                 int64
	at                     string // RFC 3339
	alt                    []string
}

func appendPayments(t testing.TB, l *ledger.Ledger, ps ...pay) {
	t.Helper()
	for _, p := range ps {
		at, err := time.Parse(time.RFC3339, p.at)
		if err != nil {
			t.Fatal(err)
		}
		status := strings.TrimPrefix(p.typ, "payment.")
		body := &ledger.PaymentBody{
			Source: "test", EventID: ledger.NewRecordID(), Type: p.typ, TransactionID: p.tx, AltIDs: p.alt,
			MerchantID: p.merchant, Amount: p.amount, Currency: p.cur, Status: status, OccurredAt: at,
		}
		if _, err := l.Append(context.Background(), ledger.Record{
			Kind: ledger.KindPayment, ID: ledger.NewRecordID(), Time: at, Policy: 1, Body: body,
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// samplePayments is the ledger side of the repository's sample reports
// (testdata/settlement-generic.csv).
var samplePayments = []pay{
	{tx: "pay_0001", merchant: "m_bookshop", typ: ledger.TypeCaptured, cur: "USD", amount: 4550, at: "2026-11-22T00:00:00Z"},
	{tx: "pay_0002", merchant: "m_bookshop", typ: ledger.TypeCaptured, cur: "USD", amount: 1100, at: "2026-11-21T09:00:00Z"},
	{tx: "pay_0003", merchant: "m_bookshop", typ: ledger.TypeCaptured, cur: "USD", amount: 2000, at: "2026-11-21T10:00:00Z"},
	{tx: "pay_0003", merchant: "m_bookshop", typ: ledger.TypeRefunded, cur: "USD", amount: 500, at: "2026-11-21T11:00:00Z"},
	{tx: "pay_0004", merchant: "m_tokyo", typ: ledger.TypeCaptured, cur: "JPY", amount: 1500, at: "2026-11-21T12:00:00Z"},
	{tx: "pay_0005", merchant: "m_bookshop", typ: ledger.TypeCaptured, cur: "USD", amount: 999, at: "2026-11-22T00:00:00Z"},
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSnapshot checks the Ledger adapter over a real ledger: lookups by id
// and alt id, captures by merchant and period, and isolation from later
// appends.
func TestSnapshot(t *testing.T) {
	l := openTestLedger(t)
	appendPayments(t, l,
		pay{tx: "pi_1", alt: []string{"ch_1"}, merchant: "m_1", typ: ledger.TypeAuthorized, cur: "EUR", amount: 700, at: "2026-11-20T09:00:00Z"},
		pay{tx: "pi_1", alt: []string{"ch_1"}, merchant: "m_1", typ: ledger.TypeCaptured, cur: "EUR", amount: 700, at: "2026-11-20T10:00:00Z"},
		pay{tx: "pi_1", merchant: "m_1", typ: ledger.TypeRefunded, cur: "EUR", amount: 200, at: "2026-11-20T11:00:00Z"},
		pay{tx: "pi_1", merchant: "m_1", typ: ledger.TypeRefunded, cur: "EUR", amount: 300, at: "2026-11-20T12:00:00Z"},
		pay{tx: "pi_2", merchant: "m_1", typ: ledger.TypeCaptured, cur: "EUR", amount: 100, at: "2026-11-21T00:00:00Z"},
		pay{tx: "pi_2", merchant: "m_1", typ: ledger.TypeChargeback, cur: "EUR", amount: 100, at: "2026-11-25T00:00:00Z"},
		pay{tx: "pi_3", merchant: "m_10", typ: ledger.TypeCaptured, cur: "EUR", amount: 5, at: "2026-11-20T10:00:00Z"},
		pay{tx: "pi_4", merchant: "m_1", typ: ledger.TypeAuthorized, cur: "EUR", amount: 9, at: "2026-11-20T10:00:00Z"},
	)
	snap, err := NewSnapshot(l)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if got, want := snap.LedgerSize(), l.Size(); got != want {
		t.Errorf("snapshot size = %d, want %d", got, want)
	}
	day := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	for _, tc := range []struct {
		name string
		l    *Snapshot
	}{{"snapshot", snap}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			for _, id := range []string{"pi_1", "ch_1"} {
				got, ok, err := tc.l.Transaction(ctx, id)
				if err != nil || !ok {
					t.Fatalf("Transaction(%s) = %v, %v", id, ok, err)
				}
				want := Tx{TransactionID: "pi_1", MerchantID: "m_1", Currency: "EUR", Status: "refunded", AltIDs: []string{"ch_1"},
					Captured: 700, Refunded: 300, CapturedAt: day("2026-11-20T10:00:00Z")}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("Transaction(%s) = %+v, want %+v", id, got, want)
				}
			}
			if got, _, _ := tc.l.Transaction(ctx, "pi_2"); got.ChargedBack != 100 || got.Status != "chargeback" {
				t.Errorf("pi_2 = %+v", got)
			}
			for _, id := range []string{"pi_9", "", "pi_1\x00", "m_1"} {
				if _, ok, err := tc.l.Transaction(ctx, id); ok || err != nil {
					t.Errorf("Transaction(%q) = %v, %v; want not found", id, ok, err)
				}
			}

			for _, c := range []struct {
				merchant, from, to string
				want               []string
			}{
				{"m_1", "2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z", []string{"pi_1", "pi_2"}},
				{"m_1", "2026-11-20T10:00:00Z", "2026-11-21T00:00:00Z", []string{"pi_1"}}, // from inclusive, to exclusive
				{"m_1", "2026-11-20T10:00:00.000000001Z", "2026-11-21T00:00:00.000000001Z", []string{"pi_2"}},
				{"m_10", "2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z", []string{"pi_3"}}, // m_1 does not reach m_10
				{"m_1", "1900-01-01T00:00:00Z", "3000-01-01T00:00:00Z", []string{"pi_1", "pi_2"}},
				{"m_1", "1900-01-01T00:00:00Z", "1960-01-01T00:00:00Z", nil},
				{"m_1", "2026-11-22T00:00:00Z", "2026-11-20T00:00:00Z", nil},
				{"m_1\x00", "2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z", nil},
				{"", "2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z", nil},
				{"m_2", "2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z", nil},
			} {
				var got []string
				err := tc.l.CapturedBetween(ctx, c.merchant, day(c.from), day(c.to), func(tx Tx) error {
					got = append(got, tx.TransactionID)
					return nil
				})
				if err != nil || !slices.Equal(got, c.want) {
					t.Errorf("CapturedBetween(%q, %s, %s) = %v, %v; want %v", c.merchant, c.from, c.to, got, err, c.want)
				}
				var ids []string
				err = tc.l.CapturedIDsBetween(ctx, c.merchant, day(c.from), day(c.to), func(id string) error {
					ids = append(ids, id)
					return nil
				})
				if err != nil || !slices.Equal(ids, c.want) {
					t.Errorf("CapturedIDsBetween(%q, %s, %s) = %v, %v; want %v", c.merchant, c.from, c.to, ids, err, c.want)
				}
			}
			stop := errors.New("stop")
			n := 0
			err := tc.l.CapturedBetween(ctx, "m_1", day("2026-11-20T00:00:00Z"), day("2026-11-22T00:00:00Z"), func(Tx) error {
				n++
				return stop
			})
			if err != stop || n != 1 {
				t.Errorf("an error from fn: got %v after %d calls, want it back after 1", err, n)
			}
		})
	}

	// The snapshot does not see later appends; a new one does.
	appendPayments(t, l, pay{tx: "pi_5", merchant: "m_1", typ: ledger.TypeCaptured, cur: "EUR", amount: 1, at: "2026-11-20T10:30:00Z"})
	if _, ok, _ := snap.Transaction(context.Background(), "pi_5"); ok {
		t.Error("the snapshot sees an append made after it")
	}
	var n int
	snap.CapturedBetween(context.Background(), "m_1", day("2026-11-20T00:00:00Z"), day("2026-11-22T00:00:00Z"), func(Tx) error { n++; return nil })
	if n != 2 {
		t.Errorf("the snapshot lists %d captures, want the 2 it was taken with", n)
	}
	snap2, err := NewSnapshot(l)
	if err != nil {
		t.Fatal(err)
	}
	defer snap2.Close()
	if _, ok, _ := snap2.Transaction(context.Background(), "pi_5"); !ok || snap2.LedgerSize() != snap.LedgerSize()+1 {
		t.Errorf("a later snapshot misses the append (size %d)", snap2.LedgerSize())
	}
}

// plainLedger hides the optional capturedIDLister of the Ledger it wraps.
type plainLedger struct{ Ledger }

// TestCapturedIDListerSameOutcome checks that missing_in_report finds the
// same with and without the id listing shortcut, on a ledger where charge
// rows name transactions by id, by alt id, or not at all, and a refund row
// names a transaction whose charge is missing.
func TestCapturedIDListerSameOutcome(t *testing.T) {
	l := openTestLedger(t)
	appendPayments(t, l, samplePayments...)
	appendPayments(t, l,
		pay{tx: "pi_a", alt: []string{"ch_a"}, merchant: "m_bookshop", typ: ledger.TypeCaptured, cur: "USD", amount: 100, at: "2026-11-21T13:00:00Z"},
		pay{tx: "pi_b", alt: []string{"ch_b"}, merchant: "m_bookshop", typ: ledger.TypeCaptured, cur: "USD", amount: 200, at: "2026-11-21T14:00:00Z"},
		pay{tx: "pi_c", merchant: "m_tokyo", typ: ledger.TypeCaptured, cur: "JPY", amount: 300, at: "2026-11-21T15:00:00Z"},
	)
	report := string(readSample(t, "settlement-generic.csv")) +
		"ch_a,m_bookshop,charge,1.00,USD,2026-11-22T00:00:00Z\n" + // by alt id
		"pi_b,m_bookshop,refund,0.00,USD,2026-11-22T00:00:00Z\n" // refund only
	snap, err := NewSnapshot(l)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var got []string
	for _, led := range []Ledger{snap, plainLedger{snap}} {
		r, err := NewReader(FormatGeneric, strings.NewReader(report), "")
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Run(context.Background(), led, r, Options{
			InScope: AllMerchants, From: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(sum)
		got = append(got, string(j))
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[0] {
			t.Errorf("ledger %d found\n%s\nledger 0 found\n%s", i, got[i], got[0])
		}
	}
	if !strings.Contains(got[0], `"missing_in_report":4`) || !strings.Contains(got[0], `"transaction_id":"pi_b"`) || strings.Contains(got[0], `"transaction_id":"pi_a"`) {
		t.Errorf("missing_in_report should be pay_0003, pay_0005, pi_b and pi_c: %s", got[0])
	}
}

func TestRunAndStore(t *testing.T) {
	l := openTestLedger(t)
	appendPayments(t, l, samplePayments...)
	report := readSample(t, "settlement-generic.csv")
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	var seen []Kind
	run, err := RunAndStore(context.Background(), l, RunConfig{
		Format: FormatGeneric, Report: bytes.NewReader(report),
		InScope: func(m string) bool { return m == "m_bookshop" }, Scope: []string{"m_bookshop"},
		Operator: Operator{ID: "prn_1", Name: "fin", Role: "finance", OriginIP: "192.0.2.1"},
		Time:     now, Policy: 1,
		OnException: func(ex Exception) error { seen = append(seen, ex.Kind); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := Counts{Matched: 2, AmountMismatch: 1, MissingInReport: 1, OutOfScope: 1}
	if run.Counts != wantCounts {
		t.Errorf("counts = %+v, want %+v", run.Counts, wantCounts)
	}
	if want := []Kind{KindAmountMismatch, KindOutOfScope, KindMissingInReport}; !slices.Equal(seen, want) {
		t.Errorf("OnException saw %v, want %v", seen, want)
	}
	if got, want := run.Totals, map[string]Total{"USD": {Ledger: 4550 + 1100 - 500 + 999, Report: 4550 + 1200 - 500}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("totals = %v, want %v", got, want)
	}
	sum := sha256.Sum256(report)
	if run.ReportSHA256 != hex.EncodeToString(sum[:]) || run.ReportBytes != int64(len(report)) {
		t.Errorf("report digest %s (%d bytes), want sha256 of the file", run.ReportSHA256, run.ReportBytes)
	}
	if run.LedgerSize != uint64(len(samplePayments)) || run.Seq != run.LedgerSize {
		t.Errorf("ledger size %d, seq %d, want %d and %d", run.LedgerSize, run.Seq, len(samplePayments), len(samplePayments))
	}
	if !slices.Equal(run.Merchants, []string{"m_bookshop"}) || run.RequestedPeriod != nil || run.ExceptionsTotal != 3 || run.ExceptionsTruncated {
		t.Errorf("run = %+v", run.RunBody)
	}
	var csv bytes.Buffer
	if err := WriteExceptionsCSV(&csv, run.Exceptions); err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(csv.Bytes()); hex.EncodeToString(s[:]) != run.ExceptionsCSVSHA256 {
		t.Errorf("exceptions_csv_sha256 does not match the CSV of the stored exceptions:\n%s", csv.Bytes())
	}

	// The entry is the run, byte for byte what LoadRun gives back.
	e, err := l.Entry(run.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != ledger.KindReconciliation || e.ID != run.ID || !e.Time.Equal(now) {
		t.Errorf("entry %s %s %s", e.Kind, e.ID, e.Time)
	}
	got, err := LoadRun(l, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(run)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("LoadRun =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	if _, err := l.Verify(context.Background(), nil, nil); err != nil {
		t.Fatalf("ledger does not verify after storing a run: %v", err)
	}

	// An explicit period widens missing_in_report: pay_0003's capture is
	// not in the report (its refund row does not stand in for it).
	run2, err := RunAndStore(context.Background(), l, RunConfig{
		Format: FormatGeneric, Report: bytes.NewReader(report), InScope: AllMerchants, Scope: []string{"*"},
		From: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Operator: Operator{ID: "cli", Name: "local"}, Time: now, Policy: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Matched: 3, AmountMismatch: 1, MissingInReport: 2}); run2.Counts != want {
		t.Errorf("explicit period: counts = %+v, want %+v", run2.Counts, want)
	}
	if run2.RequestedPeriod == nil || run2.Period != *run2.RequestedPeriod {
		t.Errorf("period %+v, requested %+v", run2.Period, run2.RequestedPeriod)
	}
	if run2.ID == run.ID || run2.Seq != run.Seq+1 {
		t.Errorf("second run id %s seq %d", run2.ID, run2.Seq)
	}
}

func TestRunAndStoreStripe(t *testing.T) {
	l := openTestLedger(t)
	appendPayments(t, l,
		pay{tx: "pi_3QbTq2Lkdf8Zx1aA0kL7mN2p", alt: []string{"ch_3QbTq2Lkdf8Zx1aA0aB9cD1e"}, merchant: "acct_main", typ: ledger.TypeCaptured, cur: "USD", amount: 4550, at: "2026-11-22T10:04:30Z"},
		pay{tx: "pi_3QbTq2Lkdf8Zx1aA0kL7mN2p", merchant: "acct_main", typ: ledger.TypeRefunded, cur: "USD", amount: 500, at: "2026-11-22T11:30:44Z"},
		// Known to the ledger by its charge id only: found through the alt id.
		pay{tx: "ch_3QbU01Lkdf8Zx1aA1xY7zW3v", merchant: "acct_main", typ: ledger.TypeCaptured, cur: "USD", amount: 1200, at: "2026-11-22T10:17:01Z"},
		pay{tx: "pi_3QbX9pLkdf8Zx1aA2gH5iJ6k", merchant: "acct_1Tokyo7Lkdf8Zx1", typ: ledger.TypeCaptured, cur: "JPY", amount: 1500, at: "2026-11-22T13:45:11Z"},
		pay{tx: "pi_3QaZ1mLkdf8Zx1aA9cX6zL5k", merchant: "acct_main", typ: ledger.TypeCaptured, cur: "USD", amount: 1200, at: "2026-11-18T09:12:44Z"},
		pay{tx: "pi_3QaZ1mLkdf8Zx1aA9cX6zL5k", merchant: "acct_main", typ: ledger.TypeChargeback, cur: "USD", amount: 1200, at: "2026-11-22T15:02:08Z"},
		pay{tx: "ch_3QbZe8Lkdf8Zx1aA3yZ2aB4c", merchant: "acct_main", typ: ledger.TypeCaptured, cur: "EUR", amount: 1999, at: "2026-11-22T16:20:32Z"},
	)
	run, err := RunAndStore(context.Background(), l, RunConfig{
		Format: FormatStripe, Report: bytes.NewReader(readSample(t, "stripe-itemized-sample.csv")), DefaultMerchant: "acct_main",
		InScope: AllMerchants, Scope: []string{"*"}, Operator: Operator{ID: "cli"}, Time: time.Now(), Policy: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	// pi_3QbU01... is in the ledger as ch_3QbU01... (no PaymentIntent id
	// known), so the row's id misses and its charge_id alt id finds it.
	if want := (Counts{Matched: 6}); run.Counts != want || run.Skipped != 3 || run.Rows != 6 {
		t.Errorf("counts = %+v rows %d skipped %d, exceptions %+v", run.Counts, run.Rows, run.Skipped, run.Exceptions)
	}
	if !run.AllMatched() || run.ExceptionsTotal != 0 || len(run.Exceptions) != 0 {
		t.Errorf("run = %+v", run.RunBody)
	}
	if !slices.Equal(run.Merchants, []string{"acct_1Tokyo7Lkdf8Zx1", "acct_main"}) {
		t.Errorf("merchants = %v", run.Merchants)
	}
}

func TestRunAndStoreStoresNothingOnError(t *testing.T) {
	l := openTestLedger(t)
	appendPayments(t, l, samplePayments...)
	size := l.Size()
	for _, c := range []struct {
		name, report string
		wantLine     int
		wantColumn   string
	}{
		{"amount decimals", "transaction_id,merchant_id,type,amount,currency,settled_at\npay_0001,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\npay_0002,m_bookshop,charge,12.001,USD,2026-11-22T00:00:00Z\n", 3, "amount"},
		{"missing column", "transaction_id,merchant_id,type,amount,settled_at\n", 1, "currency"},
		{"field count", "transaction_id,merchant_id,type,amount,currency,settled_at\npay_0001,m_bookshop,charge\n", 2, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := RunAndStore(context.Background(), l, RunConfig{
				Format: FormatGeneric, Report: strings.NewReader(c.report), InScope: AllMerchants, Time: time.Now(),
			})
			var le *LineError
			if !errors.As(err, &le) || le.Line != c.wantLine || le.Column != c.wantColumn {
				t.Fatalf("err = %v, want a LineError at line %d column %q", err, c.wantLine, c.wantColumn)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunAndStore(ctx, l, RunConfig{
		Format: FormatGeneric, Report: bytes.NewReader(readSample(t, "settlement-generic.csv")), InScope: AllMerchants, Time: time.Now(),
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := RunAndStore(context.Background(), l, RunConfig{Format: FormatGeneric, Report: strings.NewReader("")}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("no scope or time: err = %v", err)
	}
	if _, err := RunAndStore(context.Background(), l, RunConfig{Format: "xlsx", Report: strings.NewReader(""), InScope: AllMerchants, Time: time.Now()}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("unknown format: err = %v", err)
	}
	if l.Size() != size {
		t.Errorf("failed runs appended %d entries", l.Size()-size)
	}
}

// TestRunAndStoreCapsExceptions checks the stored cap: the entry keeps
// MaxStoredExceptions, says it was truncated, and its digest matches the
// complete CSV that OnException can write.
func TestRunAndStoreCapsExceptions(t *testing.T) {
	l := openTestLedger(t)
	const n = MaxStoredExceptions + 50
	var report bytes.Buffer
	report.WriteString("transaction_id,merchant_id,type,amount,currency,settled_at\n")
	for i := range n {
		fmt.Fprintf(&report, "pay_%06d,m_1,charge,1.00,USD,2026-11-22T00:00:00Z\n", i)
	}
	var full bytes.Buffer
	w := NewExceptionWriter(&full)
	run, err := RunAndStore(context.Background(), l, RunConfig{
		Format: FormatGeneric, Report: &report, InScope: AllMerchants, Time: time.Now(), OnException: w.Write,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if run.Counts.MissingInLedger != n || run.ExceptionsTotal != n || len(run.Exceptions) != MaxStoredExceptions || !run.ExceptionsTruncated {
		t.Fatalf("missing_in_ledger %d, total %d, stored %d, truncated %v", run.Counts.MissingInLedger, run.ExceptionsTotal, len(run.Exceptions), run.ExceptionsTruncated)
	}
	if s := sha256.Sum256(full.Bytes()); hex.EncodeToString(s[:]) != run.ExceptionsCSVSHA256 {
		t.Error("exceptions_csv_sha256 does not match the complete exceptions CSV")
	}
	stored, err := LoadRun(l, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Exceptions) != MaxStoredExceptions || stored.Exceptions[MaxStoredExceptions-1].TransactionID != fmt.Sprintf("pay_%06d", MaxStoredExceptions-1) {
		t.Errorf("stored %d exceptions", len(stored.Exceptions))
	}
}

func TestLoadRunNotFound(t *testing.T) {
	l := openTestLedger(t)
	// A subject request shares the by-id index with runs.
	sr, err := l.Append(context.Background(), ledger.Record{
		Kind: ledger.KindSubjectRequest, ID: ledger.NewRecordID(), Time: time.Now(), Policy: 1,
		Body: ledger.SubjectRequestBody{Kind: "restrict", Reference: "r1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Entry(sr.Seq)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{e.ID, ledger.NewRecordID(), "", "x\x00"} {
		if _, err := LoadRun(l, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("LoadRun(%q) err = %v, want ErrNotFound", id, err)
		}
	}
}

func TestClosedLedger(t *testing.T) {
	l := openTestLedger(t)
	appendPayments(t, l, samplePayments...)
	snap, err := NewSnapshot(l)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() { closed <- l.Close() }()
	// Close waits for the open snapshot, which still reads.
	if _, ok, err := snap.Transaction(context.Background(), "pay_0001"); !ok || err != nil {
		t.Fatalf("snapshot read while closing: %v %v", ok, err)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := NewSnapshot(l); !errors.Is(err, ledger.ErrClosed) {
		t.Errorf("NewSnapshot after Close: %v", err)
	}
	if _, err := LoadRun(l, ledger.NewRecordID()); !errors.Is(err, ledger.ErrClosed) {
		t.Errorf("LoadRun after Close: %v", err)
	}
}

func TestRunBodyVisibleTo(t *testing.T) {
	scope := func(ms ...string) func(string) bool {
		return func(m string) bool { return slices.Contains(ms, m) }
	}
	run := func(operator string, outOfScope int, merchants ...string) *RunBody {
		b := &RunBody{Operator: Operator{ID: operator}}
		b.Merchants, b.Counts.OutOfScope = merchants, outOfScope
		return b
	}
	for _, c := range []struct {
		name   string
		b      *RunBody
		actor  string
		all    bool
		scope  func(string) bool
		wanted bool
	}{
		{"in scope", run("prn_a", 0, "m_1"), "prn_b", false, scope("m_1"), true},
		{"one merchant outside", run("prn_a", 0, "m_1", "m_2"), "prn_b", false, scope("m_1"), false},
		{"all merchants", run("prn_a", 3, "m_1", "m_2"), "prn_b", true, scope(), true},
		{"no merchants read", run("prn_a", 0), "prn_b", false, scope("m_9"), true},
		{"out_of_scope rows, other caller", run("prn_a", 1, "m_1"), "prn_b", false, scope("m_1"), false},
		{"out_of_scope rows, operator", run("prn_a", 1, "m_1"), "prn_a", false, scope("m_1"), true},
		{"operator whose scope shrank", run("prn_a", 0, "m_1", "m_2"), "prn_a", false, scope("m_1"), false},
	} {
		if got := c.b.VisibleTo(c.actor, c.all, c.scope); got != c.wanted {
			t.Errorf("%s: got %v, want %v", c.name, got, c.wanted)
		}
	}
}

// FuzzRunAndStore checks RunAndStore's all-or-nothing contract on arbitrary
// reports against a real ledger: a failed run appends nothing, a successful
// one appends exactly its entry, whose counts account for every row and
// whose exception digest matches the exceptions it reports.
func FuzzRunAndStore(f *testing.F) {
	f.Add(FormatGeneric, readSample(f, "settlement-generic.csv"))
	f.Add(FormatStripe, readSample(f, "stripe-itemized-sample.csv"))
	f.Add(FormatGeneric, []byte("transaction_id,merchant_id,type,amount,currency,settled_at\npay_0002,m_bookshop,charge,12.001,USD,2026-11-22T00:00:00Z\n"))
	f.Add(FormatGeneric, []byte("transaction_id,merchant_id,type,amount,currency,settled_at\npay_0003,,refund,-5,KWD,2026-11-22T00:00:00+02:00\npay_0003,m_tokyo,refund,5,USD,2026-11-22T00:00:00Z\n"))
	l := openTestLedger(f)
	appendPayments(f, l, samplePayments...)
	f.Fuzz(func(t *testing.T, format string, report []byte) {
		size := l.Size()
		var all bytes.Buffer
		w := NewExceptionWriter(&all)
		run, err := RunAndStore(context.Background(), l, RunConfig{
			Format: format, Report: bytes.NewReader(report), DefaultMerchant: "m_bookshop",
			InScope: func(m string) bool { return m != "m_tokyo" }, Time: time.Now(), OnException: w.Write,
		})
		if err != nil {
			if got := l.Size(); got != size {
				t.Fatalf("failed run (%v) appended %d entries", err, got-size)
			}
			return
		}
		if got := l.Size(); got != size+1 || run.Seq != size {
			t.Fatalf("run appended %d entries, seq %d", got-size, run.Seq)
		}
		c := run.Counts
		if c.Matched+c.MissingInLedger+c.AmountMismatch+c.CurrencyMismatch+c.StatusMismatch+c.DuplicateInReport+c.OutOfScope != run.Rows {
			t.Errorf("counts %+v do not add up to %d rows", c, run.Rows)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(all.Bytes()); hex.EncodeToString(s[:]) != run.ExceptionsCSVSHA256 {
			t.Error("exceptions_csv_sha256 does not match the exceptions")
		}
		if s := sha256.Sum256(report); hex.EncodeToString(s[:]) != run.ReportSHA256 || run.ReportBytes != int64(len(report)) {
			t.Error("report digest does not match the report")
		}
	})
}
