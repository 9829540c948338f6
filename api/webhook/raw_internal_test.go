package webhook

import (
	"bytes"
	"testing"
)

// storedRef is what referenceRaw finds should be stored of a body.
type storedRef struct {
	raw, address            []byte
	sadRemoved, panRedacted bool
}

// referenceRaw computes Event.Raw, the generic billing address, SADRemoved
// and PANRedacted of body along the slow path that NormalizeGeneric and
// NormalizeStripe took before they had their own decoder and encoder: the
// encoding/json token walk, then the same removals, each walking the whole
// tree, then encoding/json.
func referenceRaw(t *testing.T, body []byte, generic bool) storedRef {
	t.Helper()
	root, err := referenceDecode(body)
	if err != nil {
		t.Fatalf("normalized a body the reference decoder rejects: %v", err)
	}
	var ref storedRef
	pan := ""
	if card, ok := root["card"].(map[string]any); ok && generic {
		if n, ok := card["number"].(string); ok {
			pan, _ = panDigits(n)
		}
		delete(card, "number")
	}
	ref.sadRemoved = StripSAD(root)
	r := panRedactor{pan: pan}
	r.redact(root)
	ref.panRedacted = r.hit
	if ref.raw, err = referenceEncode(root); err != nil {
		t.Fatal(err)
	}
	if !generic {
		return ref
	}
	addr, ok := root["billing_address"].(map[string]any)
	if holder, isObj := root["cardholder"].(map[string]any); isObj {
		if a, isObj := holder["address"].(map[string]any); isObj {
			addr, ok = a, true
		}
	}
	if ok {
		if ref.address, err = referenceEncode(addr); err != nil {
			t.Fatal(err)
		}
	}
	return ref
}

// FuzzRawMatchesReference holds what is stored of a body (Raw and the
// billing address) to the bytes of the encoding/json path, whatever the
// body holds: SAD keys at any depth and in any spelling, card numbers
// anywhere, escapes, unsorted keys, white space.
func FuzzRawMatchesReference(f *testing.F) {
	for _, b := range fixtures(f, "") {
		f.Add(b)
	}
	f.Add([]byte(`{"id":"e1","type":"payment.captured","occurred_at":"2026-11-20T14:03:11Z","transaction_id":"t1",` +
		`"amount":1,"currency":"usd","merchant_id":"m1","card":{"number":"4111-1111-1111-1111","CVV_2":"1"},` +
		`"cardholder":{"address":{"line1":"4111111111111111","z":"\u00e9\u2028"}},"billing_address":{"line1":"4111111111111111","z":"é\u2028"},` +
		`"metadata":{"deep":[[{"TRAC\u212a":{"x":1}},{"pin block":null,"note":"card 4111 1111 1111 1111","n":4111111111111111}]]},` +
		`"z":"<&>\"\\","a":[],"b":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, generic := range []bool{true, false} {
			var ev *Event
			var err error
			if generic {
				ev, err = NormalizeGeneric(body, "m_default")
			} else {
				ev, err = NormalizeStripe(body, "acct_default")
			}
			if err != nil {
				continue
			}
			ref := referenceRaw(t, body, generic)
			if !bytes.Equal(ev.Raw, ref.raw) {
				t.Fatalf("generic %v: Raw = %s, reference %s", generic, ev.Raw, ref.raw)
			}
			if generic && !bytes.Equal(ev.Cardholder.Address, ref.address) {
				t.Fatalf("Address = %s, reference %s", ev.Cardholder.Address, ref.address)
			}
			if ev.SADRemoved != ref.sadRemoved || ev.PANRedacted != ref.panRedacted {
				t.Fatalf("generic %v: SADRemoved %v, PANRedacted %v; reference %v, %v",
					generic, ev.SADRemoved, ev.PANRedacted, ref.sadRemoved, ref.panRedacted)
			}
		}
	})
}
