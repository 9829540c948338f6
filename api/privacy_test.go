package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Tests of the cardholder identity model (docs/privacy-requests.md): every
// event under its own data key, requests acting on exactly the in-scope
// transactions that carry an identifier, in every event type. Helpers are
// prefixed pv.

// pvPrincipal adds a principal and its token to the harness.
func (h *harness) pvPrincipal(name string, role auth.Role, merchants ...string) {
	h.t.Helper()
	pr, tok, err := h.srv.Principals().Create(context.Background(), auth.CLIActor, name, role, merchants)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tokens[name], h.ids[name] = tok, pr.ID
}

// pvDisclose discloses tx as an all-merchant auditor for legal obligation
// (a purpose no restriction blocks) and returns the status and fields.
func (h *harness) pvDisclose(tx string) (int, map[string]any) {
	h.t.Helper()
	r := h.do("auditor", "POST", "/v1/transactions/"+tx+"/disclose", map[string]any{"purpose": "legal_obligation", "justification": "test"})
	if r.Status != http.StatusOK {
		return r.Status, nil
	}
	return r.Status, r.json(h.t)["fields"].(map[string]any)
}

// pvExpectErased checks that exactly the transactions erased answer 410 and
// the others disclose.
func (h *harness) pvExpectErased(erased []string, kept ...string) {
	h.t.Helper()
	for _, tx := range erased {
		if st, _ := h.pvDisclose(tx); st != http.StatusGone {
			h.t.Errorf("%s: disclose %d, want 410 (erased)", tx, st)
		}
	}
	for _, tx := range kept {
		if st, _ := h.pvDisclose(tx); st != http.StatusOK {
			h.t.Errorf("%s: disclose %d, want 200 (not erased)", tx, st)
		}
	}
}

// pvRequest posts a subject request as `as` and returns the answer.
func (h *harness) pvRequest(as string, body map[string]any) response {
	h.t.Helper()
	return h.do(as, "POST", "/v1/subject-requests", body)
}

func (h *harness) pvOK(as string, body map[string]any, transactions int) map[string]any {
	h.t.Helper()
	r := h.pvRequest(as, body)
	if r.Status != http.StatusOK {
		h.t.Fatalf("%s %v: %d %s", as, body["kind"], r.Status, r.Body)
	}
	m := r.json(h.t)
	if m["transactions"] != float64(transactions) {
		h.t.Fatalf("%s %v: transactions = %v, want %d", as, body["kind"], m["transactions"], transactions)
	}
	return m
}

// Two merchants' transactions share an email, and each has a card of the
// same person. An officer scoped to one merchant acts on that merchant's
// transactions only, whichever identifier links them, and the answer
// counts exactly the transactions acted on.
func TestErasureScopedToMerchant(t *testing.T) {
	h := newHarness(t)
	h.pvPrincipal("privacy_m1", auth.RolePrivacy, "m_bookshop")
	h.pvPrincipal("privacy_none", auth.RolePrivacy, "m_nobody")
	other := map[string]any{"number": srOtherPAN}
	h.srIngest("pv_a1", map[string]any{"transaction_id": "pay_a1"})
	h.srIngest("pv_a2", map[string]any{"transaction_id": "pay_a2", "cardholder": map[string]any{"email": "second.address@example.net"}})
	h.srIngest("pv_a3", map[string]any{"transaction_id": "pay_a3", "card": other})
	h.srIngest("pv_a4", map[string]any{"transaction_id": "pay_a4", "card": other, "cardholder": map[string]any{"email": srOtherEmail}})
	h.srIngest("pv_b1", map[string]any{"transaction_id": "pay_b1", "merchant_id": "m_garage", "card": other})
	h.srIngest("pv_b2", map[string]any{"transaction_id": "pay_b2", "merchant_id": "m_garage"})

	erase := map[string]any{"kind": "erase", "pan": testPAN, "email": testEmail, "reference": "PRIV-SCOPE-1"}
	res := h.pvOK("privacy_m1", erase, 3)
	if res["subjects"] != 2.0 {
		t.Fatalf("answer %v", res)
	}
	h.pvExpectErased([]string{"pay_a1", "pay_a2", "pay_a3"}, "pay_a4", "pay_b1", "pay_b2")
	if _, f := h.pvDisclose("pay_b1"); f["email"] != testEmail {
		t.Fatalf("the other merchant's transaction lost its email: %v", f)
	}

	// The same reference: the original answer in the officer's scope; in a
	// scope with none of the cardholder's transactions, 404 like any
	// unknown cardholder, not the original's counts nor a 409.
	if r := h.pvRequest("privacy_m1", erase); r.Status != http.StatusOK || r.json(t)["duplicate"] != true || r.json(t)["transactions"] != 3.0 {
		t.Fatalf("replay in scope: %d %s", r.Status, r.Body)
	}
	for _, body := range []map[string]any{erase, {"kind": "restrict", "pan": testPAN, "reference": "PRIV-SCOPE-1"}} {
		if r := h.pvRequest("privacy_none", body); r.Status != http.StatusNotFound || r.errorCode(t) != "subject_not_found" {
			t.Fatalf("replay out of scope: %d %s", r.Status, r.Body)
		}
	}
	// A reference is private to its scope: the all-merchant officer's
	// request under the same reference is a request of its own, and acts
	// on what is left: the other merchant's two transactions.
	h.pvOK("privacy", map[string]any{"kind": "restrict", "email": testEmail, "reference": "PRIV-SCOPE-1"}, 2)
	// The erased transactions are no longer found under any identifier.
	h.pvOK("privacy", map[string]any{"kind": "unrestrict", "pan": testPAN, "reference": "PRIV-SCOPE-2"}, 1)
	h.srVerify()
}

