package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/ledger"
)

func TestIngestAnswer(t *testing.T) {
	for _, seq := range []uint64{0, 1, 4096, math.MaxUint64} {
		for _, dup := range []bool{false, true} {
			want, err := json.Marshal(gin.H{"seq": seq, "duplicate": dup})
			if err != nil {
				t.Fatal(err)
			}
			if got := ingestAnswer(seq, dup); !bytes.Equal(got, want) {
				t.Errorf("ingestAnswer(%d, %v) = %s, want %s", seq, dup, got, want)
			}
		}
	}
}

func TestIngestGenericDurableIdempotent(t *testing.T) {
	h := newHarness(t)
	body := genericEvent(t, map[string]any{"id": "gen_evt_0001"})
	r := h.postStandard("msg_1", body)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	first := r.json(t)
	if first["duplicate"] != false {
		t.Fatalf("first delivery: %s", r.Body)
	}
	seq := uint64(first["seq"].(float64))

	// A redelivery (same source, event id and body) adds nothing.
	size := h.node.Ledger.Size()
	r = h.postStandard("msg_1", body)
	if r.Status != http.StatusOK || r.json(t)["duplicate"] != true || uint64(r.json(t)["seq"].(float64)) != seq {
		t.Fatalf("redelivery: %d %s", r.Status, r.Body)
	}
	if h.node.Ledger.Size() != size {
		t.Fatalf("a redelivery appended an entry")
	}

	// The same event id with another body: 409, and a security entry.
	other := genericEvent(t, map[string]any{"id": "gen_evt_0001", "amount": 1})
	r = h.postStandard("msg_2", other)
	if r.Status != http.StatusConflict || r.errorCode(t) != "idempotency_conflict" {
		t.Fatalf("conflict: %d %s", r.Status, r.Body)
	}
	last, err := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	if last.Kind != ledger.KindSecurity || !strings.Contains(string(last.Bytes()), "idempotency_conflict") {
		t.Fatalf("no security entry after a conflict: %s", last.Bytes())
	}

	// The stored entry: tokenized, sealed, SAD removed, durable across a restart.
	h.restart()
	e, err := h.node.Ledger.Entry(seq)
	if err != nil {
		t.Fatal(err)
	}
	var p ledger.PaymentBody
	if err := e.DecodeBody(&p); err != nil {
		t.Fatal(err)
	}
	if p.TransactionID != "pay_0001" || p.Amount != 4550 || p.Currency != "USD" || p.Status != "captured" || !p.SADRemoved || p.WebhookID != "msg_1" {
		t.Fatalf("stored body %+v", p)
	}
	for _, f := range []string{"card_token", "bin", "last4", "cardholder_name", "email", "ip", "raw", "exp_month"} {
		if len(p.Sealed[f]) == 0 {
			t.Errorf("field %s not sealed", f)
		}
	}
	if bytes.Contains(e.Bytes(), []byte("555555")) || bytes.Contains(e.Bytes(), []byte("4444")) {
		t.Fatalf("entry holds card digits in clear: %s", e.Bytes())
	}
	h.assertNoCardholderData()
}

func TestIngestConcurrentRedeliveries(t *testing.T) {
	h := newHarness(t)
	body := genericEvent(t, map[string]any{"id": "gen_evt_dup"})
	size := h.node.Ledger.Size()
	var wg sync.WaitGroup
	results := make([]response, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.postStandard(fmt.Sprintf("msg_%d", i), body)
		}()
	}
	wg.Wait()
	originals := 0
	for _, r := range results {
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		if r.json(t)["duplicate"] == false {
			originals++
		}
	}
	if originals != 1 || h.node.Ledger.Size() != size+1 {
		t.Fatalf("%d originals, %d new entries; want exactly one", originals, h.node.Ledger.Size()-size)
	}
}

func TestIngestStripe(t *testing.T) {
	h := newHarness(t)
	for _, f := range []string{"stripe-charge-succeeded.json", "stripe-charge-refunded.json"} {
		body, err := os.ReadFile("webhook/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		r := h.postStripe(body)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", f, r.Status, r.Body)
		}
	}
	s, err := h.node.Ledger.Transaction("pi_3QaSampleIntent01")
	if err != nil {
		t.Fatal(err)
	}
	if s.Captured != 2599 || s.Refunded != 1000 || s.Currency != "EUR" || s.MerchantID != "acct_1SampleMerchant" {
		t.Fatalf("state %+v", s)
	}
	if alt, err := h.node.Ledger.Transaction("ch_3QaSampleCharge01"); err != nil || alt.TransactionID != "pi_3QaSampleIntent01" {
		t.Fatalf("charge id does not find the transaction: %v %v", alt, err)
	}
	h.assertNoCardholderData("marta.sample@example.com", "Marta Sample", "Rua Augusta")
}

