package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/reconcile"
)

// reconEvent is one generic webhook event for the reconciliation tests.
type reconEvent struct {
	tx, merchant, typ, cur string
	amount                 int64
	at                     string
}

// reconSampleEvents are the ledger side of testdata/settlement-generic.csv:
// pay_0002 differs in amount, pay_0003's capture is not in the report (its
// refund is), pay_0005 was captured on the report's day but is missing
// from it.
var reconSampleEvents = []reconEvent{
	{"pay_0001", "m_bookshop", "payment.captured", "USD", 4550, "2026-11-22T00:00:00Z"},
	{"pay_0002", "m_bookshop", "payment.captured", "USD", 1100, "2026-11-21T09:00:00Z"},
	{"pay_0003", "m_bookshop", "payment.captured", "USD", 2000, "2026-11-21T10:00:00Z"},
	{"pay_0003", "m_bookshop", "payment.refunded", "USD", 500, "2026-11-21T11:00:00Z"},
	{"pay_0004", "m_tokyo", "payment.captured", "JPY", 1500, "2026-11-21T12:00:00Z"},
	{"pay_0005", "m_bookshop", "payment.captured", "USD", 999, "2026-11-22T00:00:00Z"},
}

func (h *harness) reconIngest(events []reconEvent) {
	h.t.Helper()
	for i, ev := range events {
		id := fmt.Sprintf("recon_evt_%d_%s", i, ev.tx)
		r := h.postStandard("msg_"+id, genericEvent(h.t, map[string]any{
			"id": id, "type": ev.typ, "transaction_id": ev.tx, "merchant_id": ev.merchant,
			"amount": ev.amount, "currency": ev.cur, "occurred_at": ev.at,
		}))
		if r.Status != http.StatusOK {
			h.t.Fatalf("ingest %s: %d %s", id, r.Status, r.Body)
		}
	}
}

func reconReadSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reconPost uploads a report as principal as.
func (h *harness) reconPost(as, query string, report []byte) response {
	h.t.Helper()
	return h.do(as, "POST", "/v1/reconciliations?"+query, report, "Content-Type", "text/csv")
}

// reconRun decodes a run answer.
func reconRun(t testing.TB, r response) reconcile.StoredRun {
	t.Helper()
	var run reconcile.StoredRun
	if err := json.Unmarshal(r.Body, &run); err != nil {
		t.Fatalf("not a run: %v: %s", err, r.Body)
	}
	return run
}

// reconLastAccess returns the body of the last entry, which must be an
// access entry.
func (h *harness) reconLastAccess() ledger.AccessBody {
	h.t.Helper()
	e, err := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err != nil {
		h.t.Fatal(err)
	}
	var a ledger.AccessBody
	if e.Kind != ledger.KindAccess || e.DecodeBody(&a) != nil {
		h.t.Fatalf("last entry is not an access entry: %s", e.Bytes())
	}
	return a
}

