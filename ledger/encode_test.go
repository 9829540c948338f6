package ledger

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// jsonTail is what encodeRecord wrote before the hand encoder: the record
// through encoding/json, with its opening brace replaced by a comma.
func jsonTail(t testing.TB, rec *Record) []byte {
	b, err := json.Marshal(struct {
		Kind   Kind      `json:"kind"`
		ID     string    `json:"id"`
		Time   time.Time `json:"time"`
		Policy int       `json:"policy"`
		Body   any       `json:"body"`
		Unique *Unique   `json:"unique,omitempty"`
	}{rec.Kind, rec.ID, rec.Time.UTC(), rec.Policy, rec.Body, rec.Unique})
	if err != nil {
		t.Fatal(err)
	}
	b[0] = ','
	return b
}

func TestAppendRecordTailMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for _, p := range []*PaymentBody{
		{Source: "dev", EventID: "evt_1", Type: TypeCaptured, TransactionID: "pay_1", MerchantID: "m1", Amount: 1999,
			Currency: "EUR", Status: "captured", OccurredAt: at, Brand: "visa", SADRemoved: true, DataKey: "dk_1",
			Sealed: map[string][]byte{"raw": []byte("{}"), "last4": {1, 2, 3}, "card_token": nil, "bin": {}}},
		{Source: "stripe", EventID: "evt_<2>&", WebhookID: "msg_2", Type: TypeRefunded, ProcessorType: "charge.refunded",
			TransactionID: "pi_\"2\"", AltIDs: []string{"ch_2", "ch\\3", ""}, MerchantID: "acct_ü\u2028", Amount: -5,
			Currency: "JPY", Status: "refunded\n", OccurredAt: time.Unix(0, 0)},
		{Source: "s\x00\x1f\x7f", EventID: "e", Type: TypeOpaque, AltIDs: []string{}, MerchantID: "bad \xff utf8", Sealed: map[string][]byte{}},
	} {
		for _, u := range []*Unique{nil, {Key: "webhook/dev/evt_1", Digest: []byte("0123456789abcdef")}, {Key: "k<", Digest: nil}} {
			rec := &Record{Kind: KindPayment, ID: "01JX<&>", Time: at, Policy: 3, Body: p, Unique: u}
			got, ok := appendRecordTail(nil, rec)
			if !ok {
				t.Fatalf("appendRecordTail refused %+v", p)
			}
			if want := jsonTail(t, rec); !bytes.Equal(got, want) {
				t.Fatalf("appendRecordTail\n got %s\nwant %s", got, want)
			}
		}
	}
	// Not a payment body: left to encoding/json.
	if _, ok := appendRecordTail(nil, &Record{Kind: KindAdmin, Body: AdminBody{}}); ok {
		t.Fatal("appendRecordTail encoded an admin body")
	}
	// A time json.Marshal refuses is refused, so encodeRecord reports it.
	rec := &Record{Kind: KindPayment, ID: "x", Time: at, Body: &PaymentBody{OccurredAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	if _, ok := appendRecordTail(nil, rec); ok {
		t.Fatal("appendRecordTail encoded a year-10000 time")
	}
	if _, err := encodeRecord(rec); err == nil {
		t.Fatal("encodeRecord accepted a year-10000 time")
	}
}

func FuzzAppendRecordTail(f *testing.F) {
	f.Add("dev", "evt_1", "pay_1", "m1", "EUR", "ch_1", "card_token", []byte{1, 2}, int64(1999), int64(1764000000), true)
	f.Add("<&>", "\u2028", "\xff", "\"\\", "\n", "", "", []byte(nil), int64(-1), int64(-62135596800), false)
	f.Fuzz(func(t *testing.T, src, evt, tx, merchant, cur, alt, field string, ct []byte, amount, unix int64, sad bool) {
		p := &PaymentBody{Source: src, EventID: evt, Type: TypeCaptured, TransactionID: tx, MerchantID: merchant,
			Amount: amount, Currency: cur, OccurredAt: time.Unix(unix%(1<<40), amount%1e9).UTC(), SADRemoved: sad}
		if alt != "" {
			p.AltIDs = []string{alt, tx}
		}
		if field != "" {
			p.Sealed = map[string][]byte{field: ct, "raw": ct}
		}
		rec := &Record{Kind: KindPayment, ID: evt, Time: time.Unix(1764000000, 0), Body: p, Unique: &Unique{Key: src, Digest: ct}}
		got, ok := appendRecordTail(nil, rec)
		if !ok {
			if _, err := json.Marshal(p); err == nil {
				t.Fatalf("appendRecordTail refused what encoding/json encodes: %+v", p)
			}
			return
		}
		if want := jsonTail(t, rec); !bytes.Equal(got, want) {
			t.Fatalf("appendRecordTail\n got %s\nwant %s", got, want)
		}
	})
}

func TestMarshalTxStateMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 0, 0, 5, time.UTC)
	seq := uint64(7)
	for _, s := range []*TxState{
		{},
		{TransactionID: "pay_1", MerchantID: "m1", Status: "captured", Currency: "EUR", Authorized: 10, Captured: 10,
			FirstSeen: at, LastUpdated: at, CapturedAt: at, StatusAt: at, Types: []string{TypeCaptured}, Seqs: []uint64{3, 7}, CardSeq: &seq},
		{TransactionID: "pi_<&>", AltIDs: []string{"ch_1", "ch\"2"}, MerchantID: "ü", Refunded: -1, ChargedBack: 1 << 62,
			FirstSeen: time.Unix(0, 0), Types: []string{}, Seqs: []uint64{}},
		{TransactionID: "pay_2", Seqs: []uint64{7}, CardSeq: &seq, Card: &CardCopy{Entry: "01KC", Brand: "visa", DataKey: "dk_1",
			Sealed: CardSealed{Last4: []byte{1, 2}, BIN: []byte{}, Token: []byte("<&>\xff")}}},
		{TransactionID: "pay_3", Card: &CardCopy{Brand: "é\"", Sealed: CardSealed{Last4: []byte("4")}}},
		{TransactionID: "pay_4", Card: &CardCopy{}},
	} {
		got, err := marshalTxState(s)
		want, werr := json.Marshal(s)
		if err != nil || werr != nil || !bytes.Equal(got, want) {
			t.Fatalf("marshalTxState\n got %s (%v)\nwant %s (%v)", got, err, want, werr)
		}
	}
	if _, err := marshalTxState(&TxState{FirstSeen: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("marshalTxState encoded a year -1 time")
	}
}

