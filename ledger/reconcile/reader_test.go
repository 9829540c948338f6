package reconcile

import (
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readAll returns every row of a report and the error that ended it (nil
// for io.EOF).
func readAll(t testing.TB, format, report, defaultMerchant string) ([]Row, *Reader, error) {
	t.Helper()
	r, err := NewReader(format, strings.NewReader(report), defaultMerchant)
	if err != nil {
		t.Fatalf("NewReader(%s) = %v", format, err)
	}
	var rows []Row
	for {
		row, err := r.Next()
		if err == io.EOF {
			return rows, r, nil
		}
		if err != nil {
			return rows, r, err
		}
		rows = append(rows, row)
	}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

const genericHeader = "transaction_id,merchant_id,type,amount,currency,settled_at\n"

type readerCase struct {
	name    string
	format  string
	merch   string // default merchant
	in      string
	want    []Row
	wantErr *LineError // nil: the report reads to io.EOF
}

func runReaderCases(t *testing.T, cases []readerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := readAll(t, tc.format, tc.in, tc.merch)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rows:\ngot  %+v\nwant %+v", got, tc.want)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			var le *LineError
			if !errors.As(err, &le) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want *LineError wrapping ErrMalformed", err)
			}
			if le.Line != tc.wantErr.Line || le.Column != tc.wantErr.Column {
				t.Errorf("err = %v (line %d, column %q), want line %d, column %q", err, le.Line, le.Column, tc.wantErr.Line, tc.wantErr.Column)
			}
			if tc.wantErr.Reason != "" && le.Reason != tc.wantErr.Reason {
				t.Errorf("reason = %q, want %q", le.Reason, tc.wantErr.Reason)
			}
		})
	}
}

