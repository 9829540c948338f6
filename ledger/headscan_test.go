package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// headOf returns the canonical head of a payment body: its encoding up to
// the sealed fields, as verify sees it.
func headOf(t testing.TB, p *PaymentBody) []byte {
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(b, sealedMarker); i >= 0 {
		return b[:i]
	}
	return b[:len(b)-1]
}

// The hand scanner must decode canonical heads exactly as encoding/json
// does, and give up (not guess) on anything it does not accept.
func TestScanPaymentHeadMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 0, 0, 123456789, time.UTC)
	for _, p := range []PaymentBody{
		{Source: "dev", EventID: "evt_1", Type: TypeCaptured, ProcessorType: "charge.captured", TransactionID: "pay_1",
			MerchantID: "m1", Amount: 1999, Currency: "EUR", Status: "captured", OccurredAt: at, Brand: "visa",
			SADRemoved: true, DataKey: "dk_1", Sealed: map[string][]byte{"last4": {1}}},
		{Source: "stripe", EventID: "evt_2", WebhookID: "msg_2", Type: TypeRefunded, TransactionID: "pi_2",
			AltIDs: []string{"ch_2", "ch_3"}, MerchantID: "acct_ü", Amount: -5, Currency: "JPY", OccurredAt: at},
		{Source: "s", EventID: "e", Type: TypeOpaque, AltIDs: []string{}, OccurredAt: time.Unix(0, 0).UTC()},
	} {
		head := headOf(t, &p)
		got, ok := scanPaymentHead(head)
		if !ok {
			t.Fatalf("scanPaymentHead refused canonical head %s", head)
		}
		var want PaymentBody
		if err := json.Unmarshal(append(bytes.Clone(head), '}'), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scanPaymentHead(%s)\n got %+v\nwant %+v", head, got, want)
		}
	}
	for _, head := range []string{
		`{"type":"payment.captured","merchant_id":"a\u003cb"`, // escapes: left to encoding/json
		`{"type":"x","amount":1.5`,
		`{"type":"x","amount":01`,
		`{"type":"x","amount":"1"`,
		`{"type":"x","Amount":1`, // encoding/json would match this case-insensitively
		`{"type":"x","sad_removed":"true"`,
		`{"type":"x","alt_ids":null`,
		`{"type":"x","occurred_at":"yesterday"`,
		`{"type":"x" ,"status":"y"`,
		"{\"type\":\"\xff\"",
	} {
		if p, ok := scanPaymentHead([]byte(head)); ok {
			t.Errorf("scanPaymentHead(%s) = %+v, want refused", head, p)
		}
	}
}

func TestScanUnique(t *testing.T) {
	want := Unique{Key: "webhook/dev/evt_1", Digest: []byte("0123456789abcdef\x00\xff")}
	b, _ := json.Marshal(want)
	got, ok := scanUnique(b)
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("scanUnique(%s) = %+v, %v", b, got, ok)
	}
	if _, ok := scanUnique([]byte(`{"key":"k","digest":"!!"}`)); ok {
		t.Fatal("scanUnique accepted bad base64")
	}
}

