package reconcile_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/paytrail/paytrail/ledger/reconcile"
)

// mapLedger is the smallest Ledger: transactions by id.
type mapLedger map[string]reconcile.Tx

func (m mapLedger) Transaction(_ context.Context, id string) (reconcile.Tx, bool, error) {
	tx, ok := m[id]
	return tx, ok, nil
}

func (m mapLedger) CapturedBetween(_ context.Context, merchant string, from, to time.Time, fn func(reconcile.Tx) error) error {
	for _, tx := range m {
		if tx.MerchantID == merchant && !tx.CapturedAt.Before(from) && tx.CapturedAt.Before(to) {
			if err := fn(tx); err != nil {
				return err
			}
		}
	}
	return nil
}

func ExampleRun() {
	day := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	ledger := mapLedger{
		"pay_0001": {TransactionID: "pay_0001", MerchantID: "m_bookshop", Currency: "USD", Status: "captured", Captured: 4550, CapturedAt: day},
		"pay_0002": {TransactionID: "pay_0002", MerchantID: "m_bookshop", Currency: "USD", Status: "captured", Captured: 1100, CapturedAt: day},
	}
	report := `transaction_id,merchant_id,type,amount,currency,settled_at
pay_0001,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z
pay_0002,m_bookshop,charge,12.00,USD,2026-11-22T00:00:00Z
pay_0004,m_tokyo,charge,1500,JPY,2026-11-22T00:00:00Z
`
	r, err := reconcile.NewReader(reconcile.FormatGeneric, strings.NewReader(report), "")
	if err != nil {
		log.Fatal(err)
	}
	scope := func(merchant string) bool { return merchant == "m_bookshop" }
	s, err := reconcile.Run(context.Background(), ledger, r, reconcile.Options{InScope: scope})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", s.Counts)
	fmt.Printf("USD %+v\n", s.Totals["USD"])
	if err := reconcile.WriteExceptionsCSV(os.Stdout, s.Exceptions); err != nil {
		log.Fatal(err)
	}
	// Output:
	// {Matched:1 MissingInLedger:0 MissingInReport:0 AmountMismatch:1 CurrencyMismatch:0 StatusMismatch:0 DuplicateInReport:0 OutOfScope:1}
	// USD {Ledger:5650 Report:5750}
	// kind,line,transaction_id,ledger_amount,ledger_currency,ledger_status,report_amount,report_currency,report_type
	// amount_mismatch,3,pay_0002,11.00,USD,captured,12.00,USD,charge
	// out_of_scope,4,pay_0004,,,,1500,JPY,charge
}
