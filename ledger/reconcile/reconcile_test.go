package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeLedger is a map-backed Ledger. It stands in for the interface this
// package declares, not for the ledger's storage, and records the ids it was
// asked for so tests can check that out-of-scope rows are never looked up.
type fakeLedger struct {
	txs    []Tx
	byID   map[string]int
	asked  []string
	failOn string // Transaction(failOn) returns an error
}

func newFakeLedger(txs ...Tx) *fakeLedger {
	f := &fakeLedger{txs: txs, byID: make(map[string]int)}
	for i, tx := range txs {
		f.byID[tx.TransactionID] = i
		for _, id := range tx.AltIDs {
			f.byID[id] = i
		}
	}
	return f
}

func (f *fakeLedger) Transaction(ctx context.Context, id string) (Tx, bool, error) {
	f.asked = append(f.asked, id)
	if id == f.failOn {
		return Tx{}, false, errors.New("ledger unavailable")
	}
	i, ok := f.byID[id]
	if !ok {
		return Tx{}, false, nil
	}
	return f.txs[i], true, nil
}

func (f *fakeLedger) CapturedBetween(ctx context.Context, merchant string, from, to time.Time, fn func(Tx) error) error {
	for _, tx := range f.txs {
		if tx.MerchantID != merchant || tx.CapturedAt.IsZero() || tx.CapturedAt.Before(from) || !tx.CapturedAt.Before(to) {
			continue
		}
		if err := fn(tx); err != nil {
			return err
		}
	}
	return nil
}

var (
	day = ts("2026-11-22T00:00:00Z")
	// fixture is the ledger most Run tests reconcile against; every
	// transaction is captured on day unless said otherwise.
	fixture = []Tx{
		{TransactionID: "pay_ok", MerchantID: "m_a", Currency: "USD", Status: "captured", Captured: 4550, CapturedAt: day},
		{TransactionID: "pay_ref", MerchantID: "m_a", Currency: "USD", Status: "refunded", Captured: 1200, Refunded: 500, CapturedAt: day},
		{TransactionID: "pay_cb", MerchantID: "m_a", Currency: "USD", Status: "chargeback", Captured: 3000, ChargedBack: 3000, CapturedAt: day},
		{TransactionID: "pay_eur", MerchantID: "m_a", Currency: "EUR", Status: "captured", Captured: 1000, CapturedAt: day},
		{TransactionID: "pay_failed", MerchantID: "m_a", Currency: "USD", Status: "failed"},
		{TransactionID: "pay_auth", MerchantID: "m_a", Currency: "USD", Status: "authorized"},
		{TransactionID: "pay_zero", MerchantID: "m_a", Currency: "USD", Status: "captured", CapturedAt: day},
		{TransactionID: "pi_1", AltIDs: []string{"ch_1"}, MerchantID: "m_a", Currency: "USD", Status: "refunded", Captured: 2000, Refunded: 2000, CapturedAt: day},
		{TransactionID: "pay_jpy", MerchantID: "m_a", Currency: "JPY", Status: "captured", Captured: 1500, CapturedAt: day},
		{TransactionID: "pay_other", MerchantID: "m_b", Currency: "USD", Status: "captured", Captured: 999, CapturedAt: day},
		{TransactionID: "pay_c1", MerchantID: "m_c", Currency: "USD", Status: "captured", Captured: 100, CapturedAt: day},
		{TransactionID: "pay_c_late", MerchantID: "m_c", Currency: "USD", Status: "captured", Captured: 100, CapturedAt: day.Add(48 * time.Hour)},
		{TransactionID: "pay_c_early", MerchantID: "m_c", Currency: "USD", Status: "captured", Captured: 100, CapturedAt: day.Add(-time.Nanosecond)},
	}
)

// report builds a generic report from "id,merchant,type,amount,currency"
// lines, all settled on day.
func report(lines ...string) string {
	var b strings.Builder
	b.WriteString(genericHeader)
	for _, l := range lines {
		b.WriteString(l + ",2026-11-22T00:00:00Z\n")
	}
	return b.String()
}

func onlyMerchants(ms ...string) func(string) bool {
	return func(m string) bool { return slices.Contains(ms, m) }
}

