package webhook_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/api/webhook"
)

func TestStripSAD(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		removed  bool
	}{
		{`{"a":1}`, `{"a":1}`, false},
		{`{"cvc":"123","a":1}`, `{"a":1}`, true},
		{`{"CVV":"123"}`, `{}`, true},
		{`{"Cvc2":null}`, `{}`, true},
		{`{"cvv_2":"1","c-v-n":"2","CID":"3"}`, `{}`, true},
		{`{"CARD-VERIFICATION-VALUE":"1","card_verification_code":"2","cardVerification":"3"}`, `{}`, true},
		{`{"Security_Code":"1","security code":"2"}`, `{}`, true},
		{`{"track1":"%B4111","TRACK_2":";4111=","trackData":"x","Track":"y","mag_stripe":"z"}`, `{}`, true},
		{`{"PIN":"1234","pin_block":"ab","PinBlock":"cd","pin-block":"ef"}`, `{}`, true},
		{`{"card":{"details":{"deep":[{"x":1},{"Cvc":"999","y":2}]}}}`, `{"card":{"details":{"deep":[{"x":1},{"y":2}]}}}`, true},
		{`{"a":[[[{"pinblock":{"nested":"whole subtree goes"}}]]]}`, `{"a":[[[{}]]]}`, true},
		// Look-alikes that are not SAD stay.
		{`{"cvc_check":"pass","pinned":true,"tracking":"1Z","cvv_result":"M","pin_verified":false,"trackid":"t"}`,
			`{"cvc_check":"pass","cvv_result":"M","pin_verified":false,"pinned":true,"trackid":"t","tracking":"1Z"}`, false},
		// Values are never keys.
		{`{"note":"cvc","list":["pin"]}`, `{"list":["pin"],"note":"cvc"}`, false},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		removed := webhook.StripSAD(v)
		got, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want || removed != tc.removed {
			t.Errorf("StripSAD(%s) = %s, %v; want %s, %v", tc.in, got, removed, tc.want, tc.removed)
		}
	}
	// Scalars and nil are left alone.
	for _, v := range []any{nil, "cvc", json.Number("1"), true} {
		if webhook.StripSAD(v) {
			t.Errorf("StripSAD(%v) = true", v)
		}
	}
}

func TestNormalizeRemovesSAD(t *testing.T) {
	ev, err := webhook.NormalizeGeneric(readFixture(t, "generic-payment-refunded.json"), "m")
	if err != nil {
		t.Fatal(err)
	}
	checkRaw(t, ev)
	if !ev.SADRemoved {
		t.Error("SADRemoved = false, want true")
	}
	for _, v := range []string{`"321"`, "8F1A2B3C4D5E6F70", `"999"`, "5555555555554444="} {
		if bytes.Contains(ev.Raw, []byte(v)) {
			t.Errorf("Raw still contains SAD value %s", v)
		}
	}
	// What is not SAD stays.
	if !bytes.Contains(ev.Raw, []byte(`"terminal":{"emv":{"tags":[{}]}}`)) {
		t.Errorf("Raw lost non-SAD data: %s", ev.Raw)
	}

	ev, err = webhook.NormalizeGeneric(readFixture(t, "generic-payment-authorized-minimal.json"), "m")
	if err != nil || ev.SADRemoved {
		t.Errorf("minimal event: SADRemoved = %v, %v; want false", ev.SADRemoved, err)
	}

	body := editStripe(t, "stripe-charge-succeeded.json", func(m map[string]any) {
		sub(sub(object(m), "payment_method_details"), "card")["CVC"] = "424"
		object(m)["metadata"] = map[string]any{"Track-2": "x"}
	})
	ev, err = webhook.NormalizeStripe(body, "")
	if err != nil {
		t.Fatal(err)
	}
	checkRaw(t, ev)
	if !ev.SADRemoved || bytes.Contains(ev.Raw, []byte(`"424"`)) {
		t.Errorf("stripe: SADRemoved = %v, Raw %s", ev.SADRemoved, ev.Raw)
	}
	ev, err = webhook.NormalizeStripe(readFixture(t, "stripe-charge-succeeded.json"), "")
	if err != nil || ev.SADRemoved {
		t.Errorf("stripe sample: SADRemoved = %v, %v; want false", ev.SADRemoved, err)
	}
}