// A restriction follows the identifier: a later event carrying the
// restricted email together with a card that has transactions (and keys)
// of its own is restricted, in the officer's scope only.
func TestRestrictionCoversLaterEvents(t *testing.T) {
	h := newHarness(t)
	d := &srDiscloser{h: h}
	h.pvPrincipal("privacy_m1", auth.RolePrivacy, "m_bookshop")
	other := map[string]any{"number": srOtherPAN}
	h.srIngest("pv_r1", map[string]any{"transaction_id": "pay_r1", "card": other, "cardholder": map[string]any{"email": srOtherEmail}})
	h.srIngest("pv_r2", map[string]any{"transaction_id": "pay_r2"})
	h.pvOK("privacy_m1", map[string]any{"kind": "restrict", "email": testEmail, "reference": "PRIV-R-1"}, 1)

	// The known card arrives with the restricted email: a new transaction,
	// and a new event of the card's older transaction.
	h.srIngest("pv_r3", map[string]any{"transaction_id": "pay_r3", "card": other})
	d.expect("auditor", "pay_r1", "fraud_investigation", http.StatusOK, "")
	h.srIngest("pv_r1b", map[string]any{"transaction_id": "pay_r1", "card": other, "type": "payment.refunded"})
	// Outside the officer's scope, the email is not restricted.
	h.srIngest("pv_r4", map[string]any{"transaction_id": "pay_r4", "merchant_id": "m_garage", "card": other})
	h.restart()
	for _, tx := range []string{"pay_r1", "pay_r2", "pay_r3"} {
		d.expect("auditor", tx, "fraud_investigation", http.StatusForbidden, "subject_restricted")
		d.expect("privacy", tx, "cardholder_request", http.StatusForbidden, "subject_restricted")
		d.expect("auditor", tx, "legal_obligation", http.StatusOK, "")
	}
	d.expect("auditor", "pay_r4", "fraud_investigation", http.StatusOK, "")
	// A restriction of every merchant is not the scoped officer's to lift;
	// the all-merchant officer lifts both.
	h.pvOK("privacy", map[string]any{"kind": "restrict", "email": testEmail, "reference": "PRIV-R-ALL"}, 4)
	h.pvOK("privacy_m1", map[string]any{"kind": "unrestrict", "email": testEmail, "reference": "PRIV-R-2"}, 3)
	d.expect("auditor", "pay_r1", "fraud_investigation", http.StatusForbidden, "subject_restricted")
	d.expect("auditor", "pay_r4", "fraud_investigation", http.StatusForbidden, "subject_restricted")
	h.pvOK("privacy_m1", map[string]any{"kind": "restrict", "email": testEmail, "reference": "PRIV-R-3"}, 3)
	h.pvOK("privacy", map[string]any{"kind": "unrestrict", "email": testEmail, "reference": "PRIV-R-ALL-2"}, 4)
	for _, tx := range []string{"pay_r1", "pay_r2", "pay_r3"} {
		d.expect("auditor", tx, "fraud_investigation", http.StatusOK, "")
	}
	d.skipIfMissing(t)
}