func TestReaderGeneric(t *testing.T) {
	at := ts("2026-11-22T00:00:00Z")
	runReaderCases(t, []readerCase{
		{
			name:   "basic",
			format: FormatGeneric,
			in: genericHeader +
				"pay_1,m_a,charge,19.99,USD,2026-11-22T00:00:00Z\n" +
				"pay_2,m_a,refund,5,usd,2026-11-22T01:00:00+01:00\n" +
				"pay_3,m_b,chargeback,1500,JPY,2026-11-22T00:00:00Z\n" +
				"pay_4,m_b,charge,1.234,KWD,2026-11-22T00:00:00Z\n",
			want: []Row{
				{Line: 2, TransactionID: "pay_1", MerchantID: "m_a", Type: TypeCharge, Currency: "USD", Amount: 1999, SettledAt: at},
				{Line: 3, TransactionID: "pay_2", MerchantID: "m_a", Type: TypeRefund, Currency: "USD", Amount: 500, SettledAt: at},
				{Line: 4, TransactionID: "pay_3", MerchantID: "m_b", Type: TypeChargeback, Currency: "JPY", Amount: 1500, SettledAt: at},
				{Line: 5, TransactionID: "pay_4", MerchantID: "m_b", Type: TypeCharge, Currency: "KWD", Amount: 1234, SettledAt: at},
			},
		},
		{
			name:   "column order, unknown columns, quotes, BOM, CRLF",
			format: FormatGeneric,
			in: "\uFEFFNote, Settled_At ,currency,amount,type,merchant_id,transaction_id,fee\r\n" +
				"\"free text, with comma\",2026-11-22T00:00:00Z,EUR,\"10.50\",charge,m_a,\"pay,1\",0.10\r\n" +
				"\"two\nlines\",2026-11-22T00:00:00Z,EUR,1,refund,m_a,pay_2,\r\n" +
				"x,2026-11-22T00:00:00Z,EUR,2,refund,m_a,pay_3,\r\n",
			want: []Row{
				{Line: 2, TransactionID: "pay,1", MerchantID: "m_a", Type: TypeCharge, Currency: "EUR", Amount: 1050, SettledAt: at},
				{Line: 3, TransactionID: "pay_2", MerchantID: "m_a", Type: TypeRefund, Currency: "EUR", Amount: 100, SettledAt: at},
				{Line: 5, TransactionID: "pay_3", MerchantID: "m_a", Type: TypeRefund, Currency: "EUR", Amount: 200, SettledAt: at},
			},
		},
		{
			name:   "blank lines keep line numbers",
			format: FormatGeneric,
			in:     genericHeader + "\n" + "pay_1,m_a,charge,1,USD,2026-11-22T00:00:00Z\n\n\npay_2,m_a,charge,x,USD,2026-11-22T00:00:00Z\n",
			want: []Row{
				{Line: 3, TransactionID: "pay_1", MerchantID: "m_a", Type: TypeCharge, Currency: "USD", Amount: 100, SettledAt: at},
			},
			wantErr: &LineError{Line: 6, Column: "amount"},
		},
		{
			name:   "negative refund and chargeback",
			format: FormatGeneric,
			in:     genericHeader + "pay_1,m_a,refund,-5.00,USD,2026-11-22T00:00:00Z\npay_1,m_a,chargeback,-0.01,USD,2026-11-22T00:00:00Z\n",
			want: []Row{
				{Line: 2, TransactionID: "pay_1", MerchantID: "m_a", Type: TypeRefund, Currency: "USD", Amount: 500, SettledAt: at},
				{Line: 3, TransactionID: "pay_1", MerchantID: "m_a", Type: TypeChargeback, Currency: "USD", Amount: 1, SettledAt: at},
			},
		},
		{
			name:   "default merchant fills an empty merchant_id",
			format: FormatGeneric,
			merch:  "m_default",
			in:     genericHeader + "pay_1,,charge,1,USD,2026-11-22T00:00:00Z\n",
			want: []Row{
				{Line: 2, TransactionID: "pay_1", MerchantID: "m_default", Type: TypeCharge, Currency: "USD", Amount: 100, SettledAt: at},
			},
		},
		{name: "header only", format: FormatGeneric, in: genericHeader},
		{name: "empty file", format: FormatGeneric, in: "", wantErr: &LineError{Line: 1, Reason: "missing header"}},
		{
			name: "missing column", format: FormatGeneric,
			in:      "transaction_id,merchant_id,type,currency,settled_at\npay_1,m_a,charge,USD,2026-11-22T00:00:00Z\n",
			wantErr: &LineError{Line: 1, Column: "amount", Reason: "missing required column"},
		},
		{
			name: "duplicate column", format: FormatGeneric,
			in:      "transaction_id,merchant_id,type,amount,currency,settled_at,AMOUNT\n",
			wantErr: &LineError{Line: 1, Column: "amount", Reason: "column appears more than once"},
		},
		{name: "too many decimals", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,19.999,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "amount"}},
		{name: "decimals on JPY", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,1500.5,JPY,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "amount", Reason: "not a whole number (JPY has no decimals)"}},
		{name: "thousands separator", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,\"1,000.00\",USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "amount"}},
		{name: "empty amount", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "amount"}},
		{name: "negative charge", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,-1,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "amount", Reason: "negative charge"}},
		{name: "unknown currency", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,1,XYZ,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "currency"}},
		{name: "bad date", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,1,USD,2026-11-22\n", wantErr: &LineError{Line: 2, Column: "settled_at"}},
		{name: "bad type", format: FormatGeneric, in: genericHeader + "pay_1,m_a,Charge,1,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "type"}},
		{name: "empty id", format: FormatGeneric, in: genericHeader + ",m_a,charge,1,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "transaction_id"}},
		{name: "empty merchant, no default", format: FormatGeneric, in: genericHeader + "pay_1,,charge,1,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2, Column: "merchant_id"}},
		{name: "too few fields", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,1,USD\n", wantErr: &LineError{Line: 2, Reason: "field count differs from the header"}},
		{name: "too many fields", format: FormatGeneric, in: genericHeader + "pay_1,m_a,charge,1,USD,2026-11-22T00:00:00Z,extra\n", wantErr: &LineError{Line: 2, Reason: "field count differs from the header"}},
		{name: "bare quote", format: FormatGeneric, in: genericHeader + "pay\"1,m_a,charge,1,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2}},
		{name: "unterminated quote", format: FormatGeneric, in: genericHeader + "\"pay_1,m_a,charge,1,USD,2026-11-22T00:00:00Z\n", wantErr: &LineError{Line: 2}},
		{
			name: "error after a multi-line field names the record's first line", format: FormatGeneric,
			in:      "note," + genericHeader + "\"a\nb\nc\",pay_1,m_a,charge,1.001,USD,2026-11-22T00:00:00Z\n",
			wantErr: &LineError{Line: 2, Column: "amount"},
		},
	})
}

func TestReaderStripe(t *testing.T) {
	const hdr = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,charge_id,payment_intent_id,connected_account\n"
	at := ts("2026-11-22T10:04:31Z")
	runReaderCases(t, []readerCase{
		{
			name:   "charge, refund, dispute; others skipped",
			format: FormatStripe,
			merch:  "m_main",
			in: hdr +
				"txn_1,2026-11-22 10:04:31,usd,45.50,1.62,43.88,charge,ch_1,ch_1,pi_1,\n" +
				"txn_2,2026-11-22 10:04:31,usd,-0.50,0,-0.50,fee,,,,\n" +
				"txn_3,2026-11-22T10:04:31Z,usd,-5.00,0,-5.00,refund,re_1,ch_1,pi_1,acct_x\n" +
				"txn_4,2026-11-22 10:04:31,usd,-100.00,0,-100.00,payout,po_1,,,\n" +
				"txn_5,2026-11-22 10:04:31,jpy,-1500,1500,-3000,dispute,du_1,ch_2,,\n" +
				"txn_6,2026-11-22 10:04:31,eur,19.99,0.53,19.46,charge,py_1,,,\n",
			want: []Row{
				{Line: 2, TransactionID: "pi_1", AltIDs: []string{"ch_1"}, MerchantID: "m_main", Type: TypeCharge, Currency: "USD", Amount: 4550, SettledAt: at},
				{Line: 4, TransactionID: "pi_1", AltIDs: []string{"ch_1"}, MerchantID: "acct_x", Type: TypeRefund, Currency: "USD", Amount: 500, SettledAt: at, Movement: "re_1"},
				{Line: 6, TransactionID: "ch_2", MerchantID: "m_main", Type: TypeChargeback, Currency: "JPY", Amount: 1500, SettledAt: at, Movement: "du_1"},
				{Line: 7, TransactionID: "py_1", MerchantID: "m_main", Type: TypeCharge, Currency: "EUR", Amount: 1999, SettledAt: at},
			},
		},
		{
			name:   "minimal columns",
			format: FormatStripe,
			merch:  "m_main",
			in:     "reporting_category,gross,currency,created_utc,source_id\ncharge,1.00,usd,2026-11-22 10:04:31,ch_1\n",
			want: []Row{
				{Line: 2, TransactionID: "ch_1", MerchantID: "m_main", Type: TypeCharge, Currency: "USD", Amount: 100, SettledAt: at},
			},
		},
		{name: "missing gross", format: FormatStripe, in: "reporting_category,currency,created_utc,source_id\n", wantErr: &LineError{Line: 1, Column: "gross"}},
		{name: "positive refund", format: FormatStripe, merch: "m", in: hdr + "txn_1,2026-11-22 10:04:31,usd,5.00,0,5.00,refund,re_1,ch_1,pi_1,\n", wantErr: &LineError{Line: 2, Column: "gross", Reason: "sign does not match reporting_category"}},
		{name: "negative charge", format: FormatStripe, merch: "m", in: hdr + "txn_1,2026-11-22 10:04:31,usd,-5.00,0,-5.00,charge,ch_1,ch_1,pi_1,\n", wantErr: &LineError{Line: 2, Column: "gross"}},
		{name: "no merchant", format: FormatStripe, in: hdr + "txn_1,2026-11-22 10:04:31,usd,5.00,0,5.00,charge,ch_1,ch_1,pi_1,\n", wantErr: &LineError{Line: 2, Column: "connected_account"}},
		{name: "no ids", format: FormatStripe, merch: "m", in: hdr + "txn_1,2026-11-22 10:04:31,usd,5.00,0,5.00,charge,,,,\n", wantErr: &LineError{Line: 2, Column: "source_id"}},
		{name: "empty category", format: FormatStripe, merch: "m", in: hdr + "txn_1,2026-11-22 10:04:31,usd,5.00,0,5.00,,ch_1,,,\n", wantErr: &LineError{Line: 2, Column: "reporting_category"}},
		{name: "bad time", format: FormatStripe, merch: "m", in: hdr + "txn_1,22/11/2026 10:04,usd,5.00,0,5.00,charge,ch_1,,,\n", wantErr: &LineError{Line: 2, Column: "created_utc"}},
		{name: "too many decimals", format: FormatStripe, merch: "m", in: hdr + "txn_1,2026-11-22 10:04:31,jpy,5.5,0,5.5,charge,ch_1,,,\n", wantErr: &LineError{Line: 2, Column: "gross"}},
	})
}

func TestReaderStripeSample(t *testing.T) {
	b, err := os.ReadFile("../../testdata/stripe-itemized-sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, r, err := readAll(t, FormatStripe, string(b), "m_bookshop")
	if err != nil {
		t.Fatal(err)
	}
	type short struct {
		line           int
		id, merch, typ string
		cur            string
		amount         int64
	}
	var got []short
	for _, r := range rows {
		got = append(got, short{r.Line, r.TransactionID, r.MerchantID, r.Type, r.Currency, r.Amount})
	}
	want := []short{
		{2, "pi_3QbTq2Lkdf8Zx1aA0kL7mN2p", "m_bookshop", TypeCharge, "USD", 4550},
		{3, "pi_3QbU01Lkdf8Zx1aA1hJ4kL6m", "m_bookshop", TypeCharge, "USD", 1200},
		{4, "pi_3QbTq2Lkdf8Zx1aA0kL7mN2p", "m_bookshop", TypeRefund, "USD", 500},
		{6, "pi_3QbX9pLkdf8Zx1aA2gH5iJ6k", "acct_1Tokyo7Lkdf8Zx1", TypeCharge, "JPY", 1500},
		{7, "pi_3QaZ1mLkdf8Zx1aA9cX6zL5k", "m_bookshop", TypeChargeback, "USD", 1200},
		{8, "ch_3QbZe8Lkdf8Zx1aA3yZ2aB4c", "m_bookshop", TypeCharge, "EUR", 1999},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\ngot  %+v\nwant %+v", got, want)
	}
	if r.Skipped() != 3 {
		t.Errorf("Skipped() = %d, want 3 (fee, transfer, payout)", r.Skipped())
	}
}

func TestReaderSharedSample(t *testing.T) {
	b, err := os.ReadFile("../../testdata/settlement-generic.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := readAll(t, FormatGeneric, string(b), "")
	if err != nil {
		t.Fatal(err)
	}
	at := ts("2026-11-22T00:00:00Z")
	want := []Row{
		{Line: 2, TransactionID: "pay_0001", MerchantID: "m_bookshop", Type: TypeCharge, Currency: "USD", Amount: 4550, SettledAt: at},
		{Line: 3, TransactionID: "pay_0002", MerchantID: "m_bookshop", Type: TypeCharge, Currency: "USD", Amount: 1200, SettledAt: at},
		{Line: 4, TransactionID: "pay_0003", MerchantID: "m_bookshop", Type: TypeRefund, Currency: "USD", Amount: 500, SettledAt: at},
		{Line: 5, TransactionID: "pay_0004", MerchantID: "m_tokyo", Type: TypeCharge, Currency: "JPY", Amount: 1500, SettledAt: at},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows:\ngot  %+v\nwant %+v", rows, want)
	}
}

func TestNewReaderUnknownFormat(t *testing.T) {
	if _, err := NewReader("csv", strings.NewReader(""), ""); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("NewReader(csv) err = %v, want ErrUnknownFormat", err)
	}
}

// TestReaderErrorsDoNotEchoValues puts a card number in each column in turn,
// in a way that makes the line malformed, and checks that no error message
// repeats it.
func TestReaderErrorsDoNotEchoValues(t *testing.T) {
	const pan = "4111111111111111"
	good := []string{"pay_1", "m_a", "charge", "1.00", "USD", "2026-11-22T00:00:00Z"}
	for i := range good {
		rec := append([]string(nil), good...)
		rec[i] = pan + ".123"
		if i == 0 || i == 1 {
			rec[i] = pan
			rec[3] = "1.001" // make the line malformed elsewhere
		}
		in := genericHeader + strings.Join(rec, ",") + "\n"
		_, _, err := readAll(t, FormatGeneric, in, "")
		if err == nil {
			t.Fatalf("column %d: no error", i)
		}
		if strings.Contains(err.Error(), pan) || strings.Contains(err.Error(), "411111") {
			t.Errorf("column %d: error %q echoes the value", i, err)
		}
	}
	// A header error must not echo unknown header names either.
	_, _, err := readAll(t, FormatGeneric, pan+",merchant_id\n", "")
	if err == nil || strings.Contains(err.Error(), pan) {
		t.Errorf("header error %v", err)
	}
}

func TestReaderLineCap(t *testing.T) {
	long := strings.Repeat("x", maxLineBytes+10)
	in := genericHeader + "pay_1,m_a,charge,1,USD,2026-11-22T00:00:00Z\n" + long + "\n"
	rows, r, err := readAll(t, FormatGeneric, in, "")
	if len(rows) != 1 {
		t.Errorf("got %d rows before the long line, want 1", len(rows))
	}
	var le *LineError
	if !errors.As(err, &le) || le.Line != 3 {
		t.Fatalf("err = %v, want LineError on line 3", err)
	}
	// The error is sticky.
	if _, err2 := r.Next(); err2 != err {
		t.Errorf("second Next = %v, want the same error", err2)
	}
}

// errReader fails every read with a non-csv error.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReaderIOError(t *testing.T) {
	boom := errors.New("disk on fire")
	r, err := NewReader(FormatGeneric, errReader{boom}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
		t.Errorf("Next = %v, want wrapped I/O error, not ErrMalformed", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(false, genericHeader+"pay_1,m_a,charge,19.99,USD,2026-11-22T00:00:00Z\n")
	f.Add(false, "amount,currency,type,transaction_id,settled_at,merchant_id,x\n\"1\",jpy,refund,\"a\"\"b\",2026-11-22T00:00:00+09:00,m,\n")
	f.Add(false, genericHeader+"pay_1,m_a,chargeback,-0.001,KWD,2026-11-22T00:00:00Z\n\n")
	f.Add(false, genericHeader+"\"multi\nline\",m_a,charge,1,USD,2026-11-22T00:00:00Z\r\n")
	f.Add(true, "balance_transaction_id,created_utc,currency,gross,reporting_category,source_id,charge_id,payment_intent_id,connected_account\n"+
		"txn_1,2026-11-22 10:04:31,usd,45.50,charge,ch_1,ch_1,pi_1,acct_1\n"+
		"txn_2,2026-11-22 10:04:31,usd,-5.00,refund,re_1,ch_1,pi_1,\n"+
		"txn_3,2026-11-22 10:04:31,usd,-1.00,fee,,,,\n")
	if b, err := os.ReadFile("../../testdata/stripe-itemized-sample.csv"); err == nil {
		f.Add(true, string(b))
	}
	if b, err := os.ReadFile("../../testdata/settlement-generic.csv"); err == nil {
		f.Add(false, string(b))
	}
	f.Fuzz(func(t *testing.T, stripe bool, in string) {
		format := FormatGeneric
		if stripe {
			format = FormatStripe
		}
		r, err := NewReader(format, strings.NewReader(in), "m_default")
		if err != nil {
			t.Fatal(err)
		}
		last := 1
		for {
			row, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var le *LineError
				if !errors.As(err, &le) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v is not a *LineError", err)
				}
				if le.Line < 1 {
					t.Fatalf("line %d < 1", le.Line)
				}
				return
			}
			if row.Line <= last {
				t.Fatalf("row line %d not after %d", row.Line, last)
			}
			last = row.Line
			if row.Amount < 0 || row.TransactionID == "" || row.MerchantID == "" || row.SettledAt.IsZero() {
				t.Fatalf("invalid row %+v", row)
			}
			switch row.Type {
			case TypeCharge, TypeRefund, TypeChargeback:
			default:
				t.Fatalf("invalid type %q", row.Type)
			}
		}
	})
}