func TestIngestRejections(t *testing.T) {
	h := newHarness(t)
	good := genericEvent(t, nil)
	for _, tc := range []struct {
		name   string
		do     func() response
		status int
		code   string
	}{
		{"unknown source", func() response { return h.do("", "POST", "/v1/webhooks/nope", good) }, 404, "unknown_source"},
		{"no signature", func() response { return h.do("", "POST", "/v1/webhooks/dev", good) }, 401, "invalid_signature"},
		{"bad signature", func() response {
			return h.do("", "POST", "/v1/webhooks/dev", good, "webhook-id", "m", "webhook-timestamp", "1", "webhook-signature", "v1,AAAA")
		}, 401, "invalid_signature"},
		{"stripe bad signature", func() response {
			return h.do("", "POST", "/v1/webhooks/stripe", good, "Stripe-Signature", "t=1,v1=00")
		}, 401, "invalid_signature"},
		{"too large", func() response { return h.postStandard("m_big", bytes.Repeat([]byte(" "), 1<<20+1)) }, 413, "body_too_large"},
		{"missing field", func() response {
			return h.postStandard("m_miss", genericEvent(t, map[string]any{"transaction_id": nil}))
		}, 400, "invalid_field"},
		{"bad PAN", func() response {
			return h.postStandard("m_pan", genericEvent(t, map[string]any{"card": map[string]any{"number": "4111111111111112"}}))
		}, 400, "invalid_field"},
		{"not JSON", func() response { return h.postStandard("m_nj", []byte("hello")) }, 400, "malformed_event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := h.node.Ledger.Size()
			r := tc.do()
			if r.Status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			if h.node.Ledger.Size() != size {
				t.Fatalf("a rejected delivery appended an entry")
			}
			if strings.Contains(string(r.Body), "4111") {
				t.Fatalf("error echoes the card number: %s", r.Body)
			}
		})
	}
	// A wrong content type is 415, after the signature check.
	body := genericEvent(t, nil)
	r := h.postStandardRaw("m_ct", body, "text/plain")
	if r.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d %s", r.Status, r.Body)
	}
	var metrics bytes.Buffer
	mr := h.do("", "GET", "/metrics", nil)
	metrics.Write(mr.Body)
	if !strings.Contains(metrics.String(), `paytrail_webhook_signature_failures_total{source="dev"} 2`) {
		t.Fatalf("signature failures not counted:\n%s", grepLines(metrics.String(), "signature"))
	}
	h.assertNoCardholderData("4111111111111112")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestIngestStripeRetryWithNewPendingCount: Stripe may resend an event with
// another pending_webhooks count; that is a redelivery, not a conflict.
func TestIngestStripeRetryWithNewPendingCount(t *testing.T) {
	h := newHarness(t)
	body, err := os.ReadFile("webhook/testdata/stripe-charge-succeeded.json")
	if err != nil {
		t.Fatal(err)
	}
	r := h.postStripe(body)
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	retry := bytes.Replace(body, []byte(`"pending_webhooks": 1`), []byte(`"pending_webhooks": 2`), 1)
	if bytes.Equal(retry, body) {
		t.Fatal("fixture has no pending_webhooks to change")
	}
	r = h.postStripe(retry)
	if r.Status != http.StatusOK || r.json(t)["duplicate"] != true {
		t.Fatalf("retry with a new pending count: %d %s", r.Status, r.Body)
	}
	changed := bytes.Replace(body, []byte(`"amount": 2599`), []byte(`"amount": 2600`), 1)
	if r = h.postStripe(changed); r.Status != http.StatusConflict {
		t.Fatalf("changed amount: %d %s", r.Status, r.Body)
	}
}

// TestDeniedRequestsDoNotRecordPANs: a caller can put a card number in any
// path; denials record the route, never the number.
func TestDeniedRequestsDoNotRecordPANs(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ as, path string }{
		{"", "/v1/transactions/" + testPAN},
		{"admin", "/v1/transactions/" + testPAN},
		{"auditor", "/v1/entries/" + testPAN},
		{"", "/v1/entries/" + testPAN},
	} {
		if r := h.do(tc.as, "GET", tc.path, nil); r.Status < 400 {
			t.Fatalf("%s as %q: %d", tc.path, tc.as, r.Status)
		}
	}
	h.restart()
	h.assertNoCardholderData(testPAN)
}