func TestReconciliationGeneric(t *testing.T) {
	h := newHarness(t)
	h.reconIngest(reconSampleEvents)
	report := reconReadSample(t, "settlement-generic.csv")

	r := h.reconPost("finance", "format=generic", report)
	if r.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	// The contract's Summary keys.
	m := r.json(t)
	for _, k := range []string{"id", "seq", "counts", "totals", "exceptions"} {
		if _, ok := m[k]; !ok {
			t.Errorf("answer lacks %q: %s", k, r.Body)
		}
	}
	counts := m["counts"].(map[string]any)
	for _, k := range []string{"matched", "missing_in_ledger", "missing_in_report", "amount_mismatch", "currency_mismatch", "status_mismatch", "duplicate_in_report"} {
		if _, ok := counts[k]; !ok {
			t.Errorf("counts lacks %q", k)
		}
	}
	run := reconRun(t, r)
	if want := (reconcile.Counts{Matched: 3, AmountMismatch: 1, MissingInReport: 1}); run.Counts != want {
		t.Errorf("counts = %+v, want %+v", run.Counts, want)
	}
	wantTotals := map[string]reconcile.Total{"USD": {Ledger: 4550 + 1100 - 500 + 999, Report: 4550 + 1200 - 500}, "JPY": {Ledger: 1500, Report: 1500}}
	if fmt.Sprint(run.Totals) != fmt.Sprint(wantTotals) {
		t.Errorf("totals = %v, want %v", run.Totals, wantTotals)
	}
	if len(run.Exceptions) != 2 {
		t.Fatalf("exceptions = %+v", run.Exceptions)
	}
	ex := run.Exceptions[0]
	if ex.Kind != reconcile.KindAmountMismatch || ex.Line != 3 || ex.TransactionID != "pay_0002" ||
		*ex.Ledger != (reconcile.LedgerSide{Amount: 1100, Currency: "USD", Status: "captured"}) ||
		*ex.Report != (reconcile.ReportSide{Amount: 1200, Currency: "USD", Type: "charge"}) {
		t.Errorf("first exception = %+v %+v %+v", ex, ex.Ledger, ex.Report)
	}
	if ex := run.Exceptions[1]; ex.Kind != reconcile.KindMissingInReport || ex.TransactionID != "pay_0005" || ex.Report != nil {
		t.Errorf("second exception = %+v", ex)
	}
	if r.Header.Get("Location") != "/v1/reconciliations/"+run.ID {
		t.Errorf("Location = %q", r.Header.Get("Location"))
	}

	// One reconciliation entry, then the access entry for the ledger read.
	a := h.reconLastAccess()
	if a.Action != "reconciliation.create" || a.ActorID != h.ids["finance"] || a.Status != http.StatusCreated ||
		a.Resource != "reconciliation/"+run.ID || strings.Join(a.Merchants, ",") != "m_bookshop,m_tokyo" {
		t.Errorf("access entry = %+v", a)
	}
	e, err := h.node.Ledger.Entry(run.Seq)
	if err != nil {
		t.Fatal(err)
	}
	var body reconcile.RunBody
	if e.Kind != ledger.KindReconciliation || e.ID != run.ID || e.DecodeBody(&body) != nil {
		t.Fatalf("entry at seq %d: %s", run.Seq, e.Bytes())
	}
	sum := sha256.Sum256(report)
	if body.ReportSHA256 != hex.EncodeToString(sum[:]) || body.Operator.ID != h.ids["finance"] || body.Operator.Role != "finance" ||
		body.Format != "generic" || body.Counts != run.Counts || body.LedgerSize != run.Seq {
		t.Errorf("stored body = %+v", body)
	}

	// Read it back, as JSON and as CSV, as finance and as an auditor.
	for _, as := range []string{"finance", "auditor"} {
		g := h.do(as, "GET", "/v1/reconciliations/"+run.ID, nil)
		if g.Status != http.StatusOK {
			t.Fatalf("GET as %s: %d %s", as, g.Status, g.Body)
		}
		got := reconRun(t, g)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(run)
		if !bytes.Equal(gj, wj) {
			t.Errorf("GET as %s =\n%s\nwant\n%s", as, gj, wj)
		}
		if a := h.reconLastAccess(); a.Action != "reconciliation.read" || a.ActorID != h.ids[as] || a.Status != http.StatusOK {
			t.Errorf("GET as %s: access entry %+v", as, a)
		}
		c := h.do(as, "GET", "/v1/reconciliations/"+run.ID+"/exceptions.csv", nil)
		if c.Status != http.StatusOK || !strings.HasPrefix(c.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("exceptions.csv as %s: %d %s %s", as, c.Status, c.Header.Get("Content-Type"), c.Body)
		}
		want := "kind,line,transaction_id,ledger_amount,ledger_currency,ledger_status,report_amount,report_currency,report_type\n" +
			"amount_mismatch,3,pay_0002,11.00,USD,captured,12.00,USD,charge\n" +
			"missing_in_report,0,pay_0005,9.99,USD,captured,,,\n"
		if string(c.Body) != want {
			t.Errorf("exceptions.csv =\n%s\nwant\n%s", c.Body, want)
		}
		if s := sha256.Sum256(c.Body); hex.EncodeToString(s[:]) != run.ExceptionsCSVSHA256 {
			t.Error("exceptions.csv does not hash to the stored exceptions_csv_sha256")
		}
		if c.Header.Get("Paytrail-Exceptions-Total") != "2" || c.Header.Get("Paytrail-Exceptions-Truncated") != "false" {
			t.Errorf("exceptions headers %v", c.Header)
		}
		if a := h.reconLastAccess(); a.Resource != "reconciliation/"+run.ID+"/exceptions.csv" || a.Status != http.StatusOK {
			t.Errorf("exceptions.csv access entry %+v", a)
		}
	}

	// Scope: a run that read m_tokyo's data is not for callers scoped to
	// m_bookshop, and answers as if it did not exist.
	for _, c := range []struct{ as, path string }{
		{"auditor_m1", "/v1/reconciliations/" + run.ID},
		{"auditor_m1", "/v1/reconciliations/" + run.ID + "/exceptions.csv"},
		{"finance_m1", "/v1/reconciliations/" + run.ID},
	} {
		g := h.do(c.as, "GET", c.path, nil)
		missing := h.do(c.as, "GET", "/v1/reconciliations/"+ledger.NewRecordID(), nil)
		if g.Status != http.StatusNotFound || g.errorCode(t) != "not_found" || !bytes.Equal(g.Body, missing.Body) {
			t.Errorf("%s GET %s: %d %s", c.as, c.path, g.Status, g.Body)
		}
		if a := h.reconLastAccess(); a.Result != "failure" || a.Status != http.StatusNotFound {
			t.Errorf("denied read not recorded: %+v", a)
		}
	}

	// The stored run survives a restart and the ledger verifies.
	h.restart()
	if g := h.do("auditor", "GET", "/v1/reconciliations/"+run.ID, nil); g.Status != http.StatusOK {
		t.Fatalf("after restart: %d %s", g.Status, g.Body)
	}
	verifiers, _, err := h.node.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.node.Ledger.Verify(context.Background(), verifiers, nil); err != nil {
		t.Fatalf("ledger does not verify: %v", err)
	}
	h.assertNoCardholderData()
}

