package webhook_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/paytrail/paytrail/api/webhook"
)

// A handler verifies the signature first, then normalizes the body.
func ExampleVerifyStandard() {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("an example key of 32 bytes......"))
	if err := webhook.ParseSecret(webhook.SchemeStandard, secret); err != nil {
		fmt.Println(err)
		return
	}
	body := []byte(`{"id":"evt_1","type":"payment.captured","occurred_at":"2026-11-20T14:03:11Z",` +
		`"transaction_id":"pay_1","amount":4550,"currency":"usd","card":{"number":"4111 1111 1111 1111","cvc":"123"}}`)
	now := time.Unix(1795000000, 0)

	// What the sender puts on the request, here with the reference library.
	wh, _ := standardwebhooks.NewWebhook(secret)
	sig, _ := wh.Sign("msg_1", now, body)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)

	id, err := webhook.VerifyStandard(h, body, []string{secret}, 5*time.Minute, now)
	if errors.Is(err, webhook.ErrSignature) {
		fmt.Println("401")
		return
	}
	ev, err := webhook.NormalizeGeneric(body, "m_default")
	if errors.Is(err, webhook.ErrMalformed) {
		fmt.Println("400:", err)
		return
	}
	fmt.Println(id, ev.Type, ev.Amount, ev.Currency, ev.MerchantID, ev.Card.Last4, ev.SADRemoved)
	fmt.Println(string(ev.Raw))
	// Output:
	// msg_1 payment.captured 4550 USD m_default 1111 true
	// {"amount":4550,"card":{},"currency":"usd","id":"evt_1","occurred_at":"2026-11-20T14:03:11Z","transaction_id":"pay_1","type":"payment.captured"}
}

func ExampleNormalizeGeneric_fieldError() {
	_, err := webhook.NormalizeGeneric([]byte(`{"id":"evt_1","type":"payment.captured","occurred_at":"2026-11-20T14:03:11Z",`+
		`"transaction_id":"pay_1","amount":12.5,"currency":"USD","merchant_id":"m_1"}`), "")
	var fe *webhook.FieldError
	fmt.Println(errors.As(err, &fe), fe.Field, errors.Is(err, webhook.ErrMalformed))
	fmt.Println(err)
	// Output:
	// true amount true
	// invalid field amount: must be a JSON integer
}