func TestPANNeverInRaw(t *testing.T) {
	const pan = "5555555555554444"
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		// redacted is whether PANRedacted must be set; kept is a string
		// that must still be in Raw.
		redacted bool
		kept     string
	}{
		{name: "sample", kept: `"order":"B-77"`},
		{name: "PAN without separators", edit: func(m map[string]any) { sub(m, "card")["number"] = pan }},
		{name: "PAN repeated in metadata", redacted: true, kept: `"order":"B-77"`, edit: func(m map[string]any) {
			sub(m, "metadata")["note"] = "card " + pan + " used"
		}},
		{name: "PAN with other separators in metadata", redacted: true, edit: func(m map[string]any) {
			sub(m, "metadata")["note"] = "5555-5555 5555-4444"
		}},
		{name: "PAN as a number", redacted: true, edit: func(m map[string]any) {
			sub(m, "metadata")["n"] = json.Number(pan)
		}},
		{name: "PAN as a key", redacted: true, kept: `"metadata":{"order":"B-77"}`, edit: func(m map[string]any) {
			sub(m, "metadata")[pan] = "x"
		}},
		{name: "PAN in the address", redacted: true, edit: func(m map[string]any) {
			sub(m, "cardholder")["address"] = map[string]any{"line1": pan, "country": "PL"}
		}},
		{name: "PAN in an array", redacted: true, edit: func(m map[string]any) {
			m["extra"] = []any{"a", []any{"x" + pan}}
		}},
		{name: "PAN completed by an escape", redacted: true, edit: func(m map[string]any) {
			// Raw writes "\x15" as \u0015, whose digits complete the PAN.
			sub(m, "card")["number"] = "0015 5555 5555 5"
			sub(m, "metadata")["note"] = "\x15555555555"
		}},
		{name: "other Luhn-valid card number", redacted: true, edit: func(m map[string]any) {
			sub(m, "metadata")["note"] = "4111 1111 1111 1111"
		}},
		{name: "Luhn-valid transaction id", redacted: true, edit: func(m map[string]any) {
			m["transaction_id"] = "4111111111111111"
		}},
		{name: "non-Luhn number stays", kept: "4111111111111112", edit: func(m map[string]any) {
			sub(m, "metadata")["order"] = "4111111111111112"
		}},
		{name: "long digit run stays", kept: "41111111111111110000", edit: func(m map[string]any) {
			sub(m, "metadata")["order"] = "41111111111111110000"
		}},
		{name: "uuid stays", kept: "12345678-1234-1234-1234-123456789012", edit: func(m map[string]any) {
			sub(m, "metadata")["order"] = "12345678-1234-1234-1234-123456789012"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := tc.edit
			if edit == nil {
				edit = func(map[string]any) {}
			}
			ev, err := webhook.NormalizeGeneric(editGeneric(t, edit), "")
			if err != nil {
				t.Fatal(err)
			}
			checkRaw(t, ev)
			for _, form := range []string{digitsOf(ev.Card.PAN), ev.Card.PAN} {
				if bytes.Contains(ev.Raw, []byte(form)) {
					t.Errorf("Raw contains the PAN: %s", ev.Raw)
				}
			}
			if ev.PANRedacted != tc.redacted {
				t.Errorf("PANRedacted = %v, want %v; Raw %s", ev.PANRedacted, tc.redacted, ev.Raw)
			}
			if !bytes.Contains(ev.Raw, []byte(tc.kept)) {
				t.Errorf("Raw lost %s: %s", tc.kept, ev.Raw)
			}
			if ev.TransactionID == "" || strings.Contains(ev.TransactionID, "redacted") {
				t.Errorf("structured field redacted: %q", ev.TransactionID)
			}
		})
	}
}
