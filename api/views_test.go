package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// Card numbers besides testPAN: one used only at another merchant, one
// never seen.
const (
	viewsOtherPAN   = "4111111111111111"
	viewsUnseenPAN  = "4000056655665556"
	viewsTestIP     = "198.51.100.23"
	viewsTestExpiry = "2029"
)

var viewsEventSeq atomic.Int64

// viewsPost ingests one generic event through the signed webhook and
// returns its entry's seq.
func viewsPost(h *harness, overrides map[string]any) uint64 {
	h.t.Helper()
	id := fmt.Sprintf("views_evt_%d", viewsEventSeq.Add(1))
	if overrides == nil {
		overrides = map[string]any{}
	}
	overrides["id"] = id
	r := h.postStandard("msg_"+id, genericEvent(h.t, overrides))
	if r.Status != http.StatusOK {
		h.t.Fatalf("ingest: %d %s", r.Status, r.Body)
	}
	return uint64(r.json(h.t)["seq"].(float64))
}

// viewsCard is a generic event's card with the given number.
func viewsCard(pan string) map[string]any {
	return map[string]any{"number": pan, "exp_month": 11, "exp_year": 2029, "brand": "visa"}
}

// viewsLastAccess returns the last ledger entry, which must be an access
// entry, and its body.
func viewsLastAccess(t testing.TB, h *harness) (*ledger.Entry, ledger.AccessBody) {
	t.Helper()
	e, err := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	var b ledger.AccessBody
	if e.Kind != ledger.KindAccess {
		t.Fatalf("last entry is a %s entry, want access: %s", e.Kind, e.Bytes())
	}
	if err := e.DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	return e, b
}

// viewsFraction matches the fractional seconds of a timestamp, whose
// digits are the clock's and may spell any short value, the expiry year
// among them.
var viewsFraction = regexp.MustCompile(`(T\d\d:\d\d:\d\d)\.\d+`)

// viewsAssertMasked fails if a masked answer holds any personal value of
// the test events, or a key that only a disclosure may carry. Fractions of
// seconds are left out of the scan: received_at carries nanoseconds, which
// held "2029" once in a CI run.
func viewsAssertMasked(t testing.TB, body []byte) {
	t.Helper()
	scanned := viewsFraction.ReplaceAllString(string(body), "$1")
	for _, v := range []string{testName, testEmail, testPAN, testPANSpace, viewsOtherPAN, viewsTestIP, viewsTestExpiry, "cvc"} {
		if strings.Contains(scanned, v) {
			t.Errorf("masked view holds %q: %s", v, body)
		}
	}
	for _, k := range []string{`"cardholder_name"`, `"email"`, `"ip"`, `"exp_month"`, `"exp_year"`, `"billing_address"`, `"raw"`, `"cardholder"`} {
		if strings.Contains(string(body), k) {
			t.Errorf("masked view has the key %s: %s", k, body)
		}
	}
}

