package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v85/webhook"

	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/ledger/money"
)

func FuzzVerifyStripeHeader(f *testing.F) {
	for _, body := range webhook.Fixtures(f, "stripe-") {
		f.Add(stripeHeader(body, stripeSecretNew, now), body)
		f.Add(stripeHeader(body, stripeSecretOld, now.Add(-time.Minute))+",v0=00", body)
	}
	f.Add("t=1795000000,v1=,v1=zz", []byte("{}"))
	f.Add("garbage", []byte{})
	secrets := []string{stripeSecretNew, stripeSecretOld}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		h := http.Header{"Stripe-Signature": {header}}
		err := webhook.VerifyStripe(h, body, secrets, tolerance, now)
		if err != nil {
			if !errors.Is(err, webhook.ErrSignature) {
				t.Fatalf("rejection does not wrap ErrSignature: %v", err)
			}
			return
		}
		// What we accept, Stripe's own (more lenient) verifier accepts.
		for _, s := range secrets {
			if stripewebhook.ValidatePayloadIgnoringTolerance(body, header, s) == nil {
				return
			}
		}
		t.Fatalf("accepted a header stripe-go rejects: %q", header)
	})
}

func FuzzVerifyStandardHeaders(f *testing.F) {
	for i, body := range webhook.Fixtures(f, "generic-") {
		id := "msg_" + strings.Repeat("x", i+1)
		h := standardHeaders(f, id, now, body, standardSecretNew)
		f.Add(id, h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature"), body)
		old := standardHeaders(f, id, now, body, standardSecretOld)
		f.Add(id, old.Get("Webhook-Timestamp"), "v1a,AAAA "+old.Get("Webhook-Signature"), body)
	}
	f.Add("", "", "", []byte{})
	f.Add("msg.1", "01795000000", "v1,,v1", []byte("{}"))
	secrets := []string{standardSecretNew, standardSecretOld}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		for k, v := range map[string]string{"Webhook-Id": id, "Webhook-Timestamp": ts, "Webhook-Signature": sig} {
			if v != "" {
				h.Set(k, v)
			}
		}
		got, err := webhook.VerifyStandard(h, body, secrets, tolerance, now)
		if err != nil {
			if !errors.Is(err, webhook.ErrSignature) || got != "" {
				t.Fatalf("rejection = %q, %v; want ErrSignature", got, err)
			}
			return
		}
		if got != id {
			t.Fatalf("id = %q, want %q", got, id)
		}
		// What we accept, the reference library accepts.
		for _, s := range secrets {
			wh, err := standardwebhooks.NewWebhook(s)
			if err != nil {
				t.Fatal(err)
			}
			if wh.VerifyIgnoringTimestamp(body, h) == nil {
				return
			}
		}
		t.Fatalf("accepted headers the reference library rejects: %q %q %q", id, ts, sig)
	})
}

func FuzzNormalizeGeneric(f *testing.F) {
	for _, b := range webhook.Fixtures(f, "") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := webhook.NormalizeGeneric(body, "m_default")
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		checkEvent(t, ev)
		if ev.Type == webhook.EventOpaque {
			t.Fatal("generic event is opaque")
		}
		if ev.Card.PAN != "" {
			if n := len(digitsOf(ev.Card.PAN)); n < 12 || n > 19 {
				t.Fatalf("PAN has %d digits", n)
			}
		}
	})
}

func FuzzNormalizeStripe(f *testing.F) {
	for _, b := range webhook.Fixtures(f, "") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := webhook.NormalizeStripe(body, "acct_default")
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		checkEvent(t, ev)
		if ev.Card.PAN != "" {
			t.Fatal("stripe event with a PAN")
		}
	})
}

// checkEvent checks the invariants of a successfully normalized event.
func checkEvent(t *testing.T, ev *webhook.Event) {
	t.Helper()
	checkRaw(t, ev)
	if ev.EventID == "" || ev.MerchantID == "" || ev.ProcessorType == "" {
		t.Fatalf("missing id, merchant or type: %+v", ev)
	}
	if ev.OccurredAt.Location() != time.UTC || ev.OccurredAt.IsZero() {
		t.Fatalf("OccurredAt %v not a UTC time", ev.OccurredAt)
	}
	if ev.Type != webhook.EventOpaque {
		if c, err := money.NormalizeCurrency(ev.Currency); err != nil || c != ev.Currency {
			t.Fatalf("currency %q is not a normalized ISO 4217 code", ev.Currency)
		}
		if ev.Amount < 0 || ev.Amount > 1<<53 {
			t.Fatalf("amount %d out of range", ev.Amount)
		}
		if ev.TransactionID == "" || ev.Status == "" {
			t.Fatalf("mapped event without transaction id or status")
		}
	}
	if len(ev.Cardholder.Address) > 0 && !json.Valid(ev.Cardholder.Address) {
		t.Fatal("Address is not JSON")
	}
	if ev.Cardholder.Address != nil && bytes.HasPrefix(ev.Cardholder.Address, []byte("null")) {
		t.Fatal("Address is null")
	}
}
