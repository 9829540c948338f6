package webhook_test

import (
	"net/http"
	"testing"

	"github.com/paytrail/paytrail/api/webhook"
)

func BenchmarkVerifyStripe(b *testing.B) {
	body := readFixture(b, "stripe-charge-succeeded.json")
	h := http.Header{"Stripe-Signature": {stripeHeader(body, stripeSecretOld, now)}}
	secrets := []string{stripeSecretNew, stripeSecretOld} // the worse case: second secret matches
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := webhook.VerifyStripe(h, body, secrets, tolerance, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyStandard(b *testing.B) {
	body := readFixture(b, "generic-payment-captured.json")
	h := standardHeaders(b, "msg_1", now, body, standardSecretOld)
	secrets := []string{standardSecretNew, standardSecretOld}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := webhook.VerifyStandard(h, body, secrets, tolerance, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeGeneric(b *testing.B) {
	body := readFixture(b, "generic-payment-captured.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := webhook.NormalizeGeneric(body, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeStripe(b *testing.B) {
	body := readFixture(b, "stripe-charge-succeeded.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := webhook.NormalizeStripe(body, ""); err != nil {
			b.Fatal(err)
		}
	}
}