type viewsList struct {
	Items      []txView `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

func viewsDecode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("%v: %s", err, r.Body)
	}
	return v
}

func TestTransactionView(t *testing.T) {
	h := newHarness(t)
	viewsPost(h, map[string]any{"transaction_id": "pay_v1", "type": "payment.authorized", "occurred_at": "2026-11-20T14:00:00Z"})
	viewsPost(h, map[string]any{"transaction_id": "pay_v1", "type": "payment.captured", "occurred_at": "2026-11-20T14:05:00Z"})
	viewsPost(h, map[string]any{"transaction_id": "pay_v1", "type": "payment.refunded", "amount": 1000, "occurred_at": "2026-11-21T09:00:00Z"})

	r := h.do("auditor", "GET", "/v1/transactions/pay_v1", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	viewsAssertMasked(t, r.Body)
	raw := r.json(t)
	for _, k := range []string{"transaction_id", "merchant_id", "status", "currency", "amount_authorized", "amount_captured",
		"amount_refunded", "amount_charged_back", "card", "first_seen", "last_updated", "entries"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("view lacks %q: %s", k, r.Body)
		}
	}
	for _, k := range []string{"seq", "type", "status", "amount", "currency", "occurred_at", "received_at", "sad_removed"} {
		if _, ok := raw["entries"].([]any)[0].(map[string]any)[k]; !ok {
			t.Errorf("entry view lacks %q: %s", k, r.Body)
		}
	}
	v := viewsDecode[txView](t, r)
	if v.TransactionID != "pay_v1" || v.MerchantID != "m_bookshop" || v.Status != "refunded" || v.Currency != "USD" ||
		v.AmountAuthorized != 4550 || v.AmountCaptured != 4550 || v.AmountRefunded != 1000 {
		t.Errorf("view %+v", v)
	}
	if v.Card.Brand != "mastercard" || v.Card.BIN != "555555" || v.Card.Last4 != "4444" || !strings.HasPrefix(v.Card.Token, "tok_") {
		t.Errorf("card %+v", v.Card)
	}
	if !v.FirstSeen.Equal(time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC)) || !v.LastUpdated.Equal(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("first_seen %v last_updated %v", v.FirstSeen, v.LastUpdated)
	}
	var types []string
	for i, e := range v.Entries {
		types = append(types, e.Type)
		if i > 0 && e.Seq <= v.Entries[i-1].Seq || !e.SADRemoved || e.ReceivedAt.IsZero() {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	if want := []string{"payment.authorized", "payment.captured", "payment.refunded"}; !slices.Equal(types, want) {
		t.Errorf("entry types %v, want %v", types, want)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	_, a := viewsLastAccess(t, h)
	if a.ActorID != h.ids["auditor"] || a.Action != "transaction.read" || a.Resource != "transaction/pay_v1" ||
		!slices.Equal(a.Merchants, []string{"m_bookshop"}) || a.Result != "success" || a.Status != 200 {
		t.Errorf("access entry %+v", a)
	}

	// The card token finds the transaction through the list filter.
	r = h.do("finance", "GET", "/v1/transactions?card_token="+url.QueryEscape(v.Card.Token), nil)
	if l := viewsDecode[viewsList](t, r); r.Status != 200 || len(l.Items) != 1 || l.Items[0].TransactionID != "pay_v1" {
		t.Errorf("card_token filter: %d %s", r.Status, r.Body)
	}
	if _, a := viewsLastAccess(t, h); strings.Contains(a.Resource, v.Card.Token) || !strings.Contains(a.Resource, "pay_v1") {
		t.Errorf("list access resource %q: want the transactions and no card token", a.Resource)
	}

	// A Stripe charge carries no PAN: the view shows its brand and last 4,
	// and the charge id finds the PaymentIntent's transaction.
	body, err := os.ReadFile("webhook/testdata/stripe-charge-succeeded.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := h.postStripe(body); r.Status != 200 {
		t.Fatalf("stripe: %d %s", r.Status, r.Body)
	}
	r = h.do("auditor", "GET", "/v1/transactions/ch_3QaSampleCharge01", nil)
	v = viewsDecode[txView](t, r)
	if r.Status != 200 || v.TransactionID != "pi_3QaSampleIntent01" || v.Card.Brand != "visa" || v.Card.Last4 != "4242" || v.Card.Token != "" {
		t.Errorf("stripe view: %d %s", r.Status, r.Body)
	}
	for _, s := range []string{"Marta Sample", "marta.sample@example.com", "Rua Augusta"} {
		if strings.Contains(string(r.Body), s) {
			t.Errorf("stripe view holds %q", s)
		}
	}

	// A 404 for a card number used as an id does not put it in the ledger.
	if r := h.do("auditor", "GET", "/v1/transactions/"+testPAN, nil); r.Status != 404 {
		t.Errorf("PAN as id: %d", r.Status)
	}
	if _, a := viewsLastAccess(t, h); a.Resource != "transaction/(redacted)" || a.Status != 404 {
		t.Errorf("access entry of a PAN-shaped id: %+v", a)
	}
	h.assertNoCardholderData()
}

func TestTransactionListPaging(t *testing.T) {
	h := newHarness(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var want, wantBookshop []string
	for i := range 12 {
		m, pan, typ := "m_bookshop", testPAN, "payment.captured"
		if i%3 == 1 {
			m, pan = "m_garage", viewsOtherPAN
		}
		if i%4 == 0 {
			typ = "payment.authorized"
		}
		id := fmt.Sprintf("pay_p%02d", i)
		// Pairs share an occurred_at: ties are ordered by transaction id.
		at := t0.Add(time.Duration(i/2) * time.Hour)
		viewsPost(h, map[string]any{"transaction_id": id, "merchant_id": m, "type": typ, "occurred_at": at.Format(time.RFC3339), "card": viewsCard(pan)})
		want = append(want, id)
		if m == "m_bookshop" {
			wantBookshop = append(wantBookshop, id)
		}
	}

	page := func(as, query string) (viewsList, response) {
		t.Helper()
		r := h.do(as, "GET", "/v1/transactions"+query, nil)
		if r.Status != 200 {
			return viewsList{}, r
		}
		viewsAssertMasked(t, r.Body)
		return viewsDecode[viewsList](t, r), r
	}
	all := func(as, query string) []string {
		t.Helper()
		var ids []string
		cursor := ""
		for range 20 {
			l, r := page(as, query+cursor)
			if r.Status != 200 {
				t.Fatalf("%s%s: %d %s", query, cursor, r.Status, r.Body)
			}
			for _, it := range l.Items {
				ids = append(ids, it.TransactionID)
			}
			if l.NextCursor == "" {
				return ids
			}
			cursor = "&cursor=" + url.QueryEscape(l.NextCursor)
		}
		t.Fatal("paging does not end")
		return nil
	}

	if got := all("finance", "?limit=5"); !slices.Equal(got, want) {
		t.Errorf("finance pages: %v\nwant %v", got, want)
	}
	if got := all("auditor_m1", "?limit=3"); !slices.Equal(got, wantBookshop) {
		t.Errorf("auditor_m1 pages: %v\nwant %v", got, wantBookshop)
	}
	if got := all("finance_m1", "?limit=2&merchant_id=m_garage"); len(got) != 0 {
		t.Errorf("a merchant outside the scope listed %v", got)
	}
	if got := all("auditor", "?limit=4&status=authorized"); !slices.Equal(got, []string{"pay_p00", "pay_p04", "pay_p08"}) {
		t.Errorf("status filter: %v", got)
	}
	if got := all("auditor", "?type=captured&merchant_id=m_garage"); !slices.Equal(got, []string{"pay_p01", "pay_p07", "pay_p10"}) {
		t.Errorf("type and merchant filter: %v", got)
	}
	from, to := url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339)), url.QueryEscape(t0.Add(3*time.Hour).Format(time.RFC3339))
	if got := all("auditor", "?limit=3&from="+from+"&to="+to); !slices.Equal(got, want[2:6]) {
		t.Errorf("from/to: %v, want %v", got, want[2:6])
	}

	// A cursor from a caller with scope * replayed by a caller scoped to
	// m_bookshop: the scope is applied again, no m_garage row comes back.
	wide, _ := page("finance", "?limit=2")
	if wide.NextCursor == "" {
		t.Fatal("no cursor after a full page")
	}
	narrow, r := page("finance_m1", "?limit=50&cursor="+url.QueryEscape(wide.NextCursor))
	if r.Status != 200 || len(narrow.Items) == 0 {
		t.Fatalf("replayed cursor: %d %s", r.Status, r.Body)
	}
	for _, it := range narrow.Items {
		if it.MerchantID != "m_bookshop" || it.TransactionID <= "pay_p01" {
			t.Errorf("replayed cursor returned %s of %s", it.TransactionID, it.MerchantID)
		}
	}

	// Altered, forged, truncated and misapplied cursors are 400.
	cur := wide.NextCursor
	payload, mac, _ := strings.Cut(cur, ".")
	flipped := []byte(payload)
	flipped[len(flipped)/2] ^= 1
	forged := encodeCursor(viewsWrongKeys(t), cursorTransactions, "", cursorPos{T: t0.UnixNano(), ID: "pay_p00"})
	for _, q := range []string{
		"?cursor=" + url.QueryEscape(string(flipped)+"."+mac),
		"?cursor=" + url.QueryEscape(payload+"."+mac[:len(mac)-2]),
		"?cursor=" + url.QueryEscape(payload),
		"?cursor=" + url.QueryEscape(forged),
		"?cursor=%00%ff",
		"?cursor=" + strings.Repeat("A", 5000),
		"?status=captured&cursor=" + url.QueryEscape(cur), // another filter
	} {
		if r := h.do("finance", "GET", "/v1/transactions"+q, nil); r.Status != 400 || r.errorCode(t) != "invalid_cursor" {
			t.Errorf("%.60s: %d %s", q, r.Status, r.Body)
		}
	}
	if r := h.do("auditor", "GET", "/v1/access-log?cursor="+url.QueryEscape(cur), nil); r.Status != 400 || r.errorCode(t) != "invalid_cursor" {
		t.Errorf("a transactions cursor on the access log: %d %s", r.Status, r.Body)
	}

	// Limits and parameters.
	for _, tt := range []struct {
		query     string
		status    int
		wantItems int
	}{
		{"", 200, 12},
		{"?limit=1", 200, 1},
		{"?limit=501", 200, 12},
		{"?limit=99999999999999999999999", 200, 12},
		{"?limit=0", 400, 0},
		{"?limit=-3", 400, 0},
		{"?limit=ten", 400, 0},
		{"?limit=", 200, 12},
		{"?from=yesterday", 400, 0},
		{"?to=2026-13-01T00:00:00Z", 400, 0},
		{"?merchant_id=" + url.QueryEscape("a b"), 400, 0},
		{"?merchant_id=m_nowhere", 200, 0},
		{"?card_token=tok_unknown", 200, 0},
		{"?from=2030-01-01T00:00:00Z", 200, 0},
	} {
		l, r := page("auditor", tt.query)
		if r.Status != tt.status || len(l.Items) != tt.wantItems {
			t.Errorf("%s: %d with %d items, want %d with %d: %s", tt.query, r.Status, len(l.Items), tt.status, tt.wantItems, r.Body)
		}
	}
	h.assertNoCardholderData(testPAN, viewsOtherPAN, testName, testEmail)
}

// viewsWrongKeys returns keysets of another data dir: real keys that did
// not make the server's cursors.
func viewsWrongKeys(t testing.TB) *crypto.Keysets {
	t.Helper()
	n, err := datadir.OpenKeys(context.Background(), datadir.Config{Dir: t.TempDir(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	return n.Keys
}

// viewsSubjectRequest makes a cardholder request by card number through
// the API, as the privacy officer.
func viewsSubjectRequest(t testing.TB, h *harness, body map[string]any) {
	t.Helper()
	body["pan"], body["reference"] = testPAN, fmt.Sprintf("views-%v-%d", body["kind"], h.node.Ledger.Size())
	if r := h.do("privacy", "POST", "/v1/subject-requests", body); r.Status != 200 {
		t.Fatalf("subject request %v: %d %s", body["kind"], r.Status, r.Body)
	}
}

type viewsDisclosure struct {
	TransactionID string             `json:"transaction_id"`
	Purpose       string             `json:"purpose"`
	Fields        map[string]*string `json:"fields"`
	Corrected     []string           `json:"corrected"`
	AccessSeq     uint64             `json:"access_seq"`
}

func TestDisclosure(t *testing.T) {
	h := newHarness(t)
	viewsPost(h, map[string]any{"transaction_id": "pay_d1", "type": "payment.authorized"})
	viewsPost(h, map[string]any{"transaction_id": "pay_d1", "type": "payment.captured",
		"cardholder": map[string]any{"name": testName, "email": testEmail, "country": "DE"}})
	// Another cardholder: another card and email, so another data key.
	viewsPost(h, map[string]any{"transaction_id": "pay_g1", "merchant_id": "m_garage", "card": viewsCard(viewsOtherPAN),
		"cardholder": map[string]any{"name": "Other Person", "email": "other.person@example.org"}})
	disclose := func(as, tx, purpose, why string) response {
		t.Helper()
		return h.do(as, "POST", "/v1/transactions/"+tx+"/disclose", map[string]string{"purpose": purpose, "justification": why})
	}

	r := disclose("auditor", "pay_d1", "fraud_investigation", "chargeback ring case 17")
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	d := viewsDecode[viewsDisclosure](t, r)
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	want := map[string]string{"cardholder_name": testName, "email": testEmail, "billing_country": "DE",
		"ip": viewsTestIP, "exp_month": "11", "exp_year": "2029", "billing_address": "<nil>"}
	for f, w := range want {
		if g := str(d.Fields[f]); g != w {
			t.Errorf("field %s = %q, want %q", f, g, w)
		}
	}
	if d.TransactionID != "pay_d1" || d.Purpose != "fraud_investigation" || d.Corrected == nil || len(d.Corrected) != 0 {
		t.Errorf("disclosure %s", r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	// access_seq names a durable access entry with purpose and justification.
	e, err := h.node.Ledger.Entry(d.AccessSeq)
	if err != nil {
		t.Fatal(err)
	}
	var a ledger.AccessBody
	if e.Kind != ledger.KindAccess || e.DecodeBody(&a) != nil || a.Action != "transaction.disclose" || a.Purpose != "fraud_investigation" ||
		a.Reason != "chargeback ring case 17" || a.ActorID != h.ids["auditor"] || a.Status != 200 || a.Resource != "transaction/pay_d1" {
		t.Errorf("access entry %d: %s", d.AccessSeq, e.Bytes())
	}

	// Purposes per role, and bad requests.
	for _, tt := range []struct {
		as, tx, purpose, why string
		status               int
		code                 string
		recorded             bool
	}{
		{"auditor", "pay_d1", "legal_obligation", "court order 2026/44", 200, "", true},
		{"auditor", "pay_d1", "cardholder_request", "asked", 403, "purpose_not_allowed", true},
		{"privacy", "pay_d1", "cardholder_request", "DSAR 991", 200, "", true},
		{"privacy", "pay_d1", "fraud_investigation", "x", 403, "purpose_not_allowed", true},
		{"privacy", "pay_d1", "legal_obligation", "x", 403, "purpose_not_allowed", true},
		{"finance", "pay_d1", "fraud_investigation", "x", 403, "forbidden", true},
		{"admin", "pay_d1", "legal_obligation", "x", 403, "forbidden", true},
		{"auditor", "pay_d1", "curiosity", "x", 400, "invalid_purpose", false},
		{"auditor", "pay_d1", "", "x", 400, "invalid_purpose", false},
		{"auditor", "pay_d1", "fraud_investigation", "   ", 400, "invalid_justification", false},
		{"auditor", "pay_d1", "fraud_investigation", strings.Repeat("j", maxJustification+1), 400, "invalid_justification", false},
		{"auditor_m1", "pay_g1", "fraud_investigation", "x", 404, "not_found", true},
		{"auditor_m1", "pay_nope", "fraud_investigation", "x", 404, "not_found", true},
		{"auditor", "pay_g1", "fraud_investigation", "x", 200, "", true},
	} {
		size := h.node.Ledger.Size()
		r := disclose(tt.as, tt.tx, tt.purpose, tt.why)
		if r.Status != tt.status || tt.code != "" && r.errorCode(t) != tt.code {
			t.Errorf("%s %s %q: %d %s, want %d %s", tt.as, tt.tx, tt.purpose, r.Status, r.Body, tt.status, tt.code)
			continue
		}
		if grew := h.node.Ledger.Size() > size; grew != tt.recorded {
			t.Errorf("%s %s %q: recorded = %v, want %v", tt.as, tt.tx, tt.purpose, grew, tt.recorded)
		}
		if tt.recorded {
			if _, a := viewsLastAccess(t, h); a.Status != tt.status || a.Action != "transaction.disclose" || a.ActorID != h.ids[tt.as] {
				t.Errorf("%s %s %q: access entry %+v", tt.as, tt.tx, tt.purpose, a)
			}
		}
		if tt.status != 200 && strings.Contains(string(r.Body), testName) {
			t.Errorf("a refused disclosure holds the name: %s", r.Body)
		}
	}
	for _, body := range []string{"", "{", `{"purpose":"fraud_investigation","justification":"x","extra":1}`, `[]`} {
		if r := h.do("auditor", "POST", "/v1/transactions/pay_d1/disclose", body); r.Status != 400 {
			t.Errorf("body %q: %d %s", body, r.Status, r.Body)
		}
	}
	r1 := disclose("auditor_m1", "pay_g1", "fraud_investigation", "x")
	r2 := disclose("auditor_m1", "pay_nope", "fraud_investigation", "x")
	if string(r1.Body) != string(r2.Body) {
		t.Errorf("out of scope %s, missing %s", r1.Body, r2.Body)
	}

	// A correction supersedes the field; the original stays in the ledger.
	viewsSubjectRequest(t, h, map[string]any{"kind": "correct", "corrections": map[string]string{"cardholder_name": "Tomasz Corrected", "billing_address": "Hauptstr. 1"}})
	d = viewsDecode[viewsDisclosure](t, disclose("privacy", "pay_d1", "cardholder_request", "DSAR 992"))
	if str(d.Fields["cardholder_name"]) != "Tomasz Corrected" || str(d.Fields["billing_address"]) != "Hauptstr. 1" ||
		str(d.Fields["email"]) != testEmail || !slices.Equal(d.Corrected, []string{"billing_address", "cardholder_name"}) {
		t.Errorf("after correction: %+v", d)
	}

	// A restriction blocks every purpose but legal_obligation.
	viewsSubjectRequest(t, h, map[string]any{"kind": "restrict"})
	for _, tt := range []struct {
		as, purpose string
		status      int
	}{
		{"auditor", "fraud_investigation", 403},
		{"privacy", "cardholder_request", 403},
		{"auditor", "legal_obligation", 200},
	} {
		r := disclose(tt.as, "pay_d1", tt.purpose, "restricted case")
		if r.Status != tt.status || tt.status == 403 && r.errorCode(t) != "subject_restricted" {
			t.Errorf("restricted, %s: %d %s", tt.purpose, r.Status, r.Body)
		}
		if _, a := viewsLastAccess(t, h); a.Status != tt.status || a.Purpose != tt.purpose {
			t.Errorf("restricted, %s: access entry %+v", tt.purpose, a)
		}
	}
	// Other cardholders are not affected.
	if r := disclose("auditor", "pay_g1", "fraud_investigation", "x"); r.Status != 200 {
		t.Errorf("another cardholder after a restriction: %d", r.Status)
	}

	// Erasure: the key is destroyed; disclosure is 410, the financial view
	// stays, with only the card brand.
	viewsSubjectRequest(t, h, map[string]any{"kind": "erase"})
	r = disclose("auditor", "pay_d1", "legal_obligation", "court order")
	if r.Status != 410 || r.errorCode(t) != "subject_erased" {
		t.Errorf("erased: %d %s", r.Status, r.Body)
	}
	if _, a := viewsLastAccess(t, h); a.Status != 410 || a.Result != "failure" {
		t.Errorf("erased: access entry %+v", a)
	}
	r = h.do("auditor", "GET", "/v1/transactions/pay_d1", nil)
	v := viewsDecode[txView](t, r)
	if r.Status != 200 || v.AmountCaptured != 4550 || v.Status != "captured" || v.Card != (cardView{Brand: "mastercard"}) || len(v.Entries) != 2 {
		t.Errorf("view after erasure: %d %s", r.Status, r.Body)
	}
	l := viewsDecode[viewsList](t, h.do("finance", "GET", "/v1/transactions?merchant_id=m_bookshop", nil))
	if len(l.Items) != 1 || l.Items[0].Card != (cardView{Brand: "mastercard"}) {
		t.Errorf("list after erasure: %+v", l)
	}
	h.assertNoCardholderData()
}

func TestCardSearch(t *testing.T) {
	h := newHarness(t)
	viewsPost(h, map[string]any{"transaction_id": "pay_c1"})
	viewsPost(h, map[string]any{"transaction_id": "pay_c2", "merchant_id": "m_garage", "occurred_at": "2026-11-21T00:00:00Z"})
	viewsPost(h, map[string]any{"transaction_id": "pay_c3", "card": viewsCard(viewsOtherPAN)})

	type result struct {
		CardToken string   `json:"card_token"`
		Items     []txView `json:"items"`
	}
	for _, tt := range []struct {
		as, pan string
		want    []string
	}{
		{"auditor", testPAN, []string{"pay_c1", "pay_c2"}},
		{"finance", testPANSpace, []string{"pay_c1", "pay_c2"}},
		{"finance", "5555-5555-5555-4444", []string{"pay_c1", "pay_c2"}},
		{"auditor_m1", testPAN, []string{"pay_c1"}},
		{"finance_m1", viewsOtherPAN, []string{"pay_c3"}},
		{"auditor", viewsUnseenPAN, nil},
	} {
		r := h.do(tt.as, "POST", "/v1/cards/search", map[string]string{"pan": tt.pan})
		if r.Status != 200 {
			t.Errorf("%s: %d %s", tt.as, r.Status, r.Body)
			continue
		}
		viewsAssertMasked(t, r.Body)
		res := viewsDecode[result](t, r)
		var got []string
		for _, it := range res.Items {
			got = append(got, it.TransactionID)
			if it.Card.Token != res.CardToken {
				t.Errorf("item token %q, card_token %q", it.Card.Token, res.CardToken)
			}
		}
		if !slices.Equal(got, tt.want) || !strings.HasPrefix(res.CardToken, "tok_") {
			t.Errorf("%s: %v token %q, want %v", tt.as, got, res.CardToken, tt.want)
		}
		// The access entry names the transactions found, never the card.
		e, a := viewsLastAccess(t, h)
		if a.Action != "cards.search" || a.ActorID != h.ids[tt.as] || a.Status != 200 {
			t.Errorf("access entry %+v", a)
		}
		for _, s := range []string{res.CardToken, testPAN, viewsOtherPAN, viewsUnseenPAN} {
			if strings.Contains(string(e.Bytes()), s) {
				t.Errorf("access entry holds %q: %s", s, e.Bytes())
			}
		}
		for _, id := range tt.want {
			if !strings.Contains(a.Resource, id) {
				t.Errorf("access resource %q lacks %s", a.Resource, id)
			}
		}
	}
	for _, body := range []any{
		map[string]string{"pan": "5555555555554445"}, // Luhn
		map[string]string{"pan": "555555"},
		map[string]string{"pan": "5555x55555554444"},
		map[string]string{"pan": ""},
	} {
		r := h.do("auditor", "POST", "/v1/cards/search", body)
		if r.Status != 400 || r.errorCode(t) != "invalid_pan" || strings.Contains(string(r.Body), "5555") {
			t.Errorf("%v: %d %s", body, r.Status, r.Body)
		}
	}
	if r := h.do("auditor", "POST", "/v1/cards/search", `{"pan":5555555555554444}`); r.Status != 400 || strings.Contains(string(r.Body), "5555") {
		t.Errorf("numeric pan: %d %s", r.Status, r.Body)
	}
	for _, as := range []string{"privacy", "admin"} {
		if r := h.do(as, "POST", "/v1/cards/search", map[string]string{"pan": testPAN}); r.Status != 403 {
			t.Errorf("%s: %d", as, r.Status)
		}
	}
	h.assertNoCardholderData(testPAN, testPANSpace, "5555-5555-5555-4444", viewsOtherPAN, viewsUnseenPAN, "5555555555554445", testName, testEmail)
}

type viewsAccessPage struct {
	Items      []accessView `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

func TestAccessLog(t *testing.T) {
	h := newHarness(t)
	viewsPost(h, map[string]any{"transaction_id": "pay_a1"})
	h.do("auditor_m1", "GET", "/v1/transactions/pay_a1", nil)
	h.do("finance", "GET", "/v1/transactions", nil)
	h.do("auditor_m1", "GET", "/v1/transactions/pay_nope", nil)
	h.do("", "GET", "/v1/transactions", nil)

	read := func(as, query string) (viewsAccessPage, response) {
		t.Helper()
		r := h.do(as, "GET", "/v1/access-log"+query, nil)
		if r.Status != 200 {
			return viewsAccessPage{}, r
		}
		return viewsDecode[viewsAccessPage](t, r), r
	}
	first, r := read("auditor", "")
	if r.Status != 200 || len(first.Items) != 4 || first.NextCursor != "" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	raw := r.json(t)["items"].([]any)[0].(map[string]any)
	for _, k := range []string{"seq", "time", "actor_id", "actor_name", "role", "action", "resource", "purpose", "result", "status", "origin_ip"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("access record lacks %q", k)
		}
	}
	want := []struct {
		actor, action, result string
		status                int
	}{
		{h.ids["auditor_m1"], "transaction.read", "success", 200},
		{h.ids["finance"], "transactions.list", "success", 200},
		{h.ids["auditor_m1"], "transaction.read", "failure", 404},
		{"anonymous", "transactions.list", "failure", 401},
	}
	for i, w := range want {
		it := first.Items[i]
		if it.ActorID != w.actor || it.Action != w.action || it.Result != w.result || it.Status != w.status || it.OriginIP == "" || it.Time.IsZero() {
			t.Errorf("item %d: %+v, want %+v", i, it, w)
		}
	}
	if first.Items[0].ActorName != "auditor_m1" || first.Items[0].Role != "auditor" || first.Items[0].Resource != "transaction/pay_a1" {
		t.Errorf("item 0: %+v", first.Items[0])
	}

	// The read itself is logged and shows up in the next read.
	second, _ := read("admin", "?actor="+h.ids["auditor"])
	if len(second.Items) != 1 || second.Items[0].Action != "access_log.read" || second.Items[0].Status != 200 {
		t.Errorf("the first read is not in the log: %+v", second.Items)
	}
	if _, a := viewsLastAccess(t, h); a.Action != "access_log.read" || a.ActorID != h.ids["admin"] || !strings.Contains(a.Resource, "actor="+h.ids["auditor"]) {
		t.Errorf("access entry of the read: %+v", a)
	}

	// Paging: a stable order, each page a new read of its own.
	var seqs []uint64
	q := "?limit=2"
	for range 20 {
		p, r := read("auditor", q)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		for _, it := range p.Items {
			seqs = append(seqs, it.Seq)
		}
		if p.NextCursor == "" {
			break
		}
		q = "?limit=2&cursor=" + url.QueryEscape(p.NextCursor)
	}
	if len(seqs) < 6 || !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
		t.Errorf("paged seqs %v", seqs)
	}

	// Time filters.
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if p, r := read("auditor", "?from="+future); r.Status != 200 || len(p.Items) != 0 {
		t.Errorf("from the future: %d %s", r.Status, r.Body)
	}
	if p, r := read("auditor", "?to="+future+"&actor=anonymous"); r.Status != 200 || len(p.Items) != 1 {
		t.Errorf("to the future: %d %s", r.Status, r.Body)
	}

	// Scope "*" only; other roles never; bad parameters are 400.
	for _, tt := range []struct {
		as, query string
		status    int
	}{
		{"auditor_m1", "", 403},
		{"finance", "", 403},
		{"privacy", "", 403},
		{"auditor", "?limit=0", 400},
		{"auditor", "?cursor=bogus", 400},
		{"auditor", "?from=now", 400},
	} {
		size := h.node.Ledger.Size()
		_, r := read(tt.as, tt.query)
		if r.Status != tt.status {
			t.Errorf("%s %s: %d %s", tt.as, tt.query, r.Status, r.Body)
		}
		if tt.status == 403 {
			if _, a := viewsLastAccess(t, h); a.Action != "access_log.read" || a.Status != 403 || a.ActorID != h.ids[tt.as] {
				t.Errorf("%s: access entry %+v", tt.as, a)
			}
		} else if h.node.Ledger.Size() != size {
			t.Errorf("%s %s: a bad request was recorded", tt.as, tt.query)
		}
	}
}