func run(t *testing.T, l Ledger, in string, opts Options) *Summary {
	t.Helper()
	r, err := NewReader(FormatGeneric, strings.NewReader(in), "")
	if err != nil {
		t.Fatal(err)
	}
	if opts.InScope == nil {
		opts.InScope = AllMerchants
	}
	s, err := Run(context.Background(), l, r, opts)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	return s
}

func TestRunKinds(t *testing.T) {
	usd := func(amount int64, typ string) *ReportSide {
		return &ReportSide{Amount: amount, Currency: "USD", Type: typ}
	}
	for _, tc := range []struct {
		name  string
		lines []string
		scope func(string) bool
		// missing enables missing_in_report; other cases use a period in
		// which the ledger captured nothing.
		missing bool
		counts  Counts
		want    []Exception
	}{
		{
			name:   "charge matches captured",
			lines:  []string{"pay_ok,m_a,charge,45.50,USD"},
			counts: Counts{Matched: 1},
		},
		{
			name:   "refund matches cumulative refunded",
			lines:  []string{"pay_ref,m_a,charge,12.00,USD", "pay_ref,m_a,refund,5.00,USD"},
			counts: Counts{Matched: 2},
		},
		{
			name:   "chargeback matches charged back",
			lines:  []string{"pay_cb,m_a,charge,30.00,USD", "pay_cb,m_a,chargeback,30.00,USD"},
			counts: Counts{Matched: 2},
		},
		{
			name:   "alt id finds the transaction and duplicates across ids",
			lines:  []string{"ch_1,m_a,charge,20.00,USD", "pi_1,m_a,refund,20.00,USD", "pi_1,m_a,charge,20.00,USD"},
			counts: Counts{Matched: 2, DuplicateInReport: 1},
			want: []Exception{
				{Kind: KindDuplicateInReport, Line: 4, TransactionID: "pi_1", Ledger: &LedgerSide{2000, "USD", "refunded"}, Report: usd(2000, TypeCharge)},
			},
		},
		{
			name:   "missing in ledger",
			lines:  []string{"pay_nope,m_a,charge,1.00,USD"},
			counts: Counts{MissingInLedger: 1},
			want: []Exception{
				{Kind: KindMissingInLedger, Line: 2, TransactionID: "pay_nope", Report: usd(100, TypeCharge)},
			},
		},
		{
			name:   "amount mismatch",
			lines:  []string{"pay_ok,m_a,charge,45.51,USD"},
			counts: Counts{AmountMismatch: 1},
			want: []Exception{
				{Kind: KindAmountMismatch, Line: 2, TransactionID: "pay_ok", Ledger: &LedgerSide{4550, "USD", "captured"}, Report: usd(4551, TypeCharge)},
			},
		},
		{
			name:   "partial refund reported as the cumulative amount differs",
			lines:  []string{"pay_ref,m_a,refund,4.00,USD"},
			counts: Counts{AmountMismatch: 1},
			want: []Exception{
				{Kind: KindAmountMismatch, Line: 2, TransactionID: "pay_ref", Ledger: &LedgerSide{500, "USD", "refunded"}, Report: usd(400, TypeRefund)},
			},
		},
		{
			name:   "currency mismatch is checked before amount",
			lines:  []string{"pay_eur,m_a,charge,11.00,USD"},
			counts: Counts{CurrencyMismatch: 1},
			want: []Exception{
				{Kind: KindCurrencyMismatch, Line: 2, TransactionID: "pay_eur", Ledger: &LedgerSide{1000, "EUR", "captured"}, Report: usd(1100, TypeCharge)},
			},
		},
		{
			name:   "refund on a never-refunded transaction",
			lines:  []string{"pay_ok,m_a,refund,1.00,USD"},
			counts: Counts{StatusMismatch: 1},
			want: []Exception{
				{Kind: KindStatusMismatch, Line: 2, TransactionID: "pay_ok", Ledger: &LedgerSide{0, "USD", "captured"}, Report: usd(100, TypeRefund)},
			},
		},
		{
			name:   "charge on failed and authorized-only transactions",
			lines:  []string{"pay_failed,m_a,charge,1.00,USD", "pay_auth,m_a,charge,0.00,USD"},
			counts: Counts{StatusMismatch: 2},
			want: []Exception{
				{Kind: KindStatusMismatch, Line: 2, TransactionID: "pay_failed", Ledger: &LedgerSide{0, "USD", "failed"}, Report: usd(100, TypeCharge)},
				{Kind: KindStatusMismatch, Line: 3, TransactionID: "pay_auth", Ledger: &LedgerSide{0, "USD", "authorized"}, Report: usd(0, TypeCharge)},
			},
		},
		{
			name:   "chargeback on a transaction never charged back",
			lines:  []string{"pay_ref,m_a,chargeback,12.00,USD"},
			counts: Counts{StatusMismatch: 1},
			want: []Exception{
				{Kind: KindStatusMismatch, Line: 2, TransactionID: "pay_ref", Ledger: &LedgerSide{0, "USD", "refunded"}, Report: usd(1200, TypeChargeback)},
			},
		},
		{
			name:   "zero-amount capture: amount compared, not status",
			lines:  []string{"pay_zero,m_a,charge,0.00,USD", "pay_zero,m_a,refund,0,USD"},
			counts: Counts{Matched: 1, StatusMismatch: 1},
			want: []Exception{
				{Kind: KindStatusMismatch, Line: 3, TransactionID: "pay_zero", Ledger: &LedgerSide{0, "USD", "captured"}, Report: usd(0, TypeRefund)},
			},
		},
		{
			name:   "duplicate in report; the first row matches",
			lines:  []string{"pay_ok,m_a,charge,45.50,USD", "pay_ok,m_a,charge,45.50,USD", "pay_ok,m_a,charge,1.00,USD"},
			counts: Counts{Matched: 1, DuplicateInReport: 2},
			want: []Exception{
				{Kind: KindDuplicateInReport, Line: 3, TransactionID: "pay_ok", Ledger: &LedgerSide{4550, "USD", "captured"}, Report: usd(4550, TypeCharge)},
				{Kind: KindDuplicateInReport, Line: 4, TransactionID: "pay_ok", Ledger: &LedgerSide{4550, "USD", "captured"}, Report: usd(100, TypeCharge)},
			},
		},
		{
			name:   "duplicate of a row missing in the ledger",
			lines:  []string{"pay_nope,m_a,refund,1.00,USD", "pay_nope,m_a,refund,1.00,USD"},
			counts: Counts{MissingInLedger: 1, DuplicateInReport: 1},
			want: []Exception{
				{Kind: KindMissingInLedger, Line: 2, TransactionID: "pay_nope", Report: usd(100, TypeRefund)},
				{Kind: KindDuplicateInReport, Line: 3, TransactionID: "pay_nope", Report: usd(100, TypeRefund)},
			},
		},
		{
			name:    "missing in report: only the report's in-scope merchants",
			missing: true,
			lines:   []string{"pay_c1,m_c,charge,1.00,USD", "pay_ok,m_a,charge,45.50,USD"},
			scope:   onlyMerchants("m_c"),
			counts:  Counts{Matched: 1, OutOfScope: 1},
			want: []Exception{
				{Kind: KindOutOfScope, Line: 3, TransactionID: "pay_ok", Report: usd(4550, TypeCharge)},
			},
		},
		{
			name:    "missing in report",
			missing: true,
			lines:   []string{"pay_c_late,m_c,charge,1.00,USD"},
			counts:  Counts{MissingInReport: 1, Matched: 1},
			want: []Exception{
				// pay_c_early is one nanosecond before the period, pay_c_late
				// defines its end.
				{Kind: KindMissingInReport, TransactionID: "pay_c1", Ledger: &LedgerSide{100, "USD", "captured"}},
			},
		},
		{
			name:    "a refund row alone leaves the capture missing in report",
			missing: true,
			lines:   []string{"pay_c1,m_c,refund,1.00,USD"},
			counts:  Counts{StatusMismatch: 1, MissingInReport: 1},
			want: []Exception{
				{Kind: KindStatusMismatch, Line: 2, TransactionID: "pay_c1", Ledger: &LedgerSide{0, "USD", "captured"}, Report: usd(100, TypeRefund)},
				{Kind: KindMissingInReport, TransactionID: "pay_c1", Ledger: &LedgerSide{100, "USD", "captured"}},
			},
		},
		{
			name:   "out of scope rows are not looked up",
			lines:  []string{"pay_other,m_b,charge,9.99,USD", "pay_nope,m_b,charge,9.99,USD"},
			scope:  onlyMerchants("m_a"),
			counts: Counts{OutOfScope: 2},
			want: []Exception{
				{Kind: KindOutOfScope, Line: 2, TransactionID: "pay_other", Report: usd(999, TypeCharge)},
				{Kind: KindOutOfScope, Line: 3, TransactionID: "pay_nope", Report: usd(999, TypeCharge)},
			},
		},
		{
			name:   "a row claiming another merchant's transaction sees nothing of it",
			lines:  []string{"pay_other,m_a,charge,9.99,USD"},
			scope:  onlyMerchants("m_a"),
			counts: Counts{MissingInLedger: 1},
			want: []Exception{
				{Kind: KindMissingInLedger, Line: 2, TransactionID: "pay_other", Report: usd(999, TypeCharge)},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newFakeLedger(fixture...)
			opts := Options{InScope: tc.scope}
			if !tc.missing {
				opts.From, opts.To = day.Add(1000*time.Hour), day.Add(1001*time.Hour)
			}
			s := run(t, l, report(tc.lines...), opts)
			if s.Counts != tc.counts {
				t.Errorf("counts = %+v, want %+v", s.Counts, tc.counts)
			}
			want := tc.want
			if want == nil {
				want = []Exception{}
			}
			if !reflect.DeepEqual(s.Exceptions, want) {
				t.Errorf("exceptions:\ngot  %s\nwant %s", dump(s.Exceptions), dump(want))
			}
			if s.Rows != len(tc.lines) {
				t.Errorf("rows = %d, want %d", s.Rows, len(tc.lines))
			}
			c := s.Counts
			if sum := c.Matched + c.MissingInLedger + c.AmountMismatch + c.CurrencyMismatch + c.StatusMismatch + c.DuplicateInReport + c.OutOfScope; sum != s.Rows {
				t.Errorf("row counts sum to %d, want %d", sum, s.Rows)
			}
		})
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRunOutOfScopeNeverConsultsLedger(t *testing.T) {
	l := newFakeLedger(fixture...)
	s := run(t, l, report("pay_other,m_b,charge,9.99,USD", "pay_ok,m_a,charge,45.50,USD"), Options{InScope: onlyMerchants("m_a")})
	if slices.Contains(l.asked, "pay_other") {
		t.Errorf("ledger was asked for an out-of-scope row: %v", l.asked)
	}
	// m_b is not the caller's, so its unreported transactions are not listed
	// either; m_a's are.
	for _, e := range s.Exceptions {
		if e.Kind == KindMissingInReport && e.TransactionID == "pay_other" {
			t.Errorf("missing_in_report disclosed another merchant's transaction")
		}
	}
	if _, ok := s.Totals["USD"]; !ok || s.Totals["USD"].Report != 4550 {
		t.Errorf("totals = %+v, want USD report 4550 (out-of-scope row excluded)", s.Totals)
	}
}

func TestRunMissingInReportOfAMerchant(t *testing.T) {
	l := newFakeLedger(fixture...)
	s := run(t, l, report("pay_ok,m_a,charge,45.50,USD", "ch_1,m_a,charge,20.00,USD"), Options{})
	var got []string
	for _, e := range s.Exceptions {
		if e.Kind == KindMissingInReport {
			if e.Line != 0 || e.Report != nil || e.Ledger == nil {
				t.Errorf("bad missing_in_report exception %s", dump(e))
			}
			got = append(got, e.TransactionID)
		}
	}
	slices.Sort(got)
	// Captured on day, never reported: pi_1 was reported by its alt id.
	want := []string{"pay_cb", "pay_eur", "pay_jpy", "pay_ref", "pay_zero"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("missing_in_report = %v, want %v", got, want)
	}
	if s.Counts.MissingInReport != len(want) {
		t.Errorf("count = %d", s.Counts.MissingInReport)
	}
	wantPeriod := Period{From: day, To: day.Add(time.Nanosecond)}
	if s.Period != wantPeriod {
		t.Errorf("period = %+v, want %+v", s.Period, wantPeriod)
	}
}

func TestRunExplicitPeriod(t *testing.T) {
	l := newFakeLedger(fixture...)
	s := run(t, l, report("pay_c1,m_c,charge,1.00,USD"), Options{From: day.Add(-time.Hour), To: day.Add(72 * time.Hour)})
	var got []string
	for _, e := range s.Exceptions {
		got = append(got, e.TransactionID)
	}
	slices.Sort(got)
	if want := []string{"pay_c_early", "pay_c_late"}; !reflect.DeepEqual(got, want) {
		t.Errorf("missing_in_report = %v, want %v", got, want)
	}
	if s.Period.From != day.Add(-time.Hour) || s.Period.To != day.Add(72*time.Hour) {
		t.Errorf("period = %+v", s.Period)
	}

	r, _ := NewReader(FormatGeneric, strings.NewReader(genericHeader), "")
	if _, err := Run(context.Background(), l, r, Options{InScope: AllMerchants, From: day, To: day}); err == nil {
		t.Error("Run with an empty period succeeded")
	}
}

func TestRunTotals(t *testing.T) {
	l := newFakeLedger(fixture...)
	s := run(t, l, report(
		"pay_ref,m_a,charge,12.00,USD",    // ledger +1200, report +1200
		"pay_ref,m_a,refund,5.00,USD",     // ledger -500, report -500
		"pay_ref,m_a,refund,5.00,USD",     // duplicate: report -500 only
		"pay_cb,m_a,chargeback,29.00,USD", // ledger -3000, report -2900
		"pay_eur,m_a,charge,10,JPY",       // currency mismatch: ledger EUR +1000, report JPY +10
		"pay_jpy,m_a,charge,1500,JPY",     // ledger +1500, report +1500
		"pay_nope,m_a,charge,1.00,USD",    // missing in ledger: report +100
		"pay_ok,m_a,refund,1.00,USD",      // status mismatch: ledger 0, report -100
		"pay_other,m_b,charge,9.99,USD",   // out of scope: neither
	), Options{InScope: onlyMerchants("m_a")})
	// Missing in report (ledger only), as no charge row names them: pay_ok
	// +4550, pay_cb +3000, pi_1 +2000, pay_zero 0.
	want := map[string]Total{
		"USD": {Ledger: 1200 - 500 - 3000 + 4550 + 3000 + 2000, Report: 1200 - 500 - 500 - 2900 + 100 - 100},
		"EUR": {Ledger: 1000},
		"JPY": {Ledger: 1500, Report: 10 + 1500},
	}
	if !reflect.DeepEqual(s.Totals, want) {
		t.Errorf("totals = %+v, want %+v", s.Totals, want)
	}
}

func TestRunOptions(t *testing.T) {
	lines := []string{"a,m_a,charge,1,USD", "b,m_a,charge,1,USD", "c,m_a,charge,1,USD"}

	t.Run("MaxExceptions and OnException", func(t *testing.T) {
		var streamed []string
		s := run(t, newFakeLedger(), report(lines...), Options{MaxExceptions: 2, OnException: func(e Exception) error {
			streamed = append(streamed, e.TransactionID)
			return nil
		}})
		if len(s.Exceptions) != 2 || !s.ExceptionsTruncated || s.Counts.MissingInLedger != 3 {
			t.Errorf("kept %d exceptions (truncated %v), counted %d", len(s.Exceptions), s.ExceptionsTruncated, s.Counts.MissingInLedger)
		}
		if want := []string{"a", "b", "c"}; !reflect.DeepEqual(streamed, want) {
			t.Errorf("streamed %v, want %v", streamed, want)
		}
	})
	t.Run("negative MaxExceptions keeps none", func(t *testing.T) {
		s := run(t, newFakeLedger(), report(lines...), Options{MaxExceptions: -1})
		if len(s.Exceptions) != 0 || !s.ExceptionsTruncated {
			t.Errorf("kept %d", len(s.Exceptions))
		}
	})
	t.Run("OnException error stops the run", func(t *testing.T) {
		stop := errors.New("disk full")
		r, _ := NewReader(FormatGeneric, strings.NewReader(report(lines...)), "")
		s, err := Run(context.Background(), newFakeLedger(), r, Options{InScope: AllMerchants, OnException: func(Exception) error { return stop }})
		if !errors.Is(err, stop) || s != nil {
			t.Errorf("Run = %v, %v; want nil, %v", s, err, stop)
		}
	})
	t.Run("InScope is required", func(t *testing.T) {
		r, _ := NewReader(FormatGeneric, strings.NewReader(report(lines...)), "")
		if _, err := Run(context.Background(), newFakeLedger(), r, Options{}); !errors.Is(err, ErrNoScope) {
			t.Errorf("Run = %v, want ErrNoScope", err)
		}
	})
	t.Run("ledger error", func(t *testing.T) {
		l := newFakeLedger()
		l.failOn = "b"
		r, _ := NewReader(FormatGeneric, strings.NewReader(report(lines...)), "")
		if _, err := Run(context.Background(), l, r, Options{InScope: AllMerchants}); err == nil || !strings.Contains(err.Error(), "line 3") {
			t.Errorf("Run = %v, want a lookup error naming line 3", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r, _ := NewReader(FormatGeneric, strings.NewReader(report(lines...)), "")
		if _, err := Run(ctx, newFakeLedger(), r, Options{InScope: AllMerchants}); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	t.Run("malformed line returns the LineError and no summary", func(t *testing.T) {
		r, _ := NewReader(FormatGeneric, strings.NewReader(report("a,m_a,charge,1,USD", "b,m_a,charge,1.001,USD")), "")
		s, err := Run(context.Background(), newFakeLedger(), r, Options{InScope: AllMerchants})
		var le *LineError
		if s != nil || !errors.As(err, &le) || le.Line != 3 {
			t.Errorf("Run = %v, %v; want nil, LineError on line 3", s, err)
		}
	})
	t.Run("Progress", func(t *testing.T) {
		const n = progressEvery + 1
		var b strings.Builder
		b.WriteString(genericHeader)
		for i := range n {
			fmt.Fprintf(&b, "p%d,m_a,charge,1,USD,2026-11-22T00:00:00Z\n", i)
		}
		var calls []int
		run(t, newFakeLedger(), b.String(), Options{MaxExceptions: -1, Progress: func(rows int) { calls = append(calls, rows) }})
		if want := []int{progressEvery}; !reflect.DeepEqual(calls, want) {
			t.Errorf("Progress calls %v, want %v", calls, want)
		}
	})
}

func TestRunStripeSample(t *testing.T) {
	b, err := os.ReadFile("../../testdata/stripe-itemized-sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	created := ts("2026-11-22T10:04:31Z")
	l := newFakeLedger(
		Tx{TransactionID: "pi_3QbTq2Lkdf8Zx1aA0kL7mN2p", AltIDs: []string{"ch_3QbTq2Lkdf8Zx1aA0aB9cD1e"}, MerchantID: "m_bookshop", Currency: "USD", Status: "refunded", Captured: 4550, Refunded: 500, CapturedAt: created},
		Tx{TransactionID: "pi_3QbU01Lkdf8Zx1aA1hJ4kL6m", MerchantID: "m_bookshop", Currency: "USD", Status: "captured", Captured: 1200, CapturedAt: created},
		Tx{TransactionID: "pi_3QbX9pLkdf8Zx1aA2gH5iJ6k", MerchantID: "acct_1Tokyo7Lkdf8Zx1", Currency: "JPY", Status: "captured", Captured: 1500, CapturedAt: created},
		// Captured days before the report, charged back within it.
		Tx{TransactionID: "pi_3QaZ1mLkdf8Zx1aA9cX6zL5k", MerchantID: "m_bookshop", Currency: "USD", Status: "chargeback", Captured: 1200, ChargedBack: 1200, CapturedAt: created.Add(-96 * time.Hour)},
		// The legacy charge is known to the ledger by its charge id.
		Tx{TransactionID: "ch_3QbZe8Lkdf8Zx1aA3yZ2aB4c", MerchantID: "m_bookshop", Currency: "EUR", Status: "captured", Captured: 1999, CapturedAt: created},
	)
	r, err := NewReader(FormatStripe, strings.NewReader(string(b)), "m_bookshop")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), l, r, Options{InScope: AllMerchants})
	if err != nil {
		t.Fatal(err)
	}
	if !s.AllMatched() || s.Rows != 6 || s.Skipped != 3 {
		t.Errorf("summary %s: want 6 rows all matched, 3 skipped", dump(s))
	}
}

func TestSummaryJSON(t *testing.T) {
	s := run(t, newFakeLedger(fixture...), report("pay_ok,m_a,charge,45.51,USD", "nope,m_a,charge,1,USD"), Options{InScope: onlyMerchants("m_a"), MaxExceptions: 2})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"counts", "totals", "exceptions", "rows", "period"} {
		if _, ok := got[k]; !ok {
			t.Errorf("summary JSON lacks %q: %s", k, b)
		}
	}
	counts := got["counts"].(map[string]any)
	for _, k := range []string{"matched", "missing_in_ledger", "missing_in_report", "amount_mismatch", "currency_mismatch", "status_mismatch", "duplicate_in_report", "out_of_scope"} {
		if _, ok := counts[k]; !ok {
			t.Errorf("counts lack %q", k)
		}
	}
	if usd := got["totals"].(map[string]any)["USD"].(map[string]any); usd["ledger"] == nil || usd["report"] == nil {
		t.Errorf("totals.USD = %v", usd)
	}
	ex := got["exceptions"].([]any)
	first := ex[0].(map[string]any)
	wantFirst := map[string]any{
		"kind": "amount_mismatch", "line": 2.0, "transaction_id": "pay_ok",
		"ledger": map[string]any{"amount": 4550.0, "currency": "USD", "status": "captured"},
		"report": map[string]any{"amount": 4551.0, "currency": "USD", "type": "charge"},
	}
	if !reflect.DeepEqual(first, wantFirst) {
		t.Errorf("exception JSON = %v, want %v", first, wantFirst)
	}
	if second := ex[1].(map[string]any); second["ledger"] != nil {
		t.Errorf("missing_in_ledger has ledger %v, want null", second["ledger"])
	}
	// An empty run still has an exceptions array.
	s = run(t, newFakeLedger(), genericHeader, Options{})
	if b, _ := json.Marshal(s); !strings.Contains(string(b), `"exceptions":[]`) {
		t.Errorf("empty summary JSON %s", b)
	}
}

// TestRunStripePartialRefunds: Stripe lists each partial refund as its own
// row; their sum is compared with the ledger's cumulative refunded amount.
func TestRunStripePartialRefunds(t *testing.T) {
	const hdr = "balance_transaction_id,created_utc,currency,gross,reporting_category,source_id,charge_id,payment_intent_id\n"
	created := ts("2026-11-22T10:04:31Z")
	l := newFakeLedger(
		Tx{TransactionID: "pi_a", AltIDs: []string{"ch_a"}, MerchantID: "m", Currency: "USD", Status: "refunded", Captured: 5000, Refunded: 1500, CapturedAt: created},
		Tx{TransactionID: "pi_b", MerchantID: "m", Currency: "USD", Status: "refunded", Captured: 2000, Refunded: 900, CapturedAt: created},
	)
	in := hdr +
		"txn_1,2026-11-22 10:04:31,usd,50.00,charge,ch_a,ch_a,pi_a\n" +
		"txn_2,2026-11-22 10:04:31,usd,-10.00,refund,re_1,ch_a,pi_a\n" +
		"txn_3,2026-11-22 10:04:31,usd,-5.00,refund,re_2,ch_a,pi_a\n" +
		"txn_3,2026-11-22 10:04:31,usd,-5.00,refund,re_2,ch_a,pi_a\n" + // the same movement twice
		"txn_4,2026-11-22 10:04:31,usd,20.00,charge,ch_b,ch_b,pi_b\n" +
		"txn_5,2026-11-22 10:04:31,usd,-4.00,refund,re_3,ch_b,pi_b\n" +
		"txn_6,2026-11-22 10:04:31,usd,-4.00,refund,re_4,ch_b,pi_b\n" // sums to 8.00, ledger says 9.00
	r, err := NewReader(FormatStripe, strings.NewReader(in), "m")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), l, r, Options{InScope: AllMerchants})
	if err != nil {
		t.Fatal(err)
	}
	if s.Counts.Matched != 4 || s.Counts.DuplicateInReport != 1 || s.Counts.AmountMismatch != 2 {
		t.Fatalf("counts %+v, want 4 matched (2 charges, 2 partial refunds of pi_a), 1 duplicate, 2 mismatched refunds of pi_b", s.Counts)
	}
	var lines []int
	for _, ex := range s.Exceptions {
		if ex.Kind == KindAmountMismatch {
			lines = append(lines, ex.Line)
			if ex.Ledger == nil || ex.Ledger.Amount != 900 || ex.Report == nil || ex.Report.Amount != 400 {
				t.Errorf("exception %s: want ledger 900 (cumulative) and report 400 (the row)", dump(ex))
			}
		}
	}
	if !slices.Equal(lines, []int{7, 8}) {
		t.Errorf("amount mismatches on lines %v, want [7 8]", lines)
	}
	// Report totals include the duplicate row (every in-scope row counts).
	if tot := s.Totals["USD"]; tot.Report != 7000-2800 || tot.Ledger != 7000-2400 {
		t.Errorf("totals %+v", tot)
	}
}
