package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/ledger"
)

// postTo posts body to the standard-scheme source name.
func (h *harness) postTo(source, msgID string, body []byte) response {
	h.t.Helper()
	return h.postToSource(source, msgID, body, "application/json")
}

// A source posts only for its merchants: by default its default merchant
// alone; any other merchant is 403 and stores nothing.
func TestSourceMerchantNotAllowed(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		source, merchant string
		status           int
	}{
		{"shop", "m_bookshop", http.StatusOK},
		{"shop", "m_garage", http.StatusForbidden},
		{"dev", "m_garage", http.StatusOK}, // no default merchant: any
	} {
		size := h.node.Ledger.Size()
		body := genericEvent(t, map[string]any{"transaction_id": "pay_src_" + tc.source + tc.merchant, "merchant_id": tc.merchant})
		r := h.postTo(tc.source, fmt.Sprintf("msg_src_%s_%s", tc.source, tc.merchant), body)
		if r.Status != tc.status {
			t.Fatalf("%s for %s: %d %s", tc.source, tc.merchant, r.Status, r.Body)
		}
		if tc.status == http.StatusForbidden {
			if r.errorCode(t) != "merchant_not_allowed" || h.node.Ledger.Size() != size {
				t.Fatalf("%s for %s: %s, %d entries appended", tc.source, tc.merchant, r.Body, h.node.Ledger.Size()-size)
			}
		}
	}
	// Stripe: an account outside the source's list.
	body := pvStripe(t, "evt_src_1", "payment_intent.succeeded", map[string]any{
		"id": "pi_src_1", "object": "payment_intent", "amount": 100, "amount_received": 100, "currency": "eur"})
	if r := h.postStripe(append(body[:len(body)-1], []byte(`,"account":"acct_stranger"}`)...)); r.Status != http.StatusForbidden || r.errorCode(t) != "merchant_not_allowed" {
		t.Fatalf("stripe for another account: %d %s", r.Status, r.Body)
	}
	h.assertNoCardholderData()
}

// A transaction belongs to the source that first posted it: another
// source's event for it is 409 and a security entry, and the transaction
// is unchanged.
func TestTransactionSourceConflict(t *testing.T) {
	h := newHarness(t)
	first := genericEvent(t, map[string]any{"id": "evt_own_1", "transaction_id": "pay_owned", "type": "payment.authorized"})
	if r := h.postTo("shop", "msg_own_1", first); r.Status != http.StatusOK {
		t.Fatalf("first: %d %s", r.Status, r.Body)
	}
	before, err := h.node.Ledger.Transaction("pay_owned")
	if err != nil {
		t.Fatal(err)
	}
	size := h.node.Ledger.Size()
	other := genericEvent(t, map[string]any{"id": "evt_own_2", "transaction_id": "pay_owned", "type": "payment.chargeback"})
	r := h.postTo("dev", "msg_own_2", other)
	if r.Status != http.StatusConflict || r.errorCode(t) != "transaction_source_conflict" {
		t.Fatalf("other source: %d %s", r.Status, r.Body)
	}
	after, _ := h.node.Ledger.Transaction("pay_owned")
	if len(after.Seqs) != len(before.Seqs) || after.Status != before.Status {
		t.Fatalf("the transaction changed: %+v", after)
	}
	e, err := h.node.Ledger.Entry(size)
	if err != nil || h.node.Ledger.Size() != size+1 {
		t.Fatalf("want one security entry: %v, %d appended", err, h.node.Ledger.Size()-size)
	}
	var body ledger.AdminBody
	if e.Kind != ledger.KindSecurity || e.DecodeBody(&body) != nil || body.Action != "webhook.transaction_source_conflict" || body.ActorID != "webhook:dev" {
		t.Fatalf("security entry %s", e.Bytes())
	}
	// The owner keeps posting; a restart keeps the owner.
	h.restart()
	if r := h.postTo("shop", "msg_own_3", genericEvent(t, map[string]any{"id": "evt_own_3", "transaction_id": "pay_owned"})); r.Status != http.StatusOK {
		t.Fatalf("owner after restart: %d %s", r.Status, r.Body)
	}
	if r := h.postTo("dev", "msg_own_4", genericEvent(t, map[string]any{"id": "evt_own_4", "transaction_id": "pay_owned"})); r.Status != http.StatusConflict {
		t.Fatalf("other source after restart: %d %s", r.Status, r.Body)
	}
}

// A flood of 503s (a closed ledger here; a full disk in practice) is one
// log line per route and interval, not one per request.
func TestUnavailableAnswersLogOnce(t *testing.T) {
	h := newHarness(t)
	if err := h.node.Ledger.Close(); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if r := h.do("auditor", "GET", "/v1/transactions", nil); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("with the ledger closed: %d %s", r.Status, r.Body)
		}
	}
	var loud int
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			loud++
		}
	}
	if loud > 2 {
		t.Fatalf("%d warning and error lines for 50 answers 503, want at most 2:\n%s", loud, h.logs.String())
	}
}