// TestIngestRejectsPANsInClearFields: status is stored in clear and never a
// number, so a card number there is refused, never stored. (Identifiers are
// stored as sent; see paymentRecord.)
func TestIngestRejectsPANsInClearFields(t *testing.T) {
	h := newHarness(t)
	for i, f := range []string{"status"} {
		size := h.node.Ledger.Size()
		r := h.postStandard(fmt.Sprintf("m_pan_%d", i), genericEvent(t, map[string]any{f: "4111111111111111"}))
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), f) {
			t.Errorf("%s holding a PAN: %d %s", f, r.Status, r.Body)
		}
		if h.node.Ledger.Size() != size {
			t.Errorf("%s holding a PAN: an entry was appended", f)
		}
	}
	// Query values reach access entries: they are redacted there.
	for _, q := range []string{"/v1/transactions?status=4111111111111111", "/v1/transactions?merchant_id=4111111111111111", "/v1/access-log?actor=4111111111111111"} {
		h.do("auditor", "GET", q, nil)
	}
	h.restart()
	h.assertNoCardholderData("4111111111111111")
}

// TestIngestTransactionOfAnotherMerchant: a transaction id is one merchant's;
// another merchant's event with the same id is refused and recorded, never
// merged into the first merchant's transaction.
func TestIngestTransactionOfAnotherMerchant(t *testing.T) {
	h := newHarness(t)
	if r := h.postStandard("m_a", genericEvent(t, map[string]any{"transaction_id": "order-1"})); r.Status != http.StatusOK {
		t.Fatalf("first: %d %s", r.Status, r.Body)
	}
	r := h.postStandard("m_b", genericEvent(t, map[string]any{"transaction_id": "order-1", "merchant_id": "m_other", "amount": 99999}))
	if r.Status != http.StatusConflict || r.errorCode(t) != "transaction_merchant_conflict" {
		t.Fatalf("second merchant: %d %s", r.Status, r.Body)
	}
	s, err := h.node.Ledger.Transaction("order-1")
	if err != nil || s.MerchantID != "m_bookshop" || s.Captured != 4550 || len(s.Seqs) != 1 {
		t.Fatalf("state %+v, %v: the other merchant's event leaked in", s, err)
	}
	last, _ := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if last.Kind != ledger.KindSecurity || !strings.Contains(string(last.Bytes()), "transaction_merchant_conflict") {
		t.Fatalf("no security entry: %s", last.Bytes())
	}
}

// TestPrincipalListIsRecorded: an admin reading the principals is an access
// entry like any other read.
func TestPrincipalListIsRecorded(t *testing.T) {
	h := newHarness(t)
	if r := h.do("admin", "GET", "/v1/principals", nil); r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	e, err := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	var a ledger.AccessBody
	if err := e.DecodeBody(&a); err != nil || e.Kind != ledger.KindAccess || a.Action != "principal.list" || a.ActorID != h.ids["admin"] || a.Result != "success" {
		t.Fatalf("last entry %s", e.Bytes())
	}
}

// The raw payload is sealed packed, and opens and unpacks to the
// normalizer's Raw, for both schemes.
func TestIngestSealsPackedRaw(t *testing.T) {
	h := newHarness(t)
	codec, err := webhook.NewRawCodec()
	if err != nil {
		t.Fatal(err)
	}
	stripe, err := os.ReadFile("webhook/testdata/stripe-charge-succeeded.json")
	if err != nil {
		t.Fatal(err)
	}
	generic := genericEvent(t, map[string]any{"id": "gen_evt_raw"})
	for _, c := range []struct {
		post func() response
		norm func() (*webhook.Event, error)
	}{
		{func() response { return h.postStandard("msg_raw", generic) }, func() (*webhook.Event, error) { return webhook.NormalizeGeneric(generic, "") }},
		{func() response { return h.postStripe(stripe) }, func() (*webhook.Event, error) { return webhook.NormalizeStripe(stripe, "acct_default") }},
	} {
		r := c.post()
		if r.Status != http.StatusOK {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		ev, err := c.norm()
		if err != nil {
			t.Fatal(err)
		}
		e, err := h.node.Ledger.Entry(uint64(r.json(t)["seq"].(float64)))
		if err != nil {
			t.Fatal(err)
		}
		var p ledger.PaymentBody
		if err := e.DecodeBody(&p); err != nil {
			t.Fatal(err)
		}
		packed := h.srOpen(e, p, "raw")
		if len(packed) >= len(ev.Raw)*3/4 {
			t.Errorf("sealed raw payload of %d bytes for a Raw of %d: not packed", len(packed), len(ev.Raw))
		}
		raw, err := codec.Unpack([]byte(packed), len(ev.Raw))
		if err != nil || !bytes.Equal(raw, ev.Raw) {
			t.Errorf("unpacked raw payload: %v\n got %s\nwant %s", err, raw, ev.Raw)
		}
	}
	h.assertNoCardholderData()
}
