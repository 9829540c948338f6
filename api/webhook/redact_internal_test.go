package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/crypto"
)

func TestPanDigits(t *testing.T) {
	for _, tc := range []struct {
		pan, want string
		ok        bool
	}{
		{"5555 5555 5555 4444", "5555555555554444", true},
		{"5555-5555-5555-4444", "5555555555554444", true},
		{"555555555555", "555555555555", true},
		{"55555555555", "", false},
		{"55555555555555555555", "", false},
		{"5555.5555.5555.4444", "", false},
		{"５５５５５５５５５５５５", "", false}, // full-width digits
		{"", "", false},
	} {
		got, ok := panDigits(tc.pan)
		if got != tc.want || ok != tc.ok {
			t.Errorf("panDigits(%q) = %q, %v; want %q, %v", tc.pan, got, ok, tc.want, tc.ok)
		}
	}
}

// TestRedactAnySeparator puts card numbers written as people and
// processors write them into the body of an event, in values, keys and
// numbers, and checks that Raw keeps none of them: the encrypted raw
// payload must hold no PAN, however it was written.
func TestRedactAnySeparator(t *testing.T) {
	const other = "4111111111111111" // not the event's card
	for _, tc := range []struct {
		name, value string
	}{
		{"dots", "4111.1111.1111.1111"},
		{"underscores", "4111_1111_1111_1111"},
		{"slashes", "4111/1111/1111/1111"},
		{"double spaces", "4111  1111  1111  1111"},
		{"no-break spaces", "4111\u00a01111\u00a01111\u00a01111"},
		{"thin spaces", "4111\u20091111\u20091111\u20091111"},
		{"ideographic spaces", "4111\u30001111\u30001111\u30001111"},
		{"tabs", "4111\t1111\t1111\t1111"},
		{"full-width digits", "４１１１ １１１１ １１１１ １１１１"},
		{"with an expiry", "card 4111 1111 1111 1111 12/29"},
		{"event card, dots", "5555.5555.5555.4444"},
		{"event card, split by letters", "ref 5555 a 5555 b 5555 c 4444"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{
				"id": "evt_1", "type": "payment.captured", "occurred_at": "2026-11-20T14:03:11Z",
				"transaction_id": "pay_0001", "merchant_id": "m_bookshop", "amount": 4550, "currency": "USD",
				"card":     map[string]any{"number": "5555 5555 5555 4444", "brand": "mastercard"},
				"metadata": map[string]any{"note": tc.value, "list": []any{"x", tc.value}, tc.value: "key"},
			})
			if err != nil {
				t.Fatal(err)
			}
			ev, err := NormalizeGeneric(body, "")
			if err != nil {
				t.Fatal(err)
			}
			if !ev.PANRedacted {
				t.Errorf("PANRedacted = false")
			}
			raw := string(ev.Raw)
			if crypto.ContainsPAN(raw) || crypto.ContainsPANDigits(raw, other) || crypto.ContainsPANDigits(raw, "5555555555554444") {
				t.Errorf("Raw holds a card number: %s", raw)
			}
			if !strings.Contains(raw, `"note":"[redacted]"`) {
				t.Errorf("Raw lost the redacted member: %s", raw)
			}
		})
	}
}
