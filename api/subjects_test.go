package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Helpers of the subject request tests, prefixed sr.

// srRequest posts a subject request as the privacy officer.
func (h *harness) srRequest(body map[string]any) response {
	h.t.Helper()
	return h.do("privacy", "POST", "/v1/subject-requests", body)
}

// srOK posts a subject request and fails unless it answers 200.
func (h *harness) srOK(body map[string]any) map[string]any {
	h.t.Helper()
	r := h.srRequest(body)
	if r.Status != http.StatusOK {
		h.t.Fatalf("subject request %v: %d %s", body["kind"], r.Status, r.Body)
	}
	return r.json(h.t)
}

// srIngest posts one generic event and returns its payment entry.
func (h *harness) srIngest(eventID string, overrides map[string]any) (*ledger.Entry, ledger.PaymentBody) {
	h.t.Helper()
	o := map[string]any{"id": eventID}
	for k, v := range overrides {
		o[k] = v
	}
	r := h.postStandard("msg_"+eventID, genericEvent(h.t, o))
	if r.Status != http.StatusOK {
		h.t.Fatalf("ingest %s: %d %s", eventID, r.Status, r.Body)
	}
	e, err := h.node.Ledger.Entry(uint64(r.json(h.t)["seq"].(float64)))
	if err != nil {
		h.t.Fatal(err)
	}
	var p ledger.PaymentBody
	if err := e.DecodeBody(&p); err != nil {
		h.t.Fatal(err)
	}
	if p.DataKey == "" {
		h.t.Fatalf("event %s has no data key", eventID)
	}
	return e, p
}

// srOpen decrypts a sealed field of a payment entry with its live data key.
func (h *harness) srOpen(e *ledger.Entry, p ledger.PaymentBody, field string) string {
	h.t.Helper()
	dk, err := h.node.DataKeys.Get(context.Background(), p.DataKey)
	if err != nil {
		h.t.Fatal(err)
	}
	v, err := dk.Open(crypto.AD{Ledger: h.node.Ledger.ID(), Entry: e.ID, Field: field}, p.Sealed[field])
	if err != nil {
		h.t.Fatal(err)
	}
	return string(v)
}

// srLastEntry returns the last entry and its access body (zero unless an
// access entry).
func (h *harness) srLastEntry() (*ledger.Entry, ledger.AccessBody) {
	h.t.Helper()
	e, err := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err != nil {
		h.t.Fatal(err)
	}
	var a ledger.AccessBody
	if e.Kind == ledger.KindAccess {
		if err := e.DecodeBody(&a); err != nil {
			h.t.Fatal(err)
		}
	}
	return e, a
}

// srVerify runs the full ledger verification.
func (h *harness) srVerify() {
	h.t.Helper()
	vs, _, err := h.node.Verifiers()
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.node.Ledger.Verify(context.Background(), vs, nil); err != nil {
		h.t.Fatalf("verify: %v", err)
	}
}

// srDiscloser makes disclosure requests. While the disclose handler is a
// stub (501) it records that and the test skips at its end, after every
// other assertion has run.
type srDiscloser struct {
	h       *harness
	missing bool
}

func (d *srDiscloser) disclose(as, txID, purpose string) (response, bool) {
	d.h.t.Helper()
	r := d.h.do(as, "POST", "/v1/transactions/"+txID+"/disclose", map[string]any{"purpose": purpose, "justification": "ticket PRIV-1"})
	if r.Status == http.StatusNotImplemented {
		d.missing = true
		return r, false
	}
	return r, true
}

// expect asserts a disclosure's status and error code ("" for 200).
func (d *srDiscloser) expect(as, txID, purpose string, status int, code string) map[string]any {
	d.h.t.Helper()
	r, ok := d.disclose(as, txID, purpose)
	if !ok {
		return nil
	}
	if r.Status != status {
		d.h.t.Fatalf("disclose %s as %s for %s: %d %s, want %d", txID, as, purpose, r.Status, r.Body, status)
	}
	if code != "" && r.errorCode(d.h.t) != code {
		d.h.t.Fatalf("disclose %s: code %s, want %s", txID, r.errorCode(d.h.t), code)
	}
	if status == http.StatusOK {
		return r.json(d.h.t)
	}
	return nil
}