func TestReconciliationScope(t *testing.T) {
	h := newHarness(t)
	h.reconIngest(reconSampleEvents)
	report := reconReadSample(t, "settlement-generic.csv")

	// finance_m1 sees m_tokyo's row as out of scope: not matched, not
	// looked up, nothing of the ledger disclosed.
	r := h.reconPost("finance_m1", "format=generic", report)
	if r.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	run := reconRun(t, r)
	if want := (reconcile.Counts{Matched: 2, AmountMismatch: 1, MissingInReport: 1, OutOfScope: 1}); run.Counts != want {
		t.Errorf("counts = %+v, want %+v", run.Counts, want)
	}
	if _, ok := run.Totals["JPY"]; ok {
		t.Errorf("totals include the out-of-scope merchant's currency: %v", run.Totals)
	}
	var oos *reconcile.Exception
	for i := range run.Exceptions {
		if run.Exceptions[i].Kind == reconcile.KindOutOfScope {
			oos = &run.Exceptions[i]
		}
	}
	if oos == nil || oos.Line != 5 || oos.Ledger != nil {
		t.Errorf("out_of_scope exception = %+v", oos)
	}
	if strings.Join(run.Merchants, ",") != "m_bookshop" || strings.Join(run.Scope, ",") != "m_bookshop" {
		t.Errorf("merchants %v scope %v", run.Merchants, run.Scope)
	}
	if a := h.reconLastAccess(); strings.Join(a.Merchants, ",") != "m_bookshop" {
		t.Errorf("access entry merchants %v", a.Merchants)
	}
	// Its operator reads it back; a scoped auditor may not, as it carries
	// another merchant's report rows; an auditor of every merchant may.
	for as, want := range map[string]int{"finance_m1": 200, "auditor_m1": 404, "auditor": 200, "finance": 200} {
		if g := h.do(as, "GET", "/v1/reconciliations/"+run.ID, nil); g.Status != want {
			t.Errorf("GET as %s: %d, want %d: %s", as, g.Status, want, g.Body)
		}
	}

	// A run that read only m_bookshop is visible to auditor_m1.
	only := "transaction_id,merchant_id,type,amount,currency,settled_at\npay_0001,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\n"
	r = h.reconPost("finance", "format=generic", []byte(only))
	if r.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if g := h.do("auditor_m1", "GET", "/v1/reconciliations/"+reconRun(t, r).ID, nil); g.Status != http.StatusOK {
		t.Errorf("auditor_m1 GET of an m_bookshop run: %d %s", g.Status, g.Body)
	}

	// Roles: only finance creates; finance and auditors read.
	for _, c := range []struct {
		as, method, path string
		want             int
	}{
		{"auditor", "POST", "/v1/reconciliations?format=generic", 403},
		{"privacy", "POST", "/v1/reconciliations?format=generic", 403},
		{"admin", "POST", "/v1/reconciliations?format=generic", 403},
		{"", "POST", "/v1/reconciliations?format=generic", 401},
		{"privacy", "GET", "/v1/reconciliations/" + run.ID, 403},
		{"admin", "GET", "/v1/reconciliations/" + run.ID, 403},
		{"admin", "GET", "/v1/reconciliations/" + run.ID + "/exceptions.csv", 403},
		{"", "GET", "/v1/reconciliations/" + run.ID, 401},
		{"auditor", "GET", "/v1/reconciliations/" + ledger.NewRecordID(), 404},
		{"auditor", "GET", "/v1/reconciliations/not-a-run-id", 404},
		{"auditor", "GET", "/v1/reconciliations/" + ledger.NewRecordID() + "/exceptions.csv", 404},
	} {
		var body []byte
		if c.method == "POST" {
			body = report
		}
		size := h.node.Ledger.Size()
		g := h.do(c.as, c.method, c.path, body, "Content-Type", "text/csv")
		if g.Status != c.want {
			t.Errorf("%s %s as %q: %d, want %d: %s", c.method, c.path, c.as, g.Status, c.want, g.Body)
		}
		// Every refusal is one access entry, and nothing else.
		if got := h.node.Ledger.Size(); got != size+1 {
			t.Errorf("%s %s as %q appended %d entries, want 1 (the denial)", c.method, c.path, c.as, got-size)
		} else if a := h.reconLastAccess(); a.Result != "failure" || a.Status != c.want {
			t.Errorf("%s %s as %q: access entry %+v", c.method, c.path, c.as, a)
		}
	}
}

