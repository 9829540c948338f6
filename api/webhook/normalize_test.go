package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/webhook"
)

func TestNormalizeGeneric(t *testing.T) {
	for _, tc := range []struct {
		file, defaultMerchant string
		want                  webhook.Event
	}{
		{
			file: "generic-payment-captured.json",
			want: webhook.Event{
				EventID: "gen_evt_0001", Type: webhook.EventCaptured, ProcessorType: "payment.captured",
				OccurredAt:    time.Date(2026, 11, 20, 14, 3, 11, 0, time.UTC),
				TransactionID: "pay_0001", MerchantID: "m_bookshop", Amount: 4550, Currency: "USD", Status: "captured",
				Card:       webhook.Card{PAN: "5555 5555 5555 4444", Brand: "mastercard", Last4: "4444", ExpMonth: 11, ExpYear: 2029},
				Cardholder: webhook.Cardholder{Name: "Tomasz Example", Email: "tomasz.example@example.net", Country: "PL"},
				IP:         "198.51.100.23", SADRemoved: true,
			},
		},
		{
			file: "generic-payment-refunded.json", defaultMerchant: "m_default",
			want: webhook.Event{
				EventID: "gen_evt_0002", Type: webhook.EventRefunded, ProcessorType: "payment.refunded",
				OccurredAt:    time.Date(2026, 11, 21, 8, 30, 0, 250e6, time.UTC),
				TransactionID: "pay_0001", MerchantID: "m_default", Amount: 1550, Currency: "USD", Status: "refunded",
				Card: webhook.Card{PAN: "5555-5555-5555-4444", Brand: "mastercard", Last4: "4444", ExpMonth: 11, ExpYear: 2029},
				Cardholder: webhook.Cardholder{Name: "Tomasz Example", Email: "tomasz.example@example.net", Country: "PL",
					Address: json.RawMessage(`{"city":"Kraków","country":"pl","line1":"ul. Przykładowa 1","postal_code":"30-001"}`)},
				IP: "2001:db8::17", SADRemoved: true,
			},
		},
		{
			file: "generic-payment-authorized-minimal.json", defaultMerchant: "m_default",
			want: webhook.Event{
				EventID: "gen_evt_0003", Type: webhook.EventAuthorized, ProcessorType: "payment.authorized",
				OccurredAt:    time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
				TransactionID: "pay_0003", MerchantID: "m_default", Amount: 0, Currency: "JPY", Status: "authorized",
			},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := webhook.NormalizeGeneric(readFixture(t, tc.file), tc.defaultMerchant)
			if err != nil {
				t.Fatal(err)
			}
			checkRaw(t, got)
			got.Raw = nil
			var ids webhook.Identifiers
			if e := tc.want.Cardholder.Email; e != "" {
				ids.Emails = []string{e}
			}
			if !reflect.DeepEqual(got.Identifiers, ids) {
				t.Errorf("Identifiers = %+v, want %+v", got.Identifiers, ids)
			}
			got.Identifiers = webhook.Identifiers{}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("NormalizeGeneric()\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestNormalizeGenericTypes(t *testing.T) {
	for _, typ := range []webhook.EventType{
		webhook.EventAuthorized, webhook.EventCaptured, webhook.EventRefunded, webhook.EventVoided,
		webhook.EventFailed, webhook.EventChargeback, webhook.EventSettled,
	} {
		body := editGeneric(t, func(m map[string]any) { m["type"] = string(typ); delete(m, "status") })
		got, err := webhook.NormalizeGeneric(body, "")
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if want := strings.TrimPrefix(string(typ), "payment."); got.Type != typ || got.Status != want {
			t.Errorf("%s: got type %q status %q, want status %q", typ, got.Type, got.Status, want)
		}
	}
}

// editGeneric returns the generic sample event after edit.
func editGeneric(tb testing.TB, edit func(m map[string]any)) []byte {
	tb.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(readFixture(tb, "generic-payment-captured.json")))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		tb.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func sub(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func TestNormalizeGenericFieldErrors(t *testing.T) {
	// secret is a value that error messages must never repeat.
	const secret = "4111111111111111"
	for _, tc := range []struct {
		name, field, defaultMerchant string
		edit                         func(m map[string]any)
	}{
		{"id missing", "id", "", func(m map[string]any) { delete(m, "id") }},
		{"id null", "id", "", func(m map[string]any) { m["id"] = nil }},
		{"id number", "id", "", func(m map[string]any) { m["id"] = 7 }},
		{"id empty", "id", "", func(m map[string]any) { m["id"] = "" }},
		{"id with space", "id", "", func(m map[string]any) { m["id"] = "a " + secret }},
		{"id too long", "id", "", func(m map[string]any) { m["id"] = strings.Repeat("a", 256) }},
		{"type missing", "type", "", func(m map[string]any) { delete(m, "type") }},
		{"type unknown", "type", "", func(m map[string]any) { m["type"] = "payment." + secret }},
		{"type opaque", "type", "", func(m map[string]any) { m["type"] = "opaque" }},
		{"occurred_at missing", "occurred_at", "", func(m map[string]any) { delete(m, "occurred_at") }},
		{"occurred_at not RFC 3339", "occurred_at", "", func(m map[string]any) { m["occurred_at"] = "2026-11-20 14:03:11" }},
		{"occurred_at unix", "occurred_at", "", func(m map[string]any) { m["occurred_at"] = 1795000000 }},
		{"transaction_id missing", "transaction_id", "", func(m map[string]any) { delete(m, "transaction_id") }},
		{"amount missing", "amount", "", func(m map[string]any) { delete(m, "amount") }},
		{"amount fraction", "amount", "", func(m map[string]any) { m["amount"] = json.Number("1.5") }},
		{"amount integral fraction", "amount", "", func(m map[string]any) { m["amount"] = json.Number("12.0") }},
		{"amount exponent", "amount", "", func(m map[string]any) { m["amount"] = json.Number("1e3") }},
		{"amount string", "amount", "", func(m map[string]any) { m["amount"] = "12" }},
		{"amount negative", "amount", "", func(m map[string]any) { m["amount"] = -1 }},
		{"amount negative zero", "amount", "", func(m map[string]any) { m["amount"] = json.Number("-0") }},
		{"amount over 2^53", "amount", "", func(m map[string]any) { m["amount"] = json.Number("9007199254740993") }},
		{"amount over int64", "amount", "", func(m map[string]any) { m["amount"] = json.Number("99999999999999999999") }},
		{"currency missing", "currency", "", func(m map[string]any) { delete(m, "currency") }},
		{"currency unknown", "currency", "", func(m map[string]any) { m["currency"] = "XYZ" }},
		{"currency funds code", "currency", "", func(m map[string]any) { m["currency"] = "XAU" }},
		{"currency short", "currency", "", func(m map[string]any) { m["currency"] = "US" }},
		{"currency padded", "currency", "", func(m map[string]any) { m["currency"] = " usd" }},
		{"currency numeric", "currency", "", func(m map[string]any) { m["currency"] = 840 }},
		{"merchant missing, no default", "merchant_id", "", func(m map[string]any) { delete(m, "merchant_id") }},
		{"merchant empty", "merchant_id", "m_default", func(m map[string]any) { m["merchant_id"] = "" }},
		{"status empty", "status", "", func(m map[string]any) { m["status"] = "" }},
		{"card not an object", "card", "", func(m map[string]any) { m["card"] = secret }},
		{"card number letters", "card.number", "", func(m map[string]any) { sub(m, "card")["number"] = "4111 1111 1111 111x" }},
		{"card number too short", "card.number", "", func(m map[string]any) { sub(m, "card")["number"] = "41111111111" }},
		{"card number too long", "card.number", "", func(m map[string]any) { sub(m, "card")["number"] = "41111111111111111111" }},
		{"card number JSON number", "card.number", "", func(m map[string]any) { sub(m, "card")["number"] = json.Number(secret) }},
		{"card exp_month 13", "card.exp_month", "", func(m map[string]any) { sub(m, "card")["exp_month"] = 13 }},
		{"card exp_month string", "card.exp_month", "", func(m map[string]any) { sub(m, "card")["exp_month"] = "11" }},
		{"card exp_year two digits", "card.exp_year", "", func(m map[string]any) { sub(m, "card")["exp_year"] = 29 }},
		{"card last4 mismatch", "card.last4", "", func(m map[string]any) { sub(m, "card")["last4"] = "1111" }},
		{"card brand control", "card.brand", "", func(m map[string]any) { sub(m, "card")["brand"] = "visa\n" + secret }},
		{"cardholder not an object", "cardholder", "", func(m map[string]any) { m["cardholder"] = []any{} }},
		{"cardholder email", "cardholder.email", "", func(m map[string]any) { sub(m, "cardholder")["email"] = secret }},
		{"cardholder country", "cardholder.country", "", func(m map[string]any) { sub(m, "cardholder")["country"] = "POL" }},
		{"cardholder address", "cardholder.address", "", func(m map[string]any) { sub(m, "cardholder")["address"] = secret }},
		{"addresses differ", "billing_address", "", func(m map[string]any) {
			sub(m, "cardholder")["address"] = map[string]any{"country": "PL"}
			m["billing_address"] = map[string]any{"country": "DE"}
		}},
		{"ip", "ip", "", func(m map[string]any) { m["ip"] = "198.51.100.300" }},
		{"ip with zone", "ip", "", func(m map[string]any) { m["ip"] = "fe80::1%eth0" }},
		{"metadata array", "metadata", "", func(m map[string]any) { m["metadata"] = []any{secret} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := webhook.NormalizeGeneric(editGeneric(t, tc.edit), tc.defaultMerchant)
			var fe *webhook.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("NormalizeGeneric() = %+v, %v; want a FieldError wrapping ErrMalformed", ev, err)
			}
			if fe.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
			if want := "invalid field " + tc.field + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			for _, leak := range []string{secret, "4444", "Tomasz", "example.net"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q repeats a value", err)
				}
			}
		})
	}
}

func TestNormalizeGenericAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		test func(ev *webhook.Event) bool
	}{
		{"currency lower case", func(m map[string]any) { m["currency"] = "eur" }, func(ev *webhook.Event) bool { return ev.Currency == "EUR" }},
		{"currency mixed case", func(m map[string]any) { m["currency"] = "kWd" }, func(ev *webhook.Event) bool { return ev.Currency == "KWD" }},
		{"amount 2^53", func(m map[string]any) { m["amount"] = json.Number("9007199254740992") }, func(ev *webhook.Event) bool { return ev.Amount == 1<<53 }},
		{"merchant default", func(m map[string]any) { delete(m, "merchant_id") }, func(ev *webhook.Event) bool { return ev.MerchantID == "m_default" }},
		{"merchant from body over default", func(m map[string]any) {}, func(ev *webhook.Event) bool { return ev.MerchantID == "m_bookshop" }},
		{"null optional fields", func(m map[string]any) { m["card"], m["cardholder"], m["ip"], m["status"] = nil, nil, nil, nil }, func(ev *webhook.Event) bool {
			return ev.Card == (webhook.Card{}) && ev.Status == "captured" && ev.IP == ""
		}},
		{"offset time to UTC", func(m map[string]any) { m["occurred_at"] = "2026-11-20T23:03:11+09:00" }, func(ev *webhook.Event) bool {
			return ev.OccurredAt.Equal(time.Date(2026, 11, 20, 14, 3, 11, 0, time.UTC)) && ev.OccurredAt.Location() == time.UTC
		}},
		{"billing_address alone", func(m map[string]any) {
			m["billing_address"] = map[string]any{"country": "PL", "line1": "x"}
			delete(sub(m, "cardholder"), "country")
		}, func(ev *webhook.Event) bool {
			return string(ev.Cardholder.Address) == `{"country":"PL","line1":"x"}` && ev.Cardholder.Country == "PL"
		}},
		{"same address twice", func(m map[string]any) {
			m["billing_address"] = map[string]any{"country": "PL"}
			sub(m, "cardholder")["address"] = map[string]any{"country": "PL"}
		}, func(ev *webhook.Event) bool { return string(ev.Cardholder.Address) == `{"country":"PL"}` }},
		{"last4 alone", func(m map[string]any) { delete(sub(m, "card"), "number"); sub(m, "card")["last4"] = "0005" }, func(ev *webhook.Event) bool {
			return ev.Card.PAN == "" && ev.Card.Last4 == "0005"
		}},
		{"unknown members kept in Raw", func(m map[string]any) { m["x_extra"] = "kept" }, func(ev *webhook.Event) bool {
			return bytes.Contains(ev.Raw, []byte(`"x_extra":"kept"`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := webhook.NormalizeGeneric(editGeneric(t, tc.edit), "m_default")
			if err != nil {
				t.Fatal(err)
			}
			checkRaw(t, ev)
			if !tc.test(ev) {
				t.Errorf("unexpected event %+v", *ev)
			}
		})
	}
}

func TestNormalizeMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"array", `[]`},
		{"string", `"x"`},
		{"null", `null`},
		{"number", `1`},
		{"trailing object", `{"id":"a"} {}`},
		{"trailing garbage", `{"id":"a"}x`},
		{"truncated", `{"id":"a"`},
		{"trailing comma", `{"id":"a",}`},
		{"duplicate key", `{"id":"a","type":"payment.captured","amount":1,"amount":2}`},
		{"duplicate nested key", `{"card":{"cvc":"1","cvc":"2"}}`},
		{"invalid UTF-8", "{\"id\":\"\xff\"}"},
		{"too deep", strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65)},
		{"too deep arrays", `{"a":` + strings.Repeat(`[`, 64) + strings.Repeat(`]`, 64) + `}`},
	} {
		for name, normalize := range map[string]func([]byte, string) (*webhook.Event, error){
			"generic": webhook.NormalizeGeneric, "stripe": webhook.NormalizeStripe,
		} {
			ev, err := normalize([]byte(tc.body), "m")
			var fe *webhook.FieldError
			if !errors.Is(err, webhook.ErrMalformed) || errors.As(err, &fe) {
				t.Errorf("%s %s: got %+v, %v; want ErrMalformed, not a FieldError", name, tc.name, ev, err)
			}
		}
	}
	// Nesting up to the limit is fine.
	body := `{"id":"evt_1","type":"x.y","created":1,"account":"acct_1","data":` + strings.Repeat(`{"a":`, 62) + `1` + strings.Repeat(`}`, 63)
	if _, err := webhook.NormalizeStripe([]byte(body), ""); err != nil {
		t.Errorf("64 levels: %v", err)
	}
}