// pvStripe returns a Stripe event of type typ whose data.object is obj.
func pvStripe(t testing.TB, id, typ string, obj map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "created": 1795000000, "livemode": false,
		"data": map[string]any{"object": obj},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Stripe identifiers live in several event types and never include a card
// number: each must find its transactions, and erasure must shred them.
func TestStripeEventsLinkedByEveryIdentifier(t *testing.T) {
	h := newHarness(t)
	const (
		name     = "Patricia Stripeholder"
		email    = "patricia.stripeholder@example.org"
		receipt  = "pat.receipts@example.org"
		dispute  = "pat.disputes@example.org"
		checkout = "pat.checkout@example.org"
		fp       = "fpPatStripe0001"
	)
	address := map[string]any{"city": "Porto", "country": "PT", "line1": "Rua das Flores 9", "line2": nil, "postal_code": "4050-265", "state": nil}
	for _, ev := range [][]byte{
		pvStripe(t, "evt_pv_cus", "customer.created", map[string]any{
			"id": "cus_Pat", "object": "customer", "email": email, "name": name, "phone": "+351900000001", "address": address,
		}),
		pvStripe(t, "evt_pv_pi", "payment_intent.succeeded", map[string]any{
			"id": "pi_Pat1", "object": "payment_intent", "amount": 2599, "amount_received": 2599, "currency": "eur",
			"customer": "cus_Pat", "receipt_email": receipt, "latest_charge": "ch_Pat1",
		}),
		pvStripe(t, "evt_pv_ch", "charge.succeeded", map[string]any{
			"id": "ch_Pat1", "object": "charge", "payment_intent": "pi_Pat1", "captured": true, "amount": 2599, "amount_captured": 2599,
			"currency": "eur", "customer": "cus_Pat",
			"payment_method_details": map[string]any{"type": "card", "card": map[string]any{
				"brand": "visa", "last4": "4242", "exp_month": 8, "exp_year": 2030, "fingerprint": fp}},
			"billing_details": map[string]any{"email": email, "name": name, "address": address},
		}),
		pvStripe(t, "evt_pv_dp", "charge.dispute.created", map[string]any{
			"id": "dp_Pat2", "object": "dispute", "charge": "ch_Pat2", "payment_intent": "pi_Pat2", "amount": 1000, "currency": "eur",
			"status": "needs_response", "evidence": map[string]any{"customer_email_address": dispute, "customer_name": name},
		}),
		pvStripe(t, "evt_pv_cs", "checkout.session.completed", map[string]any{
			"id": "cs_Pat3", "object": "checkout.session", "payment_intent": "pi_Pat3",
			"customer_details": map[string]any{"email": checkout, "name": name},
		}),
		// No object id at all: the event is a transaction of its own.
		pvStripe(t, "evt_pv_noid", "radar.early_fraud_warning.created", map[string]any{
			"object": "radar.early_fraud_warning", "receipt_email": "pat.noid@example.org",
		}),
		pvStripe(t, "evt_pv_other", "payment_intent.succeeded", map[string]any{
			"id": "pi_Other", "object": "payment_intent", "amount": 500, "amount_received": 500, "currency": "eur",
			"customer": "cus_Other", "receipt_email": "someone.else@example.org",
		}),
	} {
		if r := h.postStripe(ev); r.Status != http.StatusOK {
			t.Fatalf("stripe event: %d %s", r.Status, r.Body)
		}
	}

	// Each identifier finds exactly the transactions whose events carry it.
	for i, tc := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"email": receipt}, 1},      // pi_Pat1 (payment_intent.receipt_email)
		{map[string]any{"email": email}, 2},        // cus_Pat (customer), pi_Pat1 (charge billing_details)
		{map[string]any{"customer": "cus_Pat"}, 2}, // cus_Pat, pi_Pat1 (payment_intent and charge)
		{map[string]any{"email": dispute}, 1},      // pi_Pat2 (dispute evidence)
		{map[string]any{"email": checkout}, 1},     // pi_Pat3 (an event type stored opaque)
		{map[string]any{"card_fingerprint": fp}, 1},
		{map[string]any{"email": "pat.noid@example.org"}, 1}, // evt_pv_noid
		{map[string]any{"customer": "cus_Pat", "email": dispute, "card_fingerprint": fp}, 3},
	} {
		for _, kind := range []string{"restrict", "unrestrict"} {
			body := map[string]any{"kind": kind, "reference": fmt.Sprintf("PRIV-ST-%s-%d", kind, i)}
			for k, v := range tc.body {
				body[k] = v
			}
			h.pvOK("privacy", body, tc.want)
		}
	}

	// Card search finds the Stripe payment by its fingerprint.
	r := h.do("auditor", "POST", "/v1/cards/search", map[string]any{"card_fingerprint": fp})
	if r.Status != http.StatusOK {
		t.Fatalf("search by fingerprint: %d %s", r.Status, r.Body)
	}
	var found struct {
		Items []txView `json:"items"`
	}
	if err := json.Unmarshal(r.Body, &found); err != nil || len(found.Items) != 1 || found.Items[0].TransactionID != "pi_Pat1" {
		t.Fatalf("search by fingerprint: %s", r.Body)
	}
	if _, ok := r.json(t)["card_token"]; ok {
		t.Fatalf("a fingerprint search answers a card token: %s", r.Body)
	}

	// Erasure by the customer and the dispute email shreds the customer
	// object, the payment and the dispute, and nothing else.
	h.pvOK("privacy", map[string]any{"kind": "erase", "customer": "cus_Pat", "email": dispute, "reference": "PRIV-ST-ERASE"}, 3)
	h.pvExpectErased([]string{"cus_Pat", "pi_Pat1", "pi_Pat2"}, "pi_Pat3", "pi_Other", "evt_pv_noid")
	h.pvOK("privacy", map[string]any{"kind": "erase", "email": "pat.noid@example.org", "reference": "PRIV-ST-NOID"}, 1)
	h.pvExpectErased([]string{"evt_pv_noid"})
	for _, body := range []map[string]any{{"email": email}, {"email": receipt}, {"customer": "cus_Pat"}, {"card_fingerprint": fp}} {
		body["kind"], body["reference"] = "restrict", fmt.Sprintf("PRIV-ST-AFTER-%v", body)
		if r := h.pvRequest("privacy", body); r.Status != http.StatusNotFound {
			t.Fatalf("after erasure %v: %d %s", body, r.Status, r.Body)
		}
	}
	h.restart()
	h.assertNoCardholderData(name, email, receipt, dispute, checkout, "+351900000001", "Rua das Flores")
	h.srVerify()
}