func (d *srDiscloser) skipIfMissing(t *testing.T) {
	if d.missing {
		t.Skip("POST /v1/transactions/{id}/disclose still answers 501: disclosure assertions skipped (everything else ran)")
	}
}

// srTail is the random part of a card token or blind index: SSTable
// blocks are compressed and prefix-encoded, so a raw scan looks for this.
func srTail(id string) string {
	return id[len(id)-43:] // base64url of a 32-byte PRF output
}

// srContainsFragment reports whether b holds any 16-byte piece of v.
// SSTable blocks are compressed: a random value's bytes survive, but may be
// split where the compressor found a repeat.
func srContainsFragment(b, v []byte) bool {
	const n = 16
	if len(v) < n {
		return bytes.Contains(b, v)
	}
	for i := 0; i+n <= len(v); i++ {
		if bytes.Contains(b, v[i:i+n]) {
			return true
		}
	}
	return false
}

const (
	srOtherPAN   = "4242424242424242"
	srOtherEmail = "other.person.sr@example.org"
)

func TestSubjectRequestCorrect(t *testing.T) {
	h := newHarness(t)
	d := &srDiscloser{h: h}
	e1, p1 := h.srIngest("sr_c1", map[string]any{"transaction_id": "pay_c1"})

	res := h.srOK(map[string]any{
		"kind": "correct", "pan": testPANSpace, "reference": "PRIV-100",
		"corrections": map[string]any{"cardholder_name": " Tomasz Corrected ", "billing_country": "de", "exp_month": "07"},
	})
	if res["kind"] != "correct" || res["reference"] != "PRIV-100" || res["subjects"] != 1.0 || res["transactions"] != 1.0 || res["duplicate"] != false {
		t.Fatalf("answer %v", res)
	}
	seq := uint64(res["seq"].(float64))

	// The entry: who, what, how many; the new values sealed under the
	// transaction's key, bound to this entry and transaction; nothing in
	// clear.
	e, err := h.node.Ledger.Entry(seq)
	if err != nil {
		t.Fatal(err)
	}
	var body ledger.SubjectRequestBody
	if err := e.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if e.Kind != ledger.KindSubjectRequest || body.ActorID != h.ids["privacy"] || body.Kind != "correct" ||
		body.Reference != "PRIV-100" || body.Transactions != 1 || len(body.Corrections) != 1 ||
		body.Corrections[0].TransactionID != "pay_c1" || body.Corrections[0].DataKey != p1.DataKey {
		t.Fatalf("entry %s", e.Bytes())
	}
	dk, err := h.node.DataKeys.Get(context.Background(), p1.DataKey)
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"cardholder_name": "Tomasz Corrected", "billing_country": "DE", "exp_month": "7"} {
		got, err := dk.Open(crypto.AD{Ledger: h.node.Ledger.ID(), Entry: e.ID, Field: correctionField("pay_c1", f)}, body.Corrections[0].Sealed[f])
		if err != nil || string(got) != want {
			t.Errorf("sealed %s = %q, %v; want %q", f, got, err, want)
		}
	}
	if bytes.Contains(e.Bytes(), []byte("Corrected")) || bytes.Contains(e.Bytes(), []byte(testPAN)) {
		t.Fatalf("correction entry holds clear data: %s", e.Bytes())
	}
	if got, err := h.node.Ledger.Corrections("pay_c1"); err != nil || !slices.Equal(got, []uint64{seq}) {
		t.Fatalf("Corrections = %v, %v; want [%d]", got, err, seq)
	}
	// The original stays in the ledger, still encrypted and readable.
	if got := h.srOpen(e1, p1, "cardholder_name"); got != testName {
		t.Fatalf("original name = %q", got)
	}
	_, last := h.srLastEntry()
	if last.Action != "subject_request.correct" || last.Result != "success" || last.Purpose != "cardholder_request" ||
		!slices.Equal(last.Merchants, []string{"m_bookshop"}) {
		t.Fatalf("access entry %+v", last)
	}

	// A correction acts on the transactions it found: a later one is
	// corrected by a later request, which lists after the first.
	h.srIngest("sr_c2", map[string]any{"transaction_id": "pay_c2"})
	res2 := h.srOK(map[string]any{"kind": "correct", "email": testEmail, "reference": "PRIV-101", "corrections": map[string]any{"ip": "2001:db8::1"}})
	if res2["transactions"] != 2.0 {
		t.Fatalf("second correction: %v", res2)
	}
	h.restart()
	if got, _ := h.node.Ledger.Corrections("pay_c1"); !slices.Equal(got, []uint64{seq, uint64(res2["seq"].(float64))}) {
		t.Fatalf("Corrections after restart = %v", got)
	}
	h.srVerify()
	h.assertNoCardholderData(testPAN, testPANSpace, testName, testEmail, "Tomasz Corrected")

	for _, tc := range []struct{ tx, name, corrected string }{
		{"pay_c1", "Tomasz Corrected", "[billing_country cardholder_name exp_month ip]"},
		{"pay_c2", testName, "[ip]"},
	} {
		v := d.expect("privacy", tc.tx, "cardholder_request", http.StatusOK, "")
		if v == nil {
			break
		}
		f := v["fields"].(map[string]any)
		if f["cardholder_name"] != tc.name || f["ip"] != "2001:db8::1" || f["email"] != testEmail {
			t.Fatalf("%s disclosed fields %v", tc.tx, f)
		}
		if got := fmt.Sprint(v["corrected"]); got != tc.corrected {
			t.Fatalf("%s corrected = %s, want %s", tc.tx, got, tc.corrected)
		}
	}
	d.skipIfMissing(t)
}

