package reconcile

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

func TestWriteExceptionsCSV(t *testing.T) {
	ex := []Exception{
		{Kind: KindAmountMismatch, Line: 2, TransactionID: "pay_1", Ledger: &LedgerSide{4550, "USD", "captured"}, Report: &ReportSide{4551, "USD", "charge"}},
		{Kind: KindMissingInLedger, Line: 3, TransactionID: "pay,2", Report: &ReportSide{1500, "JPY", "refund"}},
		{Kind: KindMissingInReport, TransactionID: "pay_3", Ledger: &LedgerSide{1234, "KWD", "settled"}},
		{Kind: KindOutOfScope, Line: 5, TransactionID: "=HYPERLINK(\"x\")", Report: &ReportSide{-5, "EUR", "refund"}},
	}
	var b bytes.Buffer
	if err := WriteExceptionsCSV(&b, ex); err != nil {
		t.Fatal(err)
	}
	want := `kind,line,transaction_id,ledger_amount,ledger_currency,ledger_status,report_amount,report_currency,report_type
amount_mismatch,2,pay_1,45.50,USD,captured,45.51,USD,charge
missing_in_ledger,3,"pay,2",,,,1500,JPY,refund
missing_in_report,0,pay_3,1.234,KWD,settled,,,
out_of_scope,5,"'=HYPERLINK(""x"")",,,,-0.05,EUR,refund
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// The export parses back with a fixed field count.
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil || len(recs) != len(ex)+1 {
		t.Errorf("ReadAll = %d records, %v", len(recs), err)
	}
}

func TestWriteExceptionsCSVEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteExceptionsCSV(&b, nil); err != nil {
		t.Fatal(err)
	}
	if want := "kind,line,transaction_id,ledger_amount,ledger_currency,ledger_status,report_amount,report_currency,report_type\n"; b.String() != want {
		t.Errorf("got %q, want the header alone", b.String())
	}
}

func TestCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""}, {"pay_1", "pay_1"}, {"=1+1", "'=1+1"}, {"+1", "'+1"}, {"-1", "'-1"}, {"@SUM(A1)", "'@SUM(A1)"}, {"\tx", "'\tx"}, {"a=b", "a=b"},
	} {
		if got := cell(tc.in); got != tc.want {
			t.Errorf("cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