func TestReconciliationStripe(t *testing.T) {
	h := newHarness(t)
	// A real Stripe webhook: the ledger knows the charge by its
	// PaymentIntent id and its charge id.
	ev, err := os.ReadFile("webhook/testdata/stripe-charge-succeeded.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := h.postStripe(ev); r.Status != http.StatusOK {
		t.Fatalf("stripe webhook: %d %s", r.Status, r.Body)
	}
	tx, err := h.node.Ledger.Transaction("ch_3QaSampleCharge01")
	if err != nil {
		t.Fatal(err)
	}
	// The report names it by charge id only (no payment_intent_id column),
	// in the merchant's connected account.
	report := "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,charge_id,connected_account\n" +
		"txn_1,2026-11-22 10:00:00,eur,25.99,0.60,25.39,charge,ch_3QaSampleCharge01,ch_3QaSampleCharge01,acct_1SampleMerchant\n" +
		"txn_2,2026-11-22 11:00:00,eur,-0.60,0.00,-0.60,fee,,,acct_1SampleMerchant\n" +
		"txn_3,2026-11-22 12:00:00,eur,10.00,0.30,9.70,charge,ch_unknown,ch_unknown,acct_1SampleMerchant\n"
	r := h.reconPost("finance", "format=stripe", []byte(report))
	if r.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	run := reconRun(t, r)
	if run.Counts.Matched != 1 || run.Counts.MissingInLedger != 1 || run.Skipped != 1 || run.Rows != 2 {
		t.Errorf("counts = %+v rows %d skipped %d (ledger tx %s %d %s, alt %v): %s",
			run.Counts, run.Rows, run.Skipped, tx.Status, tx.Captured, tx.Currency, tx.AltIDs, r.Body)
	}

	// The repository's sample, with the default merchant as a parameter:
	// nothing in this ledger matches it.
	r = h.reconPost("finance", "format=stripe&default_merchant=acct_main", reconReadSample(t, "stripe-itemized-sample.csv"))
	if r.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if run := reconRun(t, r); run.Counts.MissingInLedger != 6 || run.Skipped != 3 || run.DefaultMerchant != "acct_main" {
		t.Errorf("sample: counts %+v skipped %d", run.Counts, run.Skipped)
	}
	// Without a default merchant its rows without connected_account are
	// malformed (finance has every merchant, so no scope default).
	r = h.reconPost("finance", "format=stripe", reconReadSample(t, "stripe-itemized-sample.csv"))
	if r.Status != http.StatusBadRequest || r.errorCode(t) != "malformed_report" || !strings.Contains(string(r.Body), "line 2") {
		t.Errorf("no default merchant: %d %s", r.Status, r.Body)
	}
}