// FuzzScanPaymentHead: whatever the scanner accepts, encoding/json decodes
// to the same body.
func FuzzScanPaymentHead(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Add(headOf(f, &PaymentBody{Source: "dev", Type: TypeCaptured, TransactionID: "t", AltIDs: []string{"a"}, Amount: 7, OccurredAt: at}))
	f.Add([]byte(`{"amount":-0,"alt_ids":[],"sad_removed":false`))
	f.Fuzz(func(t *testing.T, head []byte) {
		got, ok := scanPaymentHead(head)
		if !ok {
			return
		}
		var want PaymentBody
		if err := json.Unmarshal(append(bytes.Clone(head), '}'), &want); err != nil {
			t.Fatalf("scanner accepted %q, encoding/json: %v", head, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("scanPaymentHead(%q)\n got %+v\nwant %+v", head, got, want)
		}
	})
}

func TestFoldRowRoundTrip(t *testing.T) {
	in := &foldInput{Type: TypeCaptured, Merchant: "m1", Amount: -12345, Currency: "KWD", Status: "captured",
		OccurredAt: time.Date(1960, 1, 1, 0, 0, 0, 999999999, time.UTC), AltIDs: []string{"ch_1", ""}, Card: true}
	checkFoldRow(t, in)
	// A card entry's row ends with its card copy's digest.
	in.CardDigest = cardDigest([]byte(`{"entry":"e1"}`))
	row := checkFoldRow(t, in)
	noCard := slices.Clone(row)
	noCard[1] &^= foldFlagCard
	if _, err := parseFoldRow(noCard); err == nil {
		t.Fatal("parseFoldRow accepted a card digest in the row of an entry without a card")
	}
}

// checkFoldRow checks that in's row parses back to in, and that the row
// cut short or with a trailing byte does not parse; it returns the row.
func checkFoldRow(t *testing.T, in *foldInput) []byte {
	t.Helper()
	row := appendFoldRow(nil, in)
	if got, err := parseFoldRow(row); err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("parseFoldRow = %+v, %v; want %+v", got, err, in)
	}
	for n := range row {
		if _, err := parseFoldRow(row[:n]); err == nil {
			t.Fatalf("parseFoldRow accepted a row cut at %d bytes", n)
		}
	}
	if _, err := parseFoldRow(append(row, 0)); err == nil {
		t.Fatal("parseFoldRow accepted trailing bytes")
	}
	return row
}

// expectPaymentFast adds the rows the decoding reference adds, card
// digests included, for payment entries with and without card fields.
func TestExpectPaymentFastMatchesDecoded(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	base := paymentRecord("pay_1", TypeCaptured, 100, at)
	stripe := withCard(paymentRecord("pi_2", TypeAuthorized, 5, at), 2)
	delete(stripe.Body.(PaymentBody).Sealed, "bin")
	delete(stripe.Body.(PaymentBody).Sealed, "card_token")
	noTx := withCard(paymentRecord("", TypeOpaque, 0, at), 3)
	emptyCT := withCard(paymentRecord("pay_4", TypeCaptured, 1, at), 4)
	emptyCT.Body.(PaymentBody).Sealed["last4"] = []byte{}
	for i, rec := range []Record{base, withCard(base, 1), stripe, noTx, emptyCT} {
		rec.Unique = &Unique{Key: fmt.Sprintf("webhook/dev/%d", i), Digest: []byte{1, 2}}
		// Without sealed fields it takes the decoding path.
		checkExpectPaymentFast(t, uint64(10+i), rec, len(rec.Body.(PaymentBody).Sealed) > 0)
	}
}

func FuzzExpectPaymentFast(f *testing.F) {
	f.Add("pay_1", "visa", "dk_1", []byte("bin"), []byte("last4"), []byte("tok"), true, true, true)
	f.Add("pay_1", "visa", "dk_1", []byte("bin"), []byte(""), []byte("tok"), true, false, false)
	f.Add("pay_1", "visa", "dk_1", []byte(""), []byte(""), []byte("tok"), false, true, false)
	// hasLast4 too: whether an entry has a card (token or last 4) is
	// decided by each path on its own.
	f.Fuzz(func(t *testing.T, tx, brand, dk string, bin, last4, token []byte, hasBin, hasToken, hasLast4 bool) {
		rec := paymentRecord(tx, TypeCaptured, 7, time.Unix(1764000000, 0).UTC())
		p := rec.Body.(PaymentBody)
		p.Brand, p.DataKey = brand, dk
		p.Sealed = map[string][]byte{"raw": {0}}
		if hasLast4 {
			p.Sealed["last4"] = last4
		}
		if hasBin {
			p.Sealed["bin"] = bin
		}
		if hasToken {
			p.Sealed["card_token"] = token
		}
		rec.Body = p
		checkExpectPaymentFast(t, 3, rec, false)
	})
}

