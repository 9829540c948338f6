package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Card numbers as people and processors write them, which a detector that
// knows only single spaces and dashes lets through. hardeningIDForms have
// no spaces, so they also fit fields that must be identifiers.
var (
	hardeningIDForms  = []string{"4111.1111.1111.1111", "4111_1111_1111_1111", "4111/1111/1111/1111", "5555.5555.5555.4444"}
	hardeningPANForms = append([]string{
		"4111  1111  1111  1111", "4111\u00a01111\u00a01111\u00a01111", "4111\u20091111\u20091111\u20091111",
		"4111\u30001111\u30001111\u30001111", "4111\t1111\t1111\t1111", "４１１１ １１１１ １１１１ １１１１",
	}, hardeningIDForms...)
)

// TestClearWebhookFieldsRefuseAnyPANForm: status, card.brand and the
// processor's event type are stored in clear, so a card number there is
// refused (400) however it is written, and nothing is stored.
func TestClearWebhookFieldsRefuseAnyPANForm(t *testing.T) {
	h := newHarness(t)
	n := 0
	post := func(field string, body []byte, stripe bool) {
		t.Helper()
		size := h.node.Ledger.Size()
		var r response
		if stripe {
			r = h.postStripe(body)
		} else {
			n++
			r = h.postStandard(fmt.Sprintf("msg_pan_%d", n), body)
		}
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_field" {
			t.Errorf("%s holding a card number: %d %s, want 400 invalid_field", field, r.Status, r.Body)
		}
		if h.node.Ledger.Size() != size {
			t.Errorf("%s holding a card number: an entry was appended", field)
		}
	}
	for _, pan := range hardeningIDForms {
		post("status", genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_pan_s%d", n), "status": pan}), false)
		stripe, err := json.Marshal(map[string]any{
			"id": fmt.Sprintf("evt_pan_t%d", n), "object": "event", "type": "customer." + pan, "created": 1763647391,
			"data": map[string]any{"object": map[string]any{"id": "cus_pan"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		post("type", stripe, true)
	}
	for _, pan := range hardeningPANForms {
		card := map[string]any{"number": testPAN, "exp_month": 11, "exp_year": 2029, "brand": "visa " + pan}
		post("card.brand", genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_pan_b%d", n), "card": card}), false)
	}
	h.restart()
	h.assertNoCardholderData(hardeningPANForms...)
}

// TestAccessEntriesRedactAnyPANForm: what a caller puts in a path, a query
// or a justification is kept in access entries, which outlive any erasure;
// card numbers are redacted there however they are written.
func TestAccessEntriesRedactAnyPANForm(t *testing.T) {
	h := newHarness(t)
	viewsPost(h, map[string]any{"transaction_id": "pay_j1"})
	for i, pan := range hardeningPANForms {
		why := fmt.Sprintf("case %d: customer read out %s on the phone", i, pan)
		r := h.do("auditor", "POST", "/v1/transactions/pay_j1/disclose", map[string]string{"purpose": "fraud_investigation", "justification": why})
		if r.Status != http.StatusOK {
			t.Fatalf("disclose: %d %s", r.Status, r.Body)
		}
	}
	want := len(hardeningPANForms) // access entries that must show a redaction
	for _, pan := range hardeningIDForms {
		if !strings.Contains(pan, "/") { // a slash makes another route
			h.do("auditor", "GET", "/v1/transactions/"+pan, nil)
			h.do("", "GET", "/v1/transactions/"+pan, nil) // denied: 401, recorded too
			want += 2
		}
		h.do("auditor", "GET", "/v1/transactions?status="+url.QueryEscape(pan), nil)
		h.do("admin", "GET", "/v1/access-log?actor="+url.QueryEscape(pan), nil)
		want += 2
	}

	page := h.accessLogPage("auditor", "limit=500")
	redacted := 0
	for _, a := range page.Items {
		for _, v := range []string{a.Resource, a.Justification} {
			if crypto.ContainsPAN(v) {
				t.Errorf("access entry %d (%s) holds a card number: %q", a.Seq, a.Action, v)
			}
			if strings.Contains(v, redactedPAN) {
				redacted++
			}
		}
	}
	if redacted < want {
		t.Errorf("%d redactions in the access log, want at least %d", redacted, want)
	}
	h.restart()
	h.assertNoCardholderData(hardeningPANForms...)
}

// TestPrincipalNamesRefusePANs: a principal's name is kept in clear in
// admin and access entries, so one holding a card number is refused, and
// the answer does not repeat it.
func TestPrincipalNamesRefusePANs(t *testing.T) {
	h := newHarness(t)
	for _, pan := range append([]string{testPAN, testPANSpace}, hardeningPANForms...) {
		size := h.node.Ledger.Size()
		r := h.do("admin", "POST", "/v1/principals", map[string]any{"name": "ops " + pan, "role": "auditor", "merchants": []string{"*"}})
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_principal" {
			t.Errorf("name with %q: %d %s, want 400 invalid_principal", pan, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "1111") || strings.Contains(string(r.Body), "4444") {
			t.Errorf("answer repeats the name: %s", r.Body)
		}
		if h.node.Ledger.Size() != size {
			t.Errorf("name with %q: an entry was appended", pan)
		}
	}
	if r := h.do("admin", "POST", "/v1/principals", map[string]any{"name": "ops team 4 (shift 2)", "role": "auditor", "merchants": []string{"*"}}); r.Status != http.StatusCreated {
		t.Errorf("an ordinary name: %d %s", r.Status, r.Body)
	}
	h.restart()
	h.assertNoCardholderData(append([]string{testPAN, testPANSpace}, hardeningPANForms...)...)
}

// TestErrorAnswersDoNotEchoInput sends a marker in every kind of input to
// every route that validates one, and checks no error answer repeats it:
// an answer that echoes input would echo a card number just as well.
func TestErrorAnswersDoNotEchoInput(t *testing.T) {
	h := newHarness(t)
	const m = "Zq7echo"
	q := url.QueryEscape
	for _, tc := range []struct {
		as, method, path string
		body             any
	}{
		{"admin", "POST", "/v1/principals", map[string]any{"name": "x", "role": m, "merchants": []string{"*"}}},
		{"admin", "POST", "/v1/principals", map[string]any{"name": "x", "role": "auditor", "merchants": []string{m + " x"}}},
		{"admin", "POST", "/v1/principals", map[string]any{"name": m + "\n", "role": "auditor", "merchants": []string{"*"}}},
		{"admin", "POST", "/v1/principals", map[string]any{"name": "x", "role": "auditor", "merchants": []string{"*", m}}},
		{"admin", "POST", "/v1/principals", map[string]any{"name": "x", "role": "auditor", m: 1}},
		{"admin", "DELETE", "/v1/principals/" + m, nil},
		{"admin", "GET", "/v1/access-log?actor=" + q(m+" x"), nil},
		{"admin", "GET", "/v1/access-log?from=" + m, nil},
		{"auditor", "GET", "/v1/access-log?limit=" + m, nil},
		{"auditor", "GET", "/v1/access-log?cursor=" + m, nil},
		{"auditor", "GET", "/v1/transactions?limit=" + m, nil},
		{"auditor", "GET", "/v1/transactions?from=" + m, nil},
		{"auditor", "GET", "/v1/transactions?status=" + q(m+" x"), nil},
		{"auditor", "GET", "/v1/transactions?cursor=" + m, nil},
		{"auditor", "GET", "/v1/transactions/" + m, nil},
		{"auditor", "POST", "/v1/transactions/" + m + "/disclose", map[string]any{"purpose": m, "justification": "x"}},
		{"auditor", "POST", "/v1/cards/search", map[string]any{"pan": m}},
		{"auditor", "GET", "/v1/entries/" + m, nil},
		{"auditor", "GET", "/v1/ledger/proofs/inclusion?seq=" + m + "&tree_size=1", nil},
		{"auditor", "GET", "/v1/ledger/proofs/consistency?from=1&to=" + m, nil},
		{"auditor", "GET", "/v1/ledger/checkpoints/" + m, nil},
		{"finance", "POST", "/v1/reconciliations?format=" + m, "x"},
		{"finance", "GET", "/v1/reconciliations/" + m, nil},
		{"privacy", "POST", "/v1/subject-requests", map[string]any{"kind": m, "pan": testPAN, "reference": "r1"}},
		{"privacy", "POST", "/v1/subject-requests", map[string]any{"kind": "correct", "pan": testPAN, "reference": "r2", "corrections": map[string]string{m: "x"}}},
		{"", "POST", "/v1/webhooks/" + m, map[string]any{"id": m}},
		{"", "POST", "/v1/webhooks/dev", map[string]any{"id": m}},
		{"", "GET", "/" + m, nil},
		{"", m, "/v1/transactions", nil},
		{"Bearer " + m, "GET", "/v1/transactions", nil},
	} {
		r := h.do(tc.as, tc.method, tc.path, tc.body)
		if r.Status < 400 {
			t.Errorf("%s %s: %d, want an error", tc.method, tc.path, r.Status)
		}
		if strings.Contains(strings.ToLower(string(r.Body)), strings.ToLower(m)) {
			t.Errorf("%s %s %v: the answer echoes the input: %d %s", tc.method, tc.path, tc.body, r.Status, r.Body)
		}
	}
}

// TestAccessLogReadKeepsItsSeqList: the record of an access log read lists
// the entries returned; a long list of sequence numbers looks like digit
// groups, yet it is kept whole (it is no caller input), while the caller's
// filters are still redacted.
func TestAccessLogReadKeepsItsSeqList(t *testing.T) {
	h := newHarness(t)
	for range 60 {
		h.do("admin", "GET", "/v1/principals", nil)
	}
	actor := h.ids["admin"]
	page := h.accessLogPage("auditor", "limit=500&actor="+actor)
	seqs := make([]string, len(page.Items))
	for i, a := range page.Items {
		seqs[i] = fmt.Sprint(a.Seq)
	}
	e, err := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	var a ledger.AccessBody
	if err := e.DecodeBody(&a); err != nil || a.Action != "access_log.read" {
		t.Fatalf("last entry %s", e.Bytes())
	}
	want := fmt.Sprintf("GET /v1/access-log?actor=%s returned %d entries: seq %s", actor, len(seqs), strings.Join(seqs, ","))
	if a.Resource != want {
		t.Errorf("resource\n%q, want\n%q", a.Resource, want)
	}

	r := h.do("admin", "GET", "/v1/access-log?actor="+url.QueryEscape("4111.1111.1111.1111"), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("access log: %d %s", r.Status, r.Body)
	}
	e, _ = h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err := e.DecodeBody(&a); err != nil || a.Resource != "GET /v1/access-log?actor=(redacted) returned no entries" {
		t.Errorf("resource %q", a.Resource)
	}
}

// accessLogPage reads one page of the access log as `as`.
func (h *harness) accessLogPage(as, query string) viewsAccessPage {
	h.t.Helper()
	r := h.do(as, "GET", "/v1/access-log?"+query, nil)
	if r.Status != http.StatusOK {
		h.t.Fatalf("access log: %d %s", r.Status, r.Body)
	}
	var page viewsAccessPage
	if err := json.Unmarshal(r.Body, &page); err != nil {
		h.t.Fatal(err)
	}
	return page
}