func TestReconciliationRejects(t *testing.T) {
	h := newHarness(t)
	h.reconIngest(reconSampleEvents)
	report := reconReadSample(t, "settlement-generic.csv")
	bad := strings.Replace(string(report), "12.00", "12.001", 1)
	size := h.node.Ledger.Size()
	for _, c := range []struct {
		name, query, ctype, body string
		status                   int
		code, msg                string
	}{
		{"malformed amount", "format=generic", "text/csv", bad, 400, "malformed_report", "line 3: column amount"},
		{"missing column", "format=generic", "text/csv", "transaction_id,merchant_id,type,amount,settled_at\n", 400, "malformed_report", "line 1: column currency: missing required column"},
		{"bad type", "format=generic", "text/csv", "transaction_id,merchant_id,type,amount,currency,settled_at\np,m_bookshop,sale,1.00,USD,2026-11-22T00:00:00Z\n", 400, "malformed_report", "line 2: column type"},
		{"empty", "format=generic", "text/csv", "", 400, "malformed_report", "line 1: missing header"},
		{"no format", "", "text/csv", string(report), 400, "invalid_parameter", "format"},
		{"unknown format", "format=xlsx", "text/csv", string(report), 400, "invalid_parameter", "format"},
		{"bad from", "format=generic&from=yesterday", "text/csv", string(report), 400, "invalid_parameter", "from"},
		{"from after to", "format=generic&from=2026-11-23T00:00:00Z&to=2026-11-22T00:00:00Z", "text/csv", string(report), 400, "invalid_parameter", "before"},
		{"bad default merchant", "format=generic&default_merchant=a%20b", "text/csv", string(report), 400, "invalid_parameter", "default_merchant"},
		{"multipart", "format=generic", "multipart/form-data; boundary=x", string(report), 415, "unsupported_media_type", "raw request body"},
		{"json", "format=generic", "application/json", string(report), 415, "unsupported_media_type", "raw request body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("finance", "POST", "/v1/reconciliations?"+c.query, []byte(c.body), "Content-Type", c.ctype)
			if r.Status != c.status || r.errorCode(t) != c.code || !strings.Contains(string(r.Body), c.msg) {
				t.Errorf("%d %s, want %d %s containing %q", r.Status, r.Body, c.status, c.code, c.msg)
			}
		})
	}
	// A malformed report never echoes its cells.
	r := h.reconPost("finance", "format=generic", []byte(strings.Replace(string(report), ",12.00,USD,", ",12.00,"+testPAN+",", 1)))
	if r.Status != http.StatusBadRequest || strings.Contains(string(r.Body), testPAN) {
		t.Errorf("malformed with a PAN in a cell: %d %s", r.Status, r.Body)
	}
	if got := h.node.Ledger.Size(); got != size {
		t.Errorf("rejected uploads appended %d entries", got-size)
	}

	// Over the upload limit: 413, by declared length or while streaming.
	h.srv.cfg.MaxUpload = int64(len(report)) - 1
	if r := h.reconPost("finance", "format=generic", report); r.Status != http.StatusRequestEntityTooLarge || r.errorCode(t) != "body_too_large" {
		t.Errorf("over the limit: %d %s", r.Status, r.Body)
	}
	// A chunked upload has no declared length; the cap applies as it streams.
	req, err := http.NewRequest("POST", h.http.URL+"/v1/reconciliations?format=generic", struct{ *bytes.Reader }{bytes.NewReader(report)})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.tokens["finance"])
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked over the limit: %d", resp.StatusCode)
	}
	h.srv.cfg.MaxUpload = int64(len(report))
	if r := h.reconPost("finance", "format=generic", report); r.Status != http.StatusCreated {
		t.Errorf("at the limit: %d %s", r.Status, r.Body)
	}
	if got := h.node.Ledger.Size(); got != size+2 {
		t.Errorf("one accepted upload appended %d entries, want 2 (run and access)", got-size)
	}
	h.assertNoCardholderData()
}