// An ingest held between sealing its event and appending it, while an
// erasure of its transaction runs and answers, is sealed under a key of
// its own: the erasure, ordered before it, destroys only the keys of the
// events before it, so the late event stays readable and findable.
func TestErasureRacingHeldIngest(t *testing.T) {
	h := newHarness(t)
	_, first := h.srIngest("pv_race_1", map[string]any{"transaction_id": "pay_race"})
	held, release := make(chan struct{}), make(chan struct{})
	hook := func(id string) {
		if id == "pv_race_2" || id == "pv_race_3" {
			held <- struct{}{}
			<-release
		}
	}
	h.srv.beforeAppend.Store(&hook)
	answers := make(chan response, 2)
	var wg sync.WaitGroup
	for _, ev := range []map[string]any{
		{"id": "pv_race_2", "transaction_id": "pay_race"},     // the erased transaction
		{"id": "pv_race_3", "transaction_id": "pay_race_new"}, // a new one of the card
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers <- h.postStandard("msg_"+ev["id"].(string), genericEvent(t, ev))
		}()
		<-held
	}
	h.pvOK("privacy", map[string]any{"kind": "erase", "pan": testPAN, "reference": "PRIV-RACE"}, 1)
	if _, err := h.node.DataKeys.Get(context.Background(), first.DataKey); !errors.Is(err, crypto.ErrDataKeyDestroyed) {
		t.Fatalf("the erased event's key: %v", err)
	}
	close(release)
	wg.Wait()
	close(answers)
	for r := range answers {
		if r.Status != http.StatusOK {
			t.Fatalf("held ingest: %d %s", r.Status, r.Body)
		}
	}
	h.srv.beforeAppend.Store(nil)
	for _, tx := range []string{"pay_race", "pay_race_new"} {
		st, f := h.pvDisclose(tx)
		if st != http.StatusOK || f["email"] != testEmail || f["cardholder_name"] != testName {
			t.Fatalf("%s after the erasure: %d %v", tx, st, f)
		}
	}
	// Both are findable by the card again, and a new erasure takes them.
	h.pvOK("privacy", map[string]any{"kind": "erase", "pan": testPAN, "reference": "PRIV-RACE-2"}, 2)
	h.pvExpectErased([]string{"pay_race", "pay_race_new"})
	h.srVerify()
}