// The fast path hashes a card copy made of the entry's base64 text, the
// reference one of the ciphertexts encoded again: where the text is not
// what encoding/json writes (which the decoder still accepts), the fast
// path must leave the entry to the reference.
func TestExpectPaymentFastNonCanonicalBase64(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	rec := withCard(paymentRecord("pay_1", TypeCaptured, 100, at), 1)
	enc, err := encodeRecord(&rec)
	if err != nil {
		t.Fatal(err)
	}
	b := newEntry(7, enc).Bytes()
	p := rec.Body.(PaymentBody)
	for _, f := range cardFields {
		text := base64.StdEncoding.EncodeToString(p.Sealed[f])
		if !bytes.Contains(b, []byte(`"`+f+`":"`+text+`"`)) {
			t.Fatalf("entry has no %s %q: %s", f, text, b)
		}
		body := strings.TrimRight(text, "=")
		variants := []string{
			strings.TrimRight(text, "="), // no padding
			text[:4] + "\r\n" + text[4:], // escaped line break
			text + "AAAA",                // canonical, other bytes
		}
		if pad := len(text) - len(body); pad > 0 {
			// The same bytes, with bits after the last one set.
			last := strings.IndexByte(base64Alphabet, body[len(body)-1])
			variants = append(variants, body[:len(body)-1]+string(base64Alphabet[last|1])+text[len(body):])
		}
		if len(variants) < 4 && f != "bin" {
			t.Fatalf("%s: no padded variant; the test's ciphertexts changed", f)
		}
		for _, v := range variants {
			tampered := bytes.Replace(b, []byte(`"`+f+`":"`+text+`"`), []byte(`"`+f+`":"`+v+`"`), 1)
			checkExpectPaymentFastBytes(t, 7, tampered, false)
		}
	}
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// canonicalBase64 is pinned to its definition: decoding and encoding
// again gives the text back.
func FuzzCanonicalBase64(f *testing.F) {
	for _, s := range []string{"", "QQ==", "QR==", "QUI=", "QUJ=", "QUJD", "QQ", "Q===", "====", "QU\nJD", "QUJD\r\n", "-_==", "AAAAQQ=="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		d, err := base64.StdEncoding.DecodeString(string(s))
		want := err == nil && base64.StdEncoding.EncodeToString(d) == string(s)
		if got := canonicalBase64(s); got != want {
			t.Fatalf("canonicalBase64(%q) = %v, want %v", s, got, want)
		}
	})
}

// checkExpectPaymentFast compares the fast path with the decoding one on
// rec's entry; with mustBeFast the fast path must not fall back.
func checkExpectPaymentFast(t *testing.T, seq uint64, rec Record, mustBeFast bool) {
	t.Helper()
	enc, err := encodeRecord(&rec)
	if err != nil {
		return // not a record the ledger would append
	}
	checkExpectPaymentFastBytes(t, seq, newEntry(seq, enc).Bytes(), mustBeFast)
}

// checkExpectPaymentFastBytes is checkExpectPaymentFast on entry bytes b.
func checkExpectPaymentFastBytes(t *testing.T, seq uint64, b []byte, mustBeFast bool) {
	t.Helper()
	for _, copies := range []bool{true, false} {
		var fast, decoded msetHash
		ok, fastPayment, ferr := expectPaymentFast(&fast, seq, b, copies)
		if !ok {
			if mustBeFast {
				t.Fatalf("expectPaymentFast fell back on %s", b)
			}
			return
		}
		decodedPayment, derr := expectEntryIndexesDecoded(&decoded, seq, b, copies)
		if fast != decoded || fastPayment != decodedPayment || (ferr == nil) != (derr == nil) {
			t.Fatalf("copies %v: expectPaymentFast = %v, %v, %v; decoded %v, %v, %v\nentry %s", copies, fast, fastPayment, ferr, decoded, decodedPayment, derr, b)
		}
	}
}
