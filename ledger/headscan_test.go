package ledger

import (
	"bytes"
	"encoding/json"
	"reflect"
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
	row := appendFoldRow(nil, in)
	got, err := parseFoldRow(row)
	if err != nil || !reflect.DeepEqual(got, in) {
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
}