// pvMapStore is a crypto.KeyStore over wrapped keys found offline.
type pvMapStore map[string][]byte

func (m pvMapStore) Wrapped(_ context.Context, id string) ([]byte, bool, error) {
	w, ok := m[id]
	return w, ok, nil
}

// pvScanWrapped reads every file under dir and returns the wrapped keys of
// ever that are in one of them. It fails the test for each of erased found.
func pvScanWrapped(t *testing.T, dir string, ever pvMapStore, erased map[string]bool, when string) pvMapStore {
	t.Helper()
	var files [][]byte
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil // an obsolete file, deleted during the walk
		}
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		files = append(files, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	found := pvMapStore{}
	for id, w := range ever {
		for _, b := range files {
			// The tail of the wrapped bytes: the ciphertext of the key.
			if srContainsFragment(b, w[len(w)-48:]) {
				found[id] = w
				break
			}
		}
		if erased[id] && found[id] != nil {
			t.Errorf("%s: destroyed wrapped key %s is in a file of the data dir", when, id)
		}
	}
	return found
}

// Once an erasure is answered, and after a clean stop, no file of the data dir holds a
// wrapped key the erasure destroyed: every wrapped key the key store ever
// held is looked for in every file, and every one found is unwrapped with
// the master key and tried against the erased entries' ciphertexts.
func TestErasedKeysInNoFileOffline(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	var erasedEntries []*ledger.Entry
	var erasedBodies []ledger.PaymentBody
	for i := range 6 {
		e, p := h.srIngest(fmt.Sprintf("pv_off_%d", i), map[string]any{"transaction_id": fmt.Sprintf("pay_off_%d", i%2)})
		erasedEntries, erasedBodies = append(erasedEntries, e), append(erasedBodies, p)
	}
	for i := range 3 {
		h.srIngest(fmt.Sprintf("pv_keep_%d", i), map[string]any{"transaction_id": fmt.Sprintf("pay_keep_%d", i),
			"card": map[string]any{"number": srOtherPAN}, "cardholder": map[string]any{"email": srOtherEmail}})
	}
	// Restarts flush the key store's memtable into SSTables, so that the
	// keys are in both kinds of file before the erasure.
	h.restart()
	// And one in the key store's WAL and memtable at the erasure.
	e, p := h.srIngest("pv_off_6", map[string]any{"transaction_id": "pay_off_0"})
	erasedEntries, erasedBodies = append(erasedEntries, e), append(erasedBodies, p)
	ever := pvMapStore{}
	if err := h.node.KeyStore.Each(ctx, func(k ledger.WrappedKey) error { ever[k.ID] = k.Wrapped; return nil }); err != nil {
		t.Fatal(err)
	}
	h.pvOK("privacy", map[string]any{"kind": "erase", "pan": testPAN, "reference": "PRIV-OFFLINE"}, 2)
	keys, ledgerID := h.node.Keys, h.node.Ledger.ID()
	erased := map[string]bool{}
	for _, p := range erasedBodies {
		erased[p.DataKey] = true
	}
	// Once answered, while the server runs; then after a clean stop.
	pvScanWrapped(t, h.dir, ever, erased, "once answered")
	h.stop()
	found := pvScanWrapped(t, h.dir, ever, erased, "after a clean stop")
	if len(found) == 0 {
		t.Fatal("no wrapped key found in any file: the scan sees nothing")
	}
	dks := crypto.NewDataKeys(keys, found, 0)
	opened := 0
	for id := range found {
		dk, err := dks.Get(ctx, id)
		if err != nil {
			t.Fatalf("a wrapped key found offline does not unwrap: %v", err)
		}
		for i, e := range erasedEntries {
			for f, ct := range erasedBodies[i].Sealed {
				if _, err := dk.Open(crypto.AD{Ledger: ledgerID, Entry: e.ID, Field: f}, ct); err == nil {
					opened++
				}
			}
		}
	}
	if opened != 0 {
		t.Fatalf("%d erased fields decrypt with keys found offline", opened)
	}
}

