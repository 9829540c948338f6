package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestJSONEndpointsRefuseOtherMediaTypes: like webhooks, the JSON
// endpoints answer 415 to a body sent as text/plain or a form, and still
// take application/json (with parameters) or no Content-Type at all.
func TestJSONEndpointsRefuseOtherMediaTypes(t *testing.T) {
	h := newHarness(t)
	if r := h.postStandard("msg_media", genericEvent(t, nil)); r.Status != http.StatusOK {
		t.Fatalf("ingest: %d %s", r.Status, r.Body)
	}
	disclose := map[string]any{"purpose": "fraud_investigation", "justification": "case 7"}
	for _, tc := range []struct {
		as, path string
		body     any
	}{
		{"auditor", "/v1/transactions/pay_0001/disclose", disclose},
		{"auditor", "/v1/cards/search", map[string]any{"pan": testPAN}},
		{"privacy", "/v1/subject-requests", map[string]any{"kind": "restrict", "pan": testPAN, "reference": "media-1"}},
		{"admin", "/v1/principals", map[string]any{"name": "media", "role": "auditor", "merchants": []string{"*"}}},
	} {
		for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "not a media type"} {
			size := h.node.Ledger.Size()
			r := h.do(tc.as, "POST", tc.path, tc.body, "Content-Type", ct)
			if r.Status != http.StatusUnsupportedMediaType || r.errorCode(t) != "unsupported_media_type" {
				t.Errorf("%s as %s: %d %s, want 415 unsupported_media_type", tc.path, ct, r.Status, r.Body)
			}
			if strings.Contains(string(r.Body), testPAN) {
				t.Errorf("%s as %s: the answer echoes the body: %s", tc.path, ct, r.Body)
			}
			if h.node.Ledger.Size() != size {
				t.Errorf("%s as %s: a refused request appended %d entries", tc.path, ct, h.node.Ledger.Size()-size)
			}
		}
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", ""} {
		r := h.do("auditor", "POST", "/v1/transactions/pay_0001/disclose", disclose, "Content-Type", ct)
		if r.Status != http.StatusOK {
			t.Errorf("disclose as %q: %d %s, want 200", ct, r.Status, r.Body)
		}
	}
}

// TestReconciliationRefusesURLEncodedForms: curl -d sends a report as
// application/x-www-form-urlencoded, which mangles it; the upload is 415
// with the hint to send the raw CSV, as docs/reconciliation.md says.
func TestReconciliationRefusesURLEncodedForms(t *testing.T) {
	h := newHarness(t)
	report := "transaction_id,merchant_id,type,amount,currency,settled_at\npay_0001,m_bookshop,charge,45.50,USD,2026-11-21T00:00:00Z\n"
	size := h.node.Ledger.Size()
	for _, ct := range []string{"application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8"} {
		r := h.do("finance", "POST", "/v1/reconciliations?format=generic", report, "Content-Type", ct)
		if r.Status != http.StatusUnsupportedMediaType || r.errorCode(t) != "unsupported_media_type" || !strings.Contains(string(r.Body), "raw request body") {
			t.Errorf("%s: %d %s, want 415 unsupported_media_type with the raw-body hint", ct, r.Status, r.Body)
		}
	}
	if got := h.node.Ledger.Size(); got != size {
		t.Errorf("refused uploads appended %d entries", got-size)
	}
	if r := h.do("finance", "POST", "/v1/reconciliations?format=generic", report, "Content-Type", "text/csv"); r.Status != http.StatusCreated {
		t.Errorf("text/csv: %d %s, want 201", r.Status, r.Body)
	}
}