func FuzzMarshalTxState(f *testing.F) {
	f.Add("pay_1", "m1", "ch_1", "payment.captured", int64(100), int64(1764000000), uint64(3), true)
	f.Fuzz(func(t *testing.T, tx, merchant, alt, typ string, amount, unix int64, seq uint64, card bool) {
		at := time.Unix(unix%(1<<40), 0).UTC()
		s := &TxState{TransactionID: tx, MerchantID: merchant, Status: typ, Currency: merchant, Authorized: amount,
			Captured: -amount, FirstSeen: at, LastUpdated: at, Types: []string{typ}, Seqs: []uint64{seq, seq + 1}}
		if alt != "" {
			s.AltIDs = []string{alt}
			s.StatusAt = at
		}
		if card {
			s.CardSeq = &seq
			s.CapturedAt = at
			s.Card = &CardCopy{Entry: alt, Brand: typ, DataKey: merchant, Sealed: CardSealed{Last4: []byte(tx)}}
			if amount%2 == 0 {
				s.Card.Sealed.Token = []byte(merchant)
			}
			if amount%3 == 0 {
				s.Card.Sealed.BIN = []byte(alt)
			}
		}
		got, err := marshalTxState(s)
		want, werr := json.Marshal(s)
		if (err == nil) != (werr == nil) || err == nil && !bytes.Equal(got, want) {
			t.Fatalf("marshalTxState\n got %s (%v)\nwant %s (%v)", got, err, want, werr)
		}
	})
}

// Every record encodes as encoding/json would, whichever path it takes.
func TestEncodeRecordMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 0, 0, 7, time.UTC)
	for _, rec := range []*Record{
		{Kind: KindAdmin, ID: "a<1>", Time: at, Policy: 1, Body: AdminBody{ActorID: "p&1", Action: "principal.create", Details: map[string]string{"z": "\u2028", "a": "x"}}},
		{Kind: KindAccess, ID: "a2", Time: at, Body: AccessBody{ActorID: "p1", Resource: "/v1/transactions?x=<y>", Status: 200}, Unique: &Unique{Key: "k", Digest: []byte{0}}},
		{Kind: KindPayment, ID: "p3", Time: at, Body: PaymentBody{Source: "dev", TransactionID: "t", OccurredAt: at}},
	} {
		enc, err := encodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := enc.buf[seqRoom:], jsonTail(t, rec); !bytes.Equal(got, want) {
			t.Fatalf("encodeRecord(%s)\n got %s\nwant %s", rec.Kind, got, want)
		}
	}
}

// A card copy owns its ciphertexts (a cached state must not keep a decoded
// body alive) and keeps which fields the entry has: empty is not absent.
func TestCardCopyOf(t *testing.T) {
	p := &PaymentBody{Brand: "visa", DataKey: "dk_1", Sealed: map[string][]byte{
		"bin": []byte("b"), "last4": {}, "raw": []byte("r"),
	}}
	c := cardCopyOf("e1", p)
	p.Sealed["bin"][0] = 'x'
	want := &CardCopy{Entry: "e1", Brand: "visa", DataKey: "dk_1", Sealed: CardSealed{BIN: []byte("b"), Last4: []byte{}}}
	if !reflect.DeepEqual(c, want) || c.Sealed.Last4 == nil || c.Sealed.Token != nil {
		t.Fatalf("cardCopyOf = %+v, want %+v", c, want)
	}
	if got := appendCardCopy(nil, c); string(got) != `{"entry":"e1","brand":"visa","data_key":"dk_1","sealed":{"bin":"Yg==","last4":""}}` {
		t.Fatalf("stored form %s", got)
	}
}