// BenchmarkCardholder10k measures disclosure and requests on a cardholder
// with 10,000 transactions (one event each, one merchant), through HTTP:
//
//	go test ./api -run '^$' -bench Cardholder10k -benchtime 3x
func BenchmarkCardholder10k(b *testing.B) {
	const n = 10_000
	setup := func(b *testing.B) *harness {
		b.Helper()
		h := newHarness(b)
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 16 {
					id := fmt.Sprintf("pv_bench_%d", i)
					r := h.postStandard("msg_"+id, genericEvent(b, map[string]any{"id": id, "transaction_id": fmt.Sprintf("pay_bench_%05d", i)}))
					if r.Status != http.StatusOK {
						b.Errorf("ingest: %d %s", r.Status, r.Body)
						return
					}
				}
			}()
		}
		wg.Wait()
		return h
	}
	h := setup(b)
	b.Run("disclose", func(b *testing.B) {
		for range b.N {
			if st, _ := h.pvDisclose("pay_bench_04242"); st != http.StatusOK {
				b.Fatal(st)
			}
		}
	})
	b.Run("restrict", func(b *testing.B) {
		for i := range b.N {
			kind := []string{"restrict", "unrestrict"}[i%2]
			h.pvOK("privacy", map[string]any{"kind": kind, "email": testEmail, "reference": fmt.Sprintf("bench-%d", i)}, n)
		}
	})
	b.Run("disclose-restricted", func(b *testing.B) {
		h.pvOK("privacy", map[string]any{"kind": "restrict", "pan": testPAN, "reference": "bench-restricted"}, n)
		for range b.N {
			r := h.do("auditor", "POST", "/v1/transactions/pay_bench_04242/disclose", map[string]any{"purpose": "fraud_investigation", "justification": "x"})
			if r.Status != http.StatusForbidden {
				b.Fatal(r.Status)
			}
		}
	})
	b.Run("erase", func(b *testing.B) {
		for i := range b.N {
			if i > 0 {
				b.StopTimer()
				h = setup(b)
				b.StartTimer()
			}
			h.pvOK("privacy", map[string]any{"kind": "erase", "pan": testPAN, "reference": fmt.Sprintf("bench-erase-%d", i)}, n)
		}
	})
}

// A token or blind-index key rotation does not end a restriction: events
// after it are indexed under every enabled key, the restricted old one too.
func TestRestrictionSurvivesKeyRotation(t *testing.T) {
	h := newHarness(t)
	d := &srDiscloser{h: h}
	h.srIngest("pv_rot_1", map[string]any{"transaction_id": "pay_rot_1"})
	h.pvOK("privacy", map[string]any{"kind": "restrict", "pan": testPAN, "email": testEmail, "reference": "PRIV-ROT"}, 1)
	for _, ks := range []string{crypto.KeysetToken, crypto.KeysetBlind} {
		if err := h.node.Keys.Rotate(context.Background(), ks); err != nil {
			t.Fatal(err)
		}
	}
	h.srIngest("pv_rot_2", map[string]any{"transaction_id": "pay_rot_2"})
	h.srIngest("pv_rot_3", map[string]any{"transaction_id": "pay_rot_3", "card": map[string]any{"number": srOtherPAN}})
	for _, tx := range []string{"pay_rot_1", "pay_rot_2", "pay_rot_3"} {
		d.expect("auditor", tx, "fraud_investigation", http.StatusForbidden, "subject_restricted")
	}
	// And the erasure after the rotation finds all three; two identifiers,
	// each under two keys, count as two.
	if res := h.pvOK("privacy", map[string]any{"kind": "erase", "pan": testPAN, "email": testEmail, "reference": "PRIV-ROT-E"}, 3); res["subjects"] != 2.0 {
		t.Fatalf("subjects = %v, want 2", res["subjects"])
	}
	d.skipIfMissing(t)
}