// viewsFixedAuth authenticates every request as one principal; it stands
// in for the bearer lookup, which reads the (closed) store itself.
type viewsFixedAuth struct{ p *auth.Principal }

func (a viewsFixedAuth) Authenticate(context.Context, *http.Request) (*auth.Principal, error) {
	return a.p, nil
}

// TestViewsFailClosed checks that no data is sent when the ledger cannot
// record the access: on a read-only ledger (which reads fine but cannot
// append) and on a closed one.
func TestViewsFailClosed(t *testing.T) {
	h := newHarness(t)
	viewsPost(h, map[string]any{"transaction_id": "pay_f1"})
	requests := []struct{ method, path, body string }{
		{"GET", "/v1/transactions", ""},
		{"GET", "/v1/transactions/pay_f1", ""},
		{"POST", "/v1/transactions/pay_f1/disclose", `{"purpose":"fraud_investigation","justification":"x"}`},
		{"POST", "/v1/cards/search", `{"pan":"` + testPAN + `"}`},
		{"GET", "/v1/access-log", ""},
	}
	check := func(name string, do func(method, path, body string) response) {
		t.Helper()
		for _, rq := range requests {
			r := do(rq.method, rq.path, rq.body)
			if r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "unavailable" {
				t.Errorf("%s: %s %s: %d %s", name, rq.method, rq.path, r.Status, r.Body)
			}
			for _, s := range []string{"pay_f1", "items", "mastercard", testName, "555555"} {
				if strings.Contains(string(r.Body), s) {
					t.Errorf("%s: %s %s answered %q", name, rq.method, rq.path, s)
				}
			}
		}
	}

	// Closed: every read must stop before touching the store.
	srv, err := New(Config{Ledger: h.node.Ledger, Keys: h.node.Keys, DataKeys: h.node.DataKeys, KeyStore: h.node.KeyStore,
		Auth: viewsFixedAuth{&auth.Principal{ID: h.ids["auditor"], Name: "auditor", Role: auth.RoleAuditor, Merchants: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	closedHTTP := httptest.NewServer(srv.Handler())
	defer closedHTTP.Close()
	if err := h.node.Ledger.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed", func(method, path, body string) response {
		req, _ := http.NewRequest(method, closedHTTP.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{Status: resp.StatusCode, Body: b}
	})

	// Read-only: the real bearer authentication works, reads work, appends
	// do not.
	h.node.Close()
	ro, err := ledger.Open(context.Background(), ledger.Options{Dir: filepath.Join(h.dir, "ledger"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	keys, err := datadir.OpenKeys(context.Background(), datadir.Config{Dir: h.dir})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(filepath.Join(h.dir, "keys"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	roSrv, err := New(Config{Ledger: ro, Keys: keys.Keys, DataKeys: crypto.NewDataKeys(keys.Keys, ks, 0), KeyStore: ks})
	if err != nil {
		t.Fatal(err)
	}
	h.http.Close()
	h.http = httptest.NewServer(roSrv.Handler())
	if r := h.do("auditor", "GET", "/v1/ledger/checkpoint", nil); r.Status != 200 {
		t.Fatalf("the read-only server does not authenticate: %d %s", r.Status, r.Body)
	}
	check("read-only", func(method, path, body string) response {
		if body == "" {
			return h.do("auditor", method, path, nil)
		}
		return h.do("auditor", method, path, body)
	})
}

// FuzzDecodeCursor checks that decoding never panics and accepts only the
// exact cursors encodeCursor made for the same list and filters.
func FuzzDecodeCursor(f *testing.F) {
	keys := viewsWrongKeys(f)
	valid := encodeCursor(keys, cursorTransactions, "merchant_id=m1", cursorPos{T: 1767225600000000000, ID: "pay_1"})
	f.Add(valid, "merchant_id=m1")
	f.Add(valid, "")
	f.Add(encodeCursor(keys, cursorAccessLog, "", cursorPos{T: 1, Seq: 7}), "")
	f.Add("", "")
	f.Add(".", "")
	f.Add("eyJ0IjoxfQ.", "")
	f.Add(strings.Repeat("A", 2000), "")
	f.Add(valid[:len(valid)-1]+"B", "merchant_id=m1")
	f.Fuzz(func(t *testing.T, cur, filters string) {
		for _, kind := range []string{cursorTransactions, cursorAccessLog} {
			pos, err := decodeCursor(keys, kind, filters, cur)
			if err != nil {
				if err != errInvalidCursor {
					t.Fatalf("error %v", err)
				}
				continue
			}
			if again := encodeCursor(keys, kind, filters, pos); again != cur {
				t.Fatalf("accepted %q, which encodes as %q", cur, again)
			}
		}
	})
}

// BenchmarkListTransactionsPage measures GET /v1/transactions?limit=50 end
// to end over HTTP: the page query, 50 card decryptions and the synced
// access entry.
func BenchmarkListTransactionsPage(b *testing.B) {
	h := newHarness(b)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range 200 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := fmt.Sprintf("bench_%d", i)
			body := genericEvent(b, map[string]any{"id": id, "transaction_id": fmt.Sprintf("pay_b%03d", i),
				"occurred_at": time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339)})
			if r := h.postStandard("msg_"+id, body); r.Status != 200 {
				b.Error(r.Status)
			}
		}()
	}
	wg.Wait()
	for b.Loop() {
		r := h.do("finance", "GET", "/v1/transactions?limit=50", nil)
		if r.Status != 200 {
			b.Fatal(r.Status)
		}
	}
}

// TestTxViewsMatchInOrder pins the concurrent page views to the one-by-one
// reference: the same views in the same order, for transactions with and
// without a card number, with several events each.
func TestTxViewsMatchInOrder(t *testing.T) {
	h := newHarness(t)
	t0 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	for i := range 60 {
		tx := fmt.Sprintf("pay_c%02d", i%23)
		ev := map[string]any{"transaction_id": tx, "occurred_at": t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)}
		switch i % 3 {
		case 0:
			ev["card"] = viewsCard(testPAN)
		case 1:
			ev["card"] = viewsCard(viewsOtherPAN)
		default:
			ev["type"] = "payment.captured"
		}
		viewsPost(h, ev)
	}
	ctx := context.Background()
	page, err := h.node.Ledger.Transactions(ctx, ledger.TxQuery{AllMerchants: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 23 {
		t.Fatalf("%d transactions, want 23", len(page.Items))
	}
	want, err := h.srv.txViewsInOrder(ctx, page.Items)
	if err != nil {
		t.Fatal(err)
	}
	withCard := 0
	for _, v := range want {
		if v.Card.Last4 != "" {
			withCard++
		}
	}
	if withCard == 0 {
		t.Fatal("no view has a card: the comparison would not cover decryption")
	}
	for range 20 {
		got, err := h.srv.txViews(ctx, page.Items)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("concurrent views differ from the views built in order:\n%+v\n%+v", got, want)
		}
	}
}

// TestCardCopyMatchesEntries: a view's card, opened from the state's copy
// of the card entry's card, is the one the reference reads from the
// entries, for every shape of transaction: a card number (also a later
// one), a Stripe charge's last 4 without a PAN, no card at all, no brand,
// and a cardholder erased since.
func TestCardCopyMatchesEntries(t *testing.T) {
	h := newHarness(t)
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	noBrand := viewsCard(viewsOtherPAN)
	delete(noBrand, "brand")
	for i, ev := range []map[string]any{
		{"transaction_id": "pay_k1", "card": viewsCard(testPAN)},
		{"transaction_id": "pay_k1", "type": "payment.captured"},
		{"transaction_id": "pay_k2", "card": viewsCard(viewsOtherPAN)},
		{"transaction_id": "pay_k2", "type": "payment.captured", "card": viewsCard(testPAN)}, // the card changes
		{"transaction_id": "pay_k3", "type": "payment.captured"},                             // no card
		{"transaction_id": "pay_k4", "card": noBrand},
		{"transaction_id": "pay_k5", "card": viewsCard(testPAN)}, // erased below
	} {
		ev["occurred_at"] = t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		if _, ok := ev["card"]; !ok {
			ev["card"] = nil
		}
		viewsPost(h, ev)
	}
	body, err := os.ReadFile("webhook/testdata/stripe-charge-succeeded.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := h.postStripe(body); r.Status != 200 {
		t.Fatalf("stripe: %d %s", r.Status, r.Body)
	}
	ctx := context.Background()
	check := func(wantCopies int) {
		t.Helper()
		page, err := h.node.Ledger.Transactions(ctx, ledger.TxQuery{AllMerchants: true, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		copies := 0
		for _, st := range page.Items {
			if st.Card != nil {
				copies++
				if st.CardSeq == nil {
					t.Errorf("%s: a card copy without a card entry", st.TransactionID)
				}
			}
			got, err := h.srv.card(ctx, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			ref := *st
			ref.Card = nil
			want, err := h.srv.cardFromEntries(ctx, &ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: card %+v from the copy, %+v from the entries", st.TransactionID, got, want)
			}
		}
		if copies != wantCopies {
			t.Errorf("%d transactions have a card copy, want %d", copies, wantCopies)
		}
	}
	// pay_k1, k2, k4, k5 and the Stripe charge have a card entry.
	check(5)
	viewsSubjectRequest(t, h, map[string]any{"kind": "erase"})
	check(5)
	r := h.do("auditor", "GET", "/v1/transactions?merchant_id=m_bookshop", nil)
	if r.Status != 200 || strings.Contains(string(r.Body), `"4444"`) || !strings.Contains(string(r.Body), `"last4":"1111"`) {
		t.Errorf("list after erasure: want the other card's last 4 and not the erased one's: %d %s", r.Status, r.Body)
	}
	h.assertNoCardholderData()
}