func TestSubjectRequestRestrict(t *testing.T) {
	h := newHarness(t)
	d := &srDiscloser{h: h}
	h.srIngest("sr_r1", map[string]any{"transaction_id": "pay_r1"})
	h.srIngest("sr_o1", map[string]any{"transaction_id": "pay_o1",
		"card":       map[string]any{"number": srOtherPAN},
		"cardholder": map[string]any{"name": "Other Person", "email": srOtherEmail}})

	// By email, spelled differently from the event.
	res := h.srOK(map[string]any{"kind": "restrict", "email": "  " + strings.ToUpper(testEmail), "reference": "PRIV-200"})
	if res["subjects"] != 1.0 || res["transactions"] != 1.0 {
		t.Fatalf("answer %v", res)
	}
	emailSubj := subjectEmail + h.node.Keys.BlindIndex("email", testEmail)
	if v, ok, err := h.node.Ledger.State(ledger.TableRestricted, ledger.RestrictionKey(emailSubj, "*")); err != nil || !ok || string(v) != "PRIV-200" {
		t.Fatalf("restriction row = %q %v %v", v, ok, err)
	}
	// A later transaction carrying the email is covered, under its own key.
	h.srIngest("sr_r2", map[string]any{"transaction_id": "pay_r2"})
	h.restart()
	for _, tx := range []string{"pay_r1", "pay_r2"} {
		d.expect("privacy", tx, "cardholder_request", http.StatusForbidden, "subject_restricted")
		d.expect("auditor", tx, "fraud_investigation", http.StatusForbidden, "subject_restricted")
		d.expect("auditor", tx, "legal_obligation", http.StatusOK, "")
	}
	d.expect("auditor", "pay_o1", "fraud_investigation", http.StatusOK, "")

	// Unrestricting the card lifts nothing: the email is restricted.
	if res = h.srOK(map[string]any{"kind": "unrestrict", "pan": testPAN, "reference": "PRIV-201"}); res["transactions"] != 2.0 {
		t.Fatalf("answer %v", res)
	}
	d.expect("privacy", "pay_r2", "cardholder_request", http.StatusForbidden, "subject_restricted")
	// Unrestricting the email does.
	res = h.srOK(map[string]any{"kind": "unrestrict", "email": testEmail, "reference": "PRIV-202"})
	if res["subjects"] != 1.0 || res["transactions"] != 2.0 {
		t.Fatalf("answer %v", res)
	}
	h.restart()
	if r, _ := h.node.Ledger.Restricted([]string{emailSubj}, "m_bookshop"); r {
		t.Fatal("restricted again after restart")
	}
	d.expect("privacy", "pay_r2", "cardholder_request", http.StatusOK, "")
	h.srVerify()
	d.skipIfMissing(t)
}