func TestNormalizeStripe(t *testing.T) {
	lisbon := json.RawMessage(`{"city":"Lisbon","country":"PT","line1":"Rua Augusta 12","line2":null,"postal_code":"1100-053","state":null}`)
	berlin := json.RawMessage(`{"city":"Berlin","country":"DE","line1":"Invalidenstr. 5","line2":null,"postal_code":"10115","state":null}`)
	visa := webhook.Card{Brand: "visa", Last4: "4242", ExpMonth: 8, ExpYear: 2030, Fingerprint: "Xt5EWLLDS7FJjR1c"}
	mastercard := webhook.Card{Brand: "mastercard", Last4: "4444", ExpMonth: 1, ExpYear: 2028, Fingerprint: "Yq2KDwG8aQpL0sVb"}
	marta := webhook.Cardholder{Name: "Marta Sample", Email: "marta.sample@example.com", Country: "PT"}
	jonas := webhook.Cardholder{Name: "Jonas Sample", Email: "jonas.sample@example.org", Country: "DE", Address: berlin}
	at := func(unix int64) time.Time { return time.Unix(unix, 0).UTC() }

	for _, tc := range []struct {
		file string
		want webhook.Event
	}{
		{"stripe-charge-succeeded.json", webhook.Event{
			EventID: "evt_3QaSample0001", Type: webhook.EventCaptured, ProcessorType: "charge.succeeded", OccurredAt: at(1795000000),
			TransactionID: "pi_3QaSampleIntent01", AltIDs: []string{"ch_3QaSampleCharge01"}, MerchantID: "acct_1SampleMerchant",
			Amount: 2599, Currency: "EUR", Status: "captured", Card: visa,
			Cardholder: webhook.Cardholder{Name: marta.Name, Email: marta.Email, Country: "PT", Address: lisbon},
		}},
		{"stripe-charge-succeeded-uncaptured.json", webhook.Event{
			EventID: "evt_3QaSample0010", Type: webhook.EventAuthorized, ProcessorType: "charge.succeeded", OccurredAt: at(1795000100),
			TransactionID: "pi_3QaSampleIntent10", AltIDs: []string{"ch_3QaSampleCharge10"}, MerchantID: "acct_default",
			Amount: 12000, Currency: "EUR", Status: "authorized", Card: mastercard, Cardholder: jonas,
		}},
		{"stripe-charge-captured.json", webhook.Event{
			EventID: "evt_3QaSample0011", Type: webhook.EventCaptured, ProcessorType: "charge.captured", OccurredAt: at(1795003700),
			TransactionID: "pi_3QaSampleIntent10", AltIDs: []string{"ch_3QaSampleCharge10"}, MerchantID: "acct_default",
			Amount: 9500, Currency: "EUR", Status: "captured", Card: mastercard, Cardholder: jonas,
		}},
		{"stripe-charge-refunded.json", webhook.Event{
			EventID: "evt_3QaSample0002", Type: webhook.EventRefunded, ProcessorType: "charge.refunded", OccurredAt: at(1795003600),
			TransactionID: "pi_3QaSampleIntent01", AltIDs: []string{"ch_3QaSampleCharge01"}, MerchantID: "acct_1SampleMerchant",
			Amount: 1000, Currency: "EUR", Status: "refunded", Card: visa,
			Cardholder: webhook.Cardholder{Name: marta.Name, Email: marta.Email, Country: "PT", Address: json.RawMessage(`{"country":"PT"}`)},
		}},
		{"stripe-charge-failed.json", webhook.Event{
			EventID: "evt_3QaSample0012", Type: webhook.EventFailed, ProcessorType: "charge.failed", OccurredAt: at(1795010000),
			TransactionID: "pi_3QaSampleIntent12", AltIDs: []string{"ch_3QaSampleCharge12"}, MerchantID: "acct_1SampleMerchant",
			Amount: 500000, Currency: "JPY", Status: "failed",
			Card: webhook.Card{Brand: "jcb", Last4: "0505", ExpMonth: 12, ExpYear: 2027, Fingerprint: "Jc9PqR2sT4uV6wXy"},
			Cardholder: webhook.Cardholder{Name: "Haruto Sample", Country: "JP",
				Address: json.RawMessage(`{"city":null,"country":"JP","line1":null,"line2":null,"postal_code":"150-0002","state":null}`)},
		}},
		{"stripe-charge-dispute-created.json", webhook.Event{
			EventID: "evt_1QaSample0020", Type: webhook.EventChargeback, ProcessorType: "charge.dispute.created", OccurredAt: at(1795600000),
			TransactionID: "pi_3QaSampleIntent01", AltIDs: []string{"ch_3QaSampleCharge01"}, MerchantID: "acct_1SampleMerchant",
			Amount: 2599, Currency: "EUR", Status: "needs_response", Card: webhook.Card{Brand: "visa"},
		}},
		{"stripe-charge-dispute-closed.json", webhook.Event{
			EventID: "evt_1QaSample0021", Type: webhook.EventChargeback, ProcessorType: "charge.dispute.closed", OccurredAt: at(1797000000),
			TransactionID: "pi_3QaSampleIntent01", AltIDs: []string{"ch_3QaSampleCharge01"}, MerchantID: "acct_1SampleMerchant",
			Amount: 2599, Currency: "EUR", Status: "lost", Card: webhook.Card{Brand: "visa"},
		}},
		{"stripe-payment_intent-succeeded.json", webhook.Event{
			EventID: "evt_3QaSample0030", Type: webhook.EventCaptured, ProcessorType: "payment_intent.succeeded", OccurredAt: at(1795000001),
			TransactionID: "pi_3QaSampleIntent01", AltIDs: []string{"ch_3QaSampleCharge01"}, MerchantID: "acct_1SampleMerchant",
			Amount: 2599, Currency: "EUR", Status: "captured",
		}},
		{"stripe-payment_intent-payment_failed.json", webhook.Event{
			EventID: "evt_3QaSample0031", Type: webhook.EventFailed, ProcessorType: "payment_intent.payment_failed", OccurredAt: at(1795020000),
			TransactionID: "pi_3QaSampleIntent31", AltIDs: []string{"ch_3QaSampleCharge31"}, MerchantID: "acct_1SampleMerchant",
			Amount: 1234, Currency: "KWD", Status: "failed",
			Card: webhook.Card{Brand: "amex", Last4: "0005", ExpMonth: 6, ExpYear: 2029, Fingerprint: "Am3xF1ngerPr1nt0"},
			Cardholder: webhook.Cardholder{Name: "Fatima Sample", Email: "fatima.sample@example.com", Country: "KW",
				Address: json.RawMessage(`{"city":"Kuwait City","country":"KW","line1":"Street 1","line2":null,"postal_code":"13001","state":null}`)},
		}},
		{"stripe-payment_intent-canceled.json", webhook.Event{
			EventID: "evt_3QaSample0032", Type: webhook.EventVoided, ProcessorType: "payment_intent.canceled", OccurredAt: at(1795090000),
			TransactionID: "pi_3QaSampleIntent10", AltIDs: []string{"ch_3QaSampleCharge10"}, MerchantID: "acct_1SampleMerchant",
			Amount: 12000, Currency: "EUR", Status: "voided", Card: mastercard, Cardholder: jonas,
		}},
		{"stripe-charge-refund-updated.json", webhook.Event{
			EventID: "evt_3QaSample0040", Type: webhook.EventOpaque, ProcessorType: "charge.refund.updated", OccurredAt: at(1795004000),
			TransactionID: "pi_3QaSampleIntent01", AltIDs: []string{"ch_3QaSampleCharge01"}, MerchantID: "acct_1SampleMerchant",
		}},
		{"stripe-customer-created.json", webhook.Event{
			EventID: "evt_1QaSample0041", Type: webhook.EventOpaque, ProcessorType: "customer.created", OccurredAt: at(1795000500),
			TransactionID: "cus_SampleCust02", MerchantID: "acct_default",
			Cardholder: webhook.Cardholder{Name: "Lena Sample", Email: "lena.sample@example.com"},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := webhook.NormalizeStripe(readFixture(t, tc.file), "acct_default")
			if err != nil {
				t.Fatal(err)
			}
			checkRaw(t, got)
			got.Raw = nil
			// Identifiers: the ones listed, else the cardholder's email and
			// the card's fingerprint.
			want, ok := stripeIdentifiers[tc.file]
			if !ok {
				if e := tc.want.Cardholder.Email; e != "" {
					want.Emails = []string{e}
				}
				if f := tc.want.Card.Fingerprint; f != "" {
					want.Fingerprints = []string{f}
				}
			}
			if !reflect.DeepEqual(got.Identifiers, want) {
				t.Errorf("Identifiers = %+v, want %+v", got.Identifiers, want)
			}
			got.Identifiers = webhook.Identifiers{}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("NormalizeStripe()\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// stripeIdentifiers are the identifiers of the samples that carry more
// than the cardholder's email and the card's fingerprint.
var stripeIdentifiers = map[string]webhook.Identifiers{
	"stripe-payment_intent-succeeded.json": {Customers: []string{"cus_SampleCust01"}},
	"stripe-charge-succeeded.json": {
		Emails: []string{"marta.sample@example.com"}, Fingerprints: []string{"Xt5EWLLDS7FJjR1c"}, Customers: []string{"cus_SampleCust01"},
	},
	"stripe-customer-created.json": {Emails: []string{"lena.sample@example.com"}, Customers: []string{"cus_SampleCust02"}},
}

// editStripe returns a Stripe sample event after edit.
func editStripe(tb testing.TB, file string, edit func(m map[string]any)) []byte {
	tb.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(readFixture(tb, file)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		tb.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func object(m map[string]any) map[string]any { return sub(sub(m, "data"), "object") }

func TestNormalizeStripeFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, field, defaultMerchant string
		edit                               func(m map[string]any)
	}{
		{"id missing", "stripe-charge-succeeded.json", "id", "", func(m map[string]any) { delete(m, "id") }},
		{"type missing", "stripe-charge-succeeded.json", "type", "", func(m map[string]any) { delete(m, "type") }},
		{"created missing", "stripe-customer-created.json", "created", "m", func(m map[string]any) { delete(m, "created") }},
		{"created string", "stripe-charge-succeeded.json", "created", "", func(m map[string]any) { m["created"] = "1795000000" }},
		{"created after 9999", "stripe-charge-succeeded.json", "created", "", func(m map[string]any) { m["created"] = json.Number("253402300800") }},
		{"no merchant", "stripe-charge-succeeded.json", "account", "", func(m map[string]any) { delete(m, "account") }},
		{"no merchant, opaque", "stripe-customer-created.json", "account", "", func(m map[string]any) {}},
		{"data missing", "stripe-charge-succeeded.json", "data.object", "", func(m map[string]any) { delete(m, "data") }},
		{"data not an object", "stripe-charge-succeeded.json", "data", "", func(m map[string]any) { m["data"] = "x" }},
		{"object null", "stripe-charge-succeeded.json", "data.object", "", func(m map[string]any) { sub(m, "data")["object"] = nil }},
		{"charge id missing", "stripe-charge-succeeded.json", "data.object.id", "", func(m map[string]any) { delete(object(m), "id") }},
		{"captured missing", "stripe-charge-succeeded.json", "data.object.captured", "", func(m map[string]any) { delete(object(m), "captured") }},
		{"captured string", "stripe-charge-succeeded.json", "data.object.captured", "", func(m map[string]any) { object(m)["captured"] = "true" }},
		{"amount_refunded missing", "stripe-charge-refunded.json", "data.object.amount_refunded", "", func(m map[string]any) { delete(object(m), "amount_refunded") }},
		{"currency unknown", "stripe-charge-refunded.json", "data.object.currency", "", func(m map[string]any) { object(m)["currency"] = "eurx" }},
		{"expanded payment_intent without id", "stripe-charge-refunded.json", "data.object.payment_intent.id", "", func(m map[string]any) {
			object(m)["payment_intent"] = map[string]any{"object": "payment_intent"}
		}},
		{"card exp_month", "stripe-charge-refunded.json", "data.object.payment_method_details.card.exp_month", "", func(m map[string]any) {
			sub(sub(object(m), "payment_method_details"), "card")["exp_month"] = 0
		}},
		{"billing country", "stripe-charge-refunded.json", "data.object.billing_details.address.country", "", func(m map[string]any) {
			sub(sub(object(m), "billing_details"), "address")["country"] = "Portugal"
		}},
		{"dispute charge missing", "stripe-charge-dispute-created.json", "data.object.charge", "", func(m map[string]any) { delete(object(m), "charge") }},
		{"dispute amount negative", "stripe-charge-dispute-created.json", "data.object.amount", "", func(m map[string]any) { object(m)["amount"] = -2599 }},
		{"dispute closed status missing", "stripe-charge-dispute-closed.json", "data.object.status", "", func(m map[string]any) { delete(object(m), "status") }},
		{"amount_received missing", "stripe-payment_intent-succeeded.json", "data.object.amount_received", "", func(m map[string]any) { delete(object(m), "amount_received") }},
		{"last_payment_error card brand", "stripe-payment_intent-payment_failed.json", "data.object.last_payment_error.payment_method.card.brand", "", func(m map[string]any) {
			sub(sub(sub(object(m), "last_payment_error"), "payment_method"), "card")["brand"] = 7
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := webhook.NormalizeStripe(editStripe(t, tc.file, tc.edit), tc.defaultMerchant)
			var fe *webhook.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("NormalizeStripe() = %+v, %v; want a FieldError wrapping ErrMalformed", ev, err)
			}
			if fe.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
		})
	}
}

func TestNormalizeStripeLenient(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		edit       func(m map[string]any)
		test       func(ev *webhook.Event) bool
	}{
		{"unknown api_version", "stripe-charge-succeeded.json", func(m map[string]any) { m["api_version"] = "2099-01-01.future" },
			func(ev *webhook.Event) bool { return ev.Type == webhook.EventCaptured }},
		{"no api_version", "stripe-charge-succeeded.json", func(m map[string]any) { delete(m, "api_version") },
			func(ev *webhook.Event) bool { return ev.Type == webhook.EventCaptured }},
		{"no payment intent", "stripe-charge-succeeded.json", func(m map[string]any) { object(m)["payment_intent"] = nil },
			func(ev *webhook.Event) bool { return ev.TransactionID == "ch_3QaSampleCharge01" && ev.AltIDs == nil }},
		{"expanded payment intent", "stripe-charge-succeeded.json", func(m map[string]any) {
			object(m)["payment_intent"] = map[string]any{"id": "pi_X", "object": "payment_intent"}
		}, func(ev *webhook.Event) bool { return ev.TransactionID == "pi_X" }},
		{"no amount_captured (old API)", "stripe-charge-succeeded.json", func(m map[string]any) { delete(object(m), "amount_captured") },
			func(ev *webhook.Event) bool { return ev.Amount == 2599 }},
		{"no card", "stripe-charge-succeeded.json", func(m map[string]any) { delete(object(m), "payment_method_details") },
			func(ev *webhook.Event) bool { return ev.Card == webhook.Card{} }},
		{"opaque without data", "stripe-customer-created.json", func(m map[string]any) { delete(m, "data") },
			func(ev *webhook.Event) bool { return ev.Type == webhook.EventOpaque && ev.TransactionID == ev.EventID }},
		{"opaque with odd data", "stripe-customer-created.json", func(m map[string]any) { m["data"] = []any{1} },
			func(ev *webhook.Event) bool { return ev.Type == webhook.EventOpaque && ev.TransactionID == ev.EventID }},
		{"opaque charge", "stripe-charge-succeeded.json", func(m map[string]any) { m["type"] = "charge.updated" },
			func(ev *webhook.Event) bool {
				return ev.Type == webhook.EventOpaque && ev.TransactionID == "pi_3QaSampleIntent01" &&
					reflect.DeepEqual(ev.AltIDs, []string{"ch_3QaSampleCharge01"}) && ev.Amount == 0 && ev.Currency == "" && ev.Status == ""
			}},
		{"opaque payment intent", "stripe-payment_intent-succeeded.json", func(m map[string]any) { m["type"] = "payment_intent.created" },
			func(ev *webhook.Event) bool {
				return ev.TransactionID == "pi_3QaSampleIntent01" && ev.AltIDs == nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := webhook.NormalizeStripe(editStripe(t, tc.file, tc.edit), "acct_default")
			if err != nil {
				t.Fatal(err)
			}
			checkRaw(t, ev)
			if !tc.test(ev) {
				t.Errorf("unexpected event %+v", *ev)
			}
		})
	}
}

// checkRaw checks the invariants of Event.Raw: valid JSON, no SAD key, no
// card.number, no PAN digits.
func checkRaw(tb testing.TB, ev *webhook.Event) {
	tb.Helper()
	var v any
	if err := json.Unmarshal(ev.Raw, &v); err != nil {
		tb.Fatalf("Raw is not JSON: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		tb.Fatalf("Raw is not an object")
	}
	if key, ok := findSADKey(v); ok {
		tb.Errorf("Raw still has SAD key %q", key)
	}
	if card, ok := v.(map[string]any)["card"].(map[string]any); ok {
		if _, ok := card["number"]; ok {
			tb.Errorf("Raw still has card.number")
		}
	}
	if pan := digitsOf(ev.Card.PAN); pan != "" {
		if bytes.Contains(ev.Raw, []byte(pan)) || bytes.Contains(ev.Cardholder.Address, []byte(pan)) {
			tb.Errorf("Raw or Address contains the PAN")
		}
	}
}

// sadNames is the SAD list of the contract, normalized independently of the
// package's own table.
var sadNames = []string{"cvv", "cvc", "cvv2", "cvc2", "cvn", "cid", "card_verification", "card_verification_value",
	"card_verification_code", "security_code", "track1", "track2", "track_data", "track", "magstripe", "pin", "pin_block", "pinblock"}

func isSAD(key string) bool {
	norm := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(key))
	for _, s := range sadNames {
		if norm == strings.ReplaceAll(s, "_", "") {
			return true
		}
	}
	return false
}

func findSADKey(v any) (string, bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if isSAD(k) {
				return k, true
			}
			if k, ok := findSADKey(c); ok {
				return k, true
			}
		}
	case []any:
		for _, c := range v {
			if k, ok := findSADKey(c); ok {
				return k, true
			}
		}
	}
	return "", false
}

func digitsOf(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