func TestSubjectRequestIdempotent(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	d := &srDiscloser{h: h}
	_, p := h.srIngest("sr_i1", nil)

	first := h.srOK(map[string]any{"kind": "restrict", "pan": testPAN, "reference": "PRIV-400"})
	size := h.node.Ledger.Size()
	again := h.srOK(map[string]any{"kind": "restrict", "pan": testPANSpace, "reference": "PRIV-400"})
	if again["duplicate"] != true || again["seq"] != first["seq"] || again["subjects"] != first["subjects"] || again["transactions"] != first["transactions"] {
		t.Fatalf("repeat: %v, first %v", again, first)
	}
	if last, a := h.srLastEntry(); h.node.Ledger.Size() != size+1 || last.Kind != ledger.KindAccess || a.Result != "success" {
		t.Fatalf("a repeated request appended %d entries, last %s", h.node.Ledger.Size()-size, last.Bytes())
	}

	// The same reference for another request: 409, recorded as denied.
	for _, other := range []map[string]any{
		{"kind": "unrestrict", "pan": testPAN, "reference": "PRIV-400"},
		{"kind": "restrict", "email": testEmail, "reference": "PRIV-400"},
	} {
		size = h.node.Ledger.Size()
		r := h.srRequest(other)
		if r.Status != http.StatusConflict || r.errorCode(t) != "idempotency_conflict" {
			t.Fatalf("reused reference: %d %s", r.Status, r.Body)
		}
		if last, a := h.srLastEntry(); h.node.Ledger.Size() != size+1 || a.Result != "failure" || a.Status != http.StatusConflict {
			t.Fatalf("conflict appended %d entries, last %s", h.node.Ledger.Size()-size, last.Bytes())
		}
	}
	d.expect("auditor", "pay_0001", "fraud_investigation", http.StatusForbidden, "subject_restricted")

	// An erasure interrupted after its entry (a crash before the keys were
	// destroyed) is completed when the server starts again.
	canon := (&subjectRequest{Kind: "erase", PAN: testPAN}).canonical()
	body := subjectRequestEntry{
		SubjectRequestBody: ledger.SubjectRequestBody{ActorID: h.ids["privacy"], Kind: "erase", Reference: "PRIV-401", Scope: []string{"*"}, Transactions: 1},
		Subjects:           1,
	}
	res, err := h.node.Ledger.Append(ctx, ledger.Record{
		Kind: ledger.KindSubjectRequest, ID: ledger.NewRecordID(), Time: h.srv.now(), Policy: PolicyVersion, Body: body,
		Unique: &ledger.Unique{Key: requestUniqueKey([]string{"*"}, "PRIV-401"), Digest: h.node.Keys.Digest(digestLabelSubjectRequests, canon)},
		Erase:  &ledger.Erasure{Transactions: []string{"pay_0001"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Shred == nil || !slices.Equal(res.Shred.DataKeys, []string{p.DataKey}) {
		t.Fatalf("shred %+v, want the key %s", res.Shred, p.DataKey)
	}
	if _, err := h.node.DataKeys.Get(ctx, p.DataKey); err != nil {
		t.Fatalf("key destroyed before the simulated crash: %v", err)
	}
	h.restart()
	if _, err := h.node.DataKeys.Get(ctx, p.DataKey); !errors.Is(err, crypto.ErrDataKeyDestroyed) {
		t.Fatalf("interrupted erasure not completed at start: %v", err)
	}
	if pending, err := h.node.Ledger.PendingShreds(); err != nil || len(pending) != 0 {
		t.Fatalf("pending erasures after start: %v %v", pending, err)
	}
	r := h.srRequest(map[string]any{"kind": "erase", "pan": testPAN, "reference": "PRIV-401"})
	if r.Status != http.StatusOK || r.json(t)["duplicate"] != true || r.json(t)["seq"] != float64(res.Seq) || r.json(t)["subjects"] != 1.0 {
		t.Fatalf("repeated interrupted erase: %d %s", r.Status, r.Body)
	}
	card, _ := h.node.Keys.Tokenize(testPAN)
	for _, subj := range []string{subjectCard + card.Token, subjectEmail + h.node.Keys.BlindIndex("email", testEmail)} {
		if ts, _ := h.node.Ledger.SubjectTransactions(subj); len(ts) != 0 {
			t.Fatalf("rows left after completing the erasure: %v", ts)
		}
	}
	// Once erased, the card is unknown to new requests, but the erasure's
	// reference still answers.
	if r := h.srRequest(map[string]any{"kind": "erase", "pan": testPAN, "reference": "PRIV-402"}); r.Status != http.StatusNotFound {
		t.Fatalf("erase of an erased subject: %d %s", r.Status, r.Body)
	}
	if r := h.srRequest(map[string]any{"kind": "erase", "pan": testPAN, "reference": "PRIV-401"}); r.Status != http.StatusOK || r.json(t)["duplicate"] != true {
		t.Fatalf("erase repeated again: %d %s", r.Status, r.Body)
	}
	h.srVerify()
	d.skipIfMissing(t)
}

func TestSubjectRequestUnknownSubject(t *testing.T) {
	h := newHarness(t)
	h.srIngest("sr_u1", map[string]any{"card": map[string]any{"number": srOtherPAN}, "cardholder": map[string]any{"email": srOtherEmail}})
	for _, req := range []map[string]any{
		{"kind": "erase", "pan": testPAN, "reference": "PRIV-500"},
		{"kind": "restrict", "email": testEmail, "reference": "PRIV-501"},
		{"kind": "correct", "pan": testPAN, "reference": "PRIV-502", "corrections": map[string]any{"ip": "192.0.2.1"}},
		{"kind": "erase", "card_fingerprint": "fp_unknown", "reference": "PRIV-503"},
		{"kind": "erase", "customer": "cus_unknown", "reference": "PRIV-504"},
	} {
		size := h.node.Ledger.Size()
		r := h.srRequest(req)
		if r.Status != http.StatusNotFound || r.errorCode(t) != "subject_not_found" {
			t.Fatalf("%v: %d %s", req["kind"], r.Status, r.Body)
		}
		last, a := h.srLastEntry()
		if h.node.Ledger.Size() != size+1 || last.Kind != ledger.KindAccess || a.Result != "failure" || a.Status != http.StatusNotFound ||
			a.ActorID != h.ids["privacy"] || a.Action != "subject_request."+req["kind"].(string) {
			t.Fatalf("%v: %d entries appended, last %s", req["kind"], h.node.Ledger.Size()-size, last.Bytes())
		}
		card, _ := h.node.Keys.Tokenize(testPAN)
		if bytes.Contains(last.Bytes(), []byte(testPAN)) || bytes.Contains(last.Bytes(), []byte(testEmail)) ||
			bytes.Contains(last.Bytes(), []byte(srTail(card.Token))) || bytes.Contains(last.Bytes(), []byte(srTail(h.node.Keys.BlindIndex("email", testEmail)))) {
			t.Fatalf("the denied access names the subject: %s", last.Bytes())
		}
	}
	h.assertNoCardholderData()
}

func TestSubjectRequestRejected(t *testing.T) {
	h := newHarness(t)
	h.srIngest("sr_x1", nil)
	correct := func(c map[string]any) map[string]any {
		return map[string]any{"kind": "correct", "pan": testPAN, "reference": "PRIV-700", "corrections": c}
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		says   string // in the message
	}{
		{"amount", correct(map[string]any{"amount": "1"}), 400, "invalid_correction", "amount cannot be corrected"},
		{"currency", correct(map[string]any{"currency": "EUR"}), 400, "invalid_correction", "currency"},
		{"merchant", correct(map[string]any{"merchant_id": "m_x"}), 400, "invalid_correction", "merchant_id"},
		{"status", correct(map[string]any{"status": "refunded"}), 400, "invalid_correction", "status"},
		{"card token", correct(map[string]any{"card_token": "tok_x"}), 400, "invalid_correction", "card_token"},
		{"last4", correct(map[string]any{"last4": "0000"}), 400, "invalid_correction", "last4"},
		{"PAN as a field name", correct(map[string]any{"4111111111111111": "x"}), 400, "invalid_correction", "a field that cannot"},
		{"PAN in a field name", correct(map[string]any{"pan_4111111111111111": "x"}), 400, "invalid_correction", "a field that cannot"},
		{"one bad among good", correct(map[string]any{"cardholder_name": "A", "amount": "1"}), 400, "invalid_correction", "amount"},
		{"bad month", correct(map[string]any{"exp_month": "13"}), 400, "invalid_correction", "exp_month"},
		{"bad ip", correct(map[string]any{"ip": "4111111111111111"}), 400, "invalid_correction", "ip"},
		{"non-string value", correct(map[string]any{"exp_month": 7}), 400, "invalid_json", ""},
		{"no corrections", correct(map[string]any{}), 400, "invalid_correction", ""},
		{"corrections on restrict", map[string]any{"kind": "restrict", "pan": testPAN, "reference": "r", "corrections": map[string]any{"ip": "192.0.2.1"}}, 400, "invalid_request", "only allowed"},
		{"no identifier", map[string]any{"kind": "erase", "reference": "r"}, 400, "invalid_request", "at least one"},
		{"PAN as a fingerprint", map[string]any{"kind": "erase", "card_fingerprint": "4111 1111 1111 1111", "reference": "r"}, 400, "invalid_request", "card_fingerprint"},
		{"spaces in a customer id", map[string]any{"kind": "erase", "customer": "cus 1", "reference": "r"}, 400, "invalid_request", "customer"},
		{"invalid PAN", map[string]any{"kind": "erase", "pan": "4111111111111112", "reference": "r"}, 400, "invalid_pan", ""},
		{"invalid email", map[string]any{"kind": "erase", "email": "not-an-email", "reference": "r"}, 400, "invalid_email", ""},
		{"unknown kind", map[string]any{"kind": "delete", "pan": testPAN, "reference": "r"}, 400, "invalid_request", "kind"},
		{"no reference", map[string]any{"kind": "erase", "pan": testPAN}, 400, "invalid_request", "reference"},
		{"long reference", map[string]any{"kind": "erase", "pan": testPAN, "reference": strings.Repeat("é", 201)}, 400, "invalid_request", "reference"},
		{"PAN in reference", map[string]any{"kind": "erase", "pan": testPAN, "reference": "case 4111.1111.1111.1111"}, 400, "invalid_request", "reference"},
		{"control in reference", map[string]any{"kind": "erase", "pan": testPAN, "reference": "a\x00b"}, 400, "invalid_request", "reference"},
		{"unknown member", map[string]any{"kind": "erase", "pan": testPAN, "reference": "r", "cvv": "123"}, 400, "invalid_json", ""},
		{"not JSON", "kind=erase", 400, "invalid_json", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := h.node.Ledger.Size()
			r := h.do("privacy", "POST", "/v1/subject-requests", tc.body)
			if r.Status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			if msg := fmt.Sprint(r.json(t)["error"].(map[string]any)["message"]); !strings.Contains(msg, tc.says) {
				t.Fatalf("message %q does not say %q", msg, tc.says)
			}
			if h.node.Ledger.Size() != size {
				t.Fatal("a rejected request appended an entry")
			}
			for _, v := range []string{"4111", "5555", testEmail, "not-an-email"} {
				if strings.Contains(string(r.Body), v) {
					t.Fatalf("the answer echoes %q: %s", v, r.Body)
				}
			}
		})
	}
	// Only the privacy role.
	for _, as := range []string{"auditor", "admin", "finance"} {
		if r := h.do(as, "POST", "/v1/subject-requests", map[string]any{"kind": "erase", "pan": testPAN, "reference": "r"}); r.Status != http.StatusForbidden {
			t.Fatalf("%s: %d %s", as, r.Status, r.Body)
		}
	}
	h.assertNoCardholderData("4111111111111112")
}

func TestNormalizeCorrection(t *testing.T) {
	for _, tc := range []struct {
		field, in string
		want      string // "" for an error
	}{
		{"cardholder_name", "  Ana Example ", "Ana Example"},
		{"cardholder_name", "", ""},
		{"cardholder_name", "a\tb", ""},
		{"cardholder_name", strings.Repeat("x", 201), ""},
		{"email", " Ana@Example.org ", "Ana@Example.org"},
		{"email", "ana@", ""},
		{"email", "ana example@x.org", ""},
		{"billing_country", "pl", "PL"},
		{"billing_country", "POL", ""},
		{"billing_country", "p1", ""},
		{"billing_address", "ul. Example 1\n00-001 Warszawa", "ul. Example 1\n00-001 Warszawa"},
		{"billing_address", "\x07", ""},
		{"ip", "192.0.2.10", "192.0.2.10"},
		{"ip", "2001:DB8:0:0::1", "2001:db8::1"},
		{"ip", "192.0.2.256", ""},
		{"exp_month", "07", "7"},
		{"exp_month", "12", "12"},
		{"exp_month", "0", ""},
		{"exp_month", "July", ""},
		{"exp_year", "2031", "2031"},
		{"exp_year", "31", ""},
		{"exp_year", "02031", ""},
		{"amount", "100", ""},
		{"raw", "{}", ""},
		{"fingerprint", "x", ""},
	} {
		t.Run(tc.field+"/"+tc.in, func(t *testing.T) {
			got, err := normalizeCorrection(tc.field, tc.in)
			if tc.want == "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != "invalid_correction" {
					t.Fatalf("got %q, %v; want an invalid_correction error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSubjectRequestCanonical(t *testing.T) {
	parse := func(in subjectRequestJSON) string {
		t.Helper()
		r, err := parseSubjectRequest(in)
		if err != nil {
			t.Fatal(err)
		}
		return string(r.canonical())
	}
	for _, tc := range []struct {
		name string
		a, b subjectRequestJSON
		same bool
	}{
		{"PAN spelling", subjectRequestJSON{Kind: "erase", PAN: testPAN, Reference: "r1"}, subjectRequestJSON{Kind: "erase", PAN: "5555-5555 5555-4444", Reference: "r2"}, true},
		{"email case", subjectRequestJSON{Kind: "restrict", Email: "A@B.org", Reference: "r"}, subjectRequestJSON{Kind: "restrict", Email: " a@b.ORG", Reference: "r"}, true},
		{"correction spelling", subjectRequestJSON{Kind: "correct", PAN: testPAN, Reference: "r", Corrections: map[string]string{"exp_month": "07", "billing_country": "pl"}},
			subjectRequestJSON{Kind: "correct", PAN: testPAN, Reference: "r", Corrections: map[string]string{"billing_country": "PL", "exp_month": "7"}}, true},
		{"kind", subjectRequestJSON{Kind: "restrict", PAN: testPAN, Reference: "r"}, subjectRequestJSON{Kind: "unrestrict", PAN: testPAN, Reference: "r"}, false},
		{"subject", subjectRequestJSON{Kind: "erase", PAN: testPAN, Reference: "r"}, subjectRequestJSON{Kind: "erase", PAN: srOtherPAN, Reference: "r"}, false},
		{"value", subjectRequestJSON{Kind: "correct", Email: "a@b.org", Reference: "r", Corrections: map[string]string{"ip": "192.0.2.1"}},
			subjectRequestJSON{Kind: "correct", Email: "a@b.org", Reference: "r", Corrections: map[string]string{"ip": "192.0.2.2"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parse(tc.a) == parse(tc.b); got != tc.same {
				t.Fatalf("same canonical form = %v, want %v:\n%s\n%s", got, tc.same, parse(tc.a), parse(tc.b))
			}
		})
	}
}

// FuzzParseSubjectRequest checks that parsing never panics, that errors
// never repeat a card number, email or correction value, and that a parsed
// request is already in normal form.
func FuzzParseSubjectRequest(f *testing.F) {
	for _, s := range []string{
		`{"kind":"erase","pan":"5555 5555 5555 4444","reference":"PRIV-1"}`,
		`{"kind":"restrict","email":"A@example.org","reference":"r"}`,
		`{"kind":"correct","pan":"4242424242424242","reference":"r","corrections":{"exp_month":"07","ip":"2001:DB8::1","billing_country":"pl"}}`,
		`{"kind":"correct","email":"a@b.c","reference":"r","corrections":{"amount":"4242424242424242"}}`,
		`{"kind":"correct","email":"a@b.c","reference":"r","corrections":{"4242424242424242":"x"}}`,
		`{"kind":"unrestrict","pan":"4111111111111112","reference":"r"}`,
		`{"kind":"erase","email":"4242424242424242@","reference":"r"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in subjectRequestJSON
		if json.Unmarshal(data, &in) != nil {
			return
		}
		r, err := parseSubjectRequest(in)
		if err != nil {
			msg := err.Error()
			secrets := []string{in.PAN, in.Email}
			for k, v := range in.Corrections {
				secrets = append(secrets, k, v)
			}
			for _, v := range secrets {
				digits := 0
				for _, c := range v {
					if c >= '0' && c <= '9' {
						digits++
					}
				}
				// Eight digits or an '@': a card number or an email; the
				// error messages hold neither.
				if (digits >= 8 || strings.Contains(v, "@")) && strings.Contains(msg, v) {
					t.Fatalf("error %q repeats %q", msg, v)
				}
			}
			return
		}
		for f, v := range r.Corrections {
			if again, err := normalizeCorrection(f, v); err != nil || again != v {
				t.Fatalf("%s: %q normalizes to %q, %v", f, v, again, err)
			}
		}
		again, err := parseSubjectRequest(subjectRequestJSON{Kind: r.Kind, PAN: r.PAN, Email: r.Email, Reference: in.Reference, Corrections: r.Corrections})
		if err != nil || !bytes.Equal(again.canonical(), r.canonical()) {
			t.Fatalf("normal form is not stable: %v", err)
		}
	})
}

// BenchmarkSubjectRequest measures one request through HTTP: restrict
// (one synced entry plus its access entry) and erase (those plus key
// destruction and the compactions of the key store and the subject rows).
// Each erase iteration first ingests one event for a fresh card, untimed.
func BenchmarkSubjectRequest(b *testing.B) {
	b.Run("kind=restrict", func(b *testing.B) {
		h := newHarness(b)
		h.srIngest("sr_b1", nil)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			kind := "restrict"
			if i%2 == 1 {
				kind = "unrestrict"
			}
			h.srOK(map[string]any{"kind": kind, "pan": testPAN, "reference": fmt.Sprintf("bench-%d", i)})
		}
	})
	b.Run("kind=erase", func(b *testing.B) {
		h := newHarness(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			pan := srLuhnPAN(i)
			h.srIngest(fmt.Sprintf("sr_b_%d", i), map[string]any{"transaction_id": fmt.Sprintf("pay_b_%d", i),
				"card": map[string]any{"number": pan}, "cardholder": map[string]any{"email": fmt.Sprintf("b%d@example.org", i)}})
			b.StartTimer()
			h.srOK(map[string]any{"kind": "erase", "pan": pan, "reference": fmt.Sprintf("bench-erase-%d", i)})
		}
	})
}

// srLuhnPAN returns a distinct valid 16-digit card number for i.
func srLuhnPAN(i int) string {
	base := fmt.Sprintf("400000%09d", i)
	sum := 0
	for j := len(base) - 1; j >= 0; j-- {
		d := int(base[j] - '0')
		if (len(base)-j)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return base + fmt.Sprint((10-sum%10)%10)
}
