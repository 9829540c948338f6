package webhook_test

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v85/webhook"

	"github.com/paytrail/paytrail/api/webhook"
)

const (
	stripeSecretNew = "whsec_NewSampleSecretForTests0000000000"
	stripeSecretOld = "whsec_OldSampleSecretForTests1111111111"
	tolerance       = 5 * time.Minute
)

var (
	// Standard Webhooks secrets: "whsec_" and base64 of 32 bytes.
	standardSecretNew = "whsec_" + base64.StdEncoding.EncodeToString([]byte("new-standard-webhooks-key-32byte"))
	standardSecretOld = "whsec_" + base64.StdEncoding.EncodeToString([]byte("old-standard-webhooks-key-32byte"))
	standardSecretBad = "whsec_" + base64.StdEncoding.EncodeToString([]byte("not-a-configured-key-of-32-bytes"))
	// now is the verifier's clock in every test: the sample events' time.
	now = time.Unix(1795000000, 0)
)

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// stripeHeader signs body as Stripe does, using Stripe's own library.
func stripeHeader(body []byte, secret string, ts time.Time) string {
	return stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: body, Secret: secret, Timestamp: ts,
	}).Header
}

// stripeV1 returns the hex v1 signature of body.
func stripeV1(body []byte, secret string, ts time.Time) string {
	return hex.EncodeToString(stripewebhook.ComputeSignature(ts, body, secret))
}

func TestVerifyStripe(t *testing.T) {
	body := readFixture(t, "stripe-charge-succeeded.json")
	ts := strconv.FormatInt(now.Unix(), 10)
	good := stripeV1(body, stripeSecretNew, now)
	other := stripeV1(body, "whsec_SomebodyElse", now)
	bad := func(n int) string { return strings.Repeat("v1="+other+",", n) }

	for _, tc := range []struct {
		name   string
		header []string // Stripe-Signature values; nil for none
		body   []byte   // defaults to body
		ok     bool
	}{
		{name: "valid", header: []string{stripeHeader(body, stripeSecretNew, now)}, ok: true},
		{name: "second secret (rotation)", header: []string{stripeHeader(body, stripeSecretOld, now)}, ok: true},
		{name: "wrong secret", header: []string{stripeHeader(body, "whsec_SomebodyElse", now)}},
		{name: "tampered body", header: []string{stripeHeader(body, stripeSecretNew, now)}, body: append([]byte(" "), body...)},
		{name: "stale", header: []string{stripeHeader(body, stripeSecretNew, now.Add(-tolerance-time.Second))}},
		{name: "oldest accepted", header: []string{stripeHeader(body, stripeSecretNew, now.Add(-tolerance))}, ok: true},
		{name: "future", header: []string{stripeHeader(body, stripeSecretNew, now.Add(tolerance+time.Second))}},
		{name: "newest accepted", header: []string{stripeHeader(body, stripeSecretNew, now.Add(tolerance))}, ok: true},
		{name: "missing header"},
		{name: "empty header", header: []string{""}},
		{name: "repeated header", header: []string{stripeHeader(body, stripeSecretNew, now), stripeHeader(body, stripeSecretNew, now)}},
		{name: "garbage", header: []string{"garbage"}},
		{name: "no timestamp", header: []string{"v1=" + good}},
		{name: "no signature", header: []string{"t=" + ts}},
		{name: "two timestamps", header: []string{"t=" + ts + ",t=" + ts + ",v1=" + good}},
		{name: "timestamp with leading zero", header: []string{"t=0" + ts + ",v1=" + good}},
		{name: "signed timestamp", header: []string{"t=+" + ts + ",v1=" + good}},
		{name: "space after comma", header: []string{"t=" + ts + ", v1=" + good}},
		{name: "non-hex v1", header: []string{"t=" + ts + ",v1=" + strings.Repeat("zz", 32)}},
		{name: "short v1", header: []string{"t=" + ts + ",v1=" + good[:62]}},
		{name: "empty element", header: []string{"t=" + ts + ",,v1=" + good}},
		{name: "value with equals", header: []string{"t=" + ts + ",v1=" + good + "="}},
		{name: "multiple v1, second matches", header: []string{"t=" + ts + ",v1=" + other + ",v1=" + good}, ok: true},
		{name: "upper-case hex", header: []string{"t=" + ts + ",v1=" + strings.ToUpper(good)}, ok: true},
		{name: "v0 ignored beside v1", header: []string{"t=" + ts + ",v0=" + good + ",v1=" + good}, ok: true},
		{name: "v0 only", header: []string{stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
			Payload: body, Secret: stripeSecretNew, Timestamp: now, Scheme: "v0"}).Header}},
		{name: "32 signatures", header: []string{"t=" + ts + "," + bad(31) + "v1=" + good}, ok: true},
		{name: "33 signatures", header: []string{"t=" + ts + "," + bad(32) + "v1=" + good}},
		{name: "huge header", header: []string{"t=" + ts + ",v1=" + good + ",x=" + strings.Repeat("a", 5000)}},
		{name: "absurd timestamp", header: []string{"t=999999999999999999,v1=" + good}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.header {
				h.Add("Stripe-Signature", v)
			}
			b := body
			if tc.body != nil {
				b = tc.body
			}
			err := webhook.VerifyStripe(h, b, []string{stripeSecretNew, stripeSecretOld}, tolerance, now)
			if tc.ok && err != nil {
				t.Fatalf("VerifyStripe() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, webhook.ErrSignature) {
				t.Fatalf("VerifyStripe() = %v, want ErrSignature", err)
			}
			if err != nil && (strings.Contains(err.Error(), "whsec") || strings.Contains(err.Error(), good)) {
				t.Errorf("error %q leaks a secret or signature", err)
			}
		})
	}
}

func TestVerifyMisconfigured(t *testing.T) {
	body := readFixture(t, "stripe-charge-succeeded.json")
	h := http.Header{"Stripe-Signature": {stripeHeader(body, stripeSecretNew, now)}}
	sh := standardHeaders(t, "msg_1", now, body, standardSecretNew)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"stripe no secrets", webhook.VerifyStripe(h, body, nil, tolerance, now)},
		{"stripe empty secret", webhook.VerifyStripe(h, body, []string{stripeSecretNew, ""}, tolerance, now)},
		{"stripe zero tolerance", webhook.VerifyStripe(h, body, []string{stripeSecretNew}, 0, now)},
		{"standard no secrets", second(webhook.VerifyStandard(sh, body, nil, tolerance, now))},
		{"standard bad secret", second(webhook.VerifyStandard(sh, body, []string{standardSecretNew, "whsec_!!"}, tolerance, now))},
		{"standard negative tolerance", second(webhook.VerifyStandard(sh, body, []string{standardSecretNew}, -time.Second, now))},
	} {
		if tc.err == nil || errors.Is(tc.err, webhook.ErrSignature) {
			t.Errorf("%s: err = %v, want a configuration error that is not ErrSignature", tc.name, tc.err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// standardHeaders signs body with the Standard Webhooks reference library.
func standardHeaders(tb testing.TB, id string, ts time.Time, body []byte, secret string) http.Header {
	tb.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		tb.Fatal(err)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

func TestVerifyStandard(t *testing.T) {
	body := readFixture(t, "generic-payment-captured.json")
	const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	valid := standardHeaders(t, id, now, body, standardSecretNew)
	goodSig := valid.Get("Webhook-Signature")
	badSig := standardHeaders(t, id, now, body, standardSecretBad).Get("Webhook-Signature")
	with := func(key string, vals ...string) http.Header {
		h := valid.Clone()
		h.Del(key)
		for _, v := range vals {
			h.Add(key, v)
		}
		return h
	}

	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{
		{name: "valid", h: valid, ok: true},
		{name: "second secret (rotation)", h: standardHeaders(t, id, now, body, standardSecretOld), ok: true},
		{name: "wrong secret", h: standardHeaders(t, id, now, body, standardSecretBad)},
		{name: "tampered body", h: valid, body: append(append([]byte{}, body...), ' ')},
		{name: "tampered id", h: with("Webhook-Id", "msg_other")},
		{name: "tampered timestamp", h: with("Webhook-Timestamp", strconv.FormatInt(now.Unix()+1, 10))},
		{name: "stale", h: standardHeaders(t, id, now.Add(-tolerance-time.Second), body, standardSecretNew)},
		{name: "oldest accepted", h: standardHeaders(t, id, now.Add(-tolerance), body, standardSecretNew), ok: true},
		{name: "future", h: standardHeaders(t, id, now.Add(tolerance+time.Second), body, standardSecretNew)},
		{name: "newest accepted", h: standardHeaders(t, id, now.Add(tolerance), body, standardSecretNew), ok: true},
		{name: "missing webhook-id", h: with("Webhook-Id")},
		{name: "missing webhook-timestamp", h: with("Webhook-Timestamp")},
		{name: "missing webhook-signature", h: with("Webhook-Signature")},
		{name: "no headers", h: http.Header{}},
		{name: "repeated webhook-signature", h: with("Webhook-Signature", goodSig, goodSig)},
		{name: "id with space", h: standardHeaders(t, "msg 1", now, body, standardSecretNew)},
		{name: "id with dot", h: standardHeaders(t, "msg.1", now, body, standardSecretNew)},
		{name: "timestamp with leading zero", h: with("Webhook-Timestamp", "0"+strconv.FormatInt(now.Unix(), 10))},
		{name: "timestamp not a number", h: with("Webhook-Timestamp", "yesterday")},
		{name: "garbage signature", h: with("Webhook-Signature", "garbage")},
		{name: "signature without value", h: with("Webhook-Signature", "v1,")},
		{name: "signature not base64", h: with("Webhook-Signature", "v1,!!!!")},
		{name: "signature with CR", h: with("Webhook-Signature", goodSig[:10]+"\r"+goodSig[10:])},
		{name: "signature too short", h: with("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 31)))},
		{name: "double space", h: with("Webhook-Signature", badSig+"  "+goodSig)},
		{name: "trailing space", h: with("Webhook-Signature", goodSig+" ")},
		{name: "multiple v1, second matches", h: with("Webhook-Signature", badSig+" "+goodSig), ok: true},
		{name: "v1a ignored beside v1", h: with("Webhook-Signature", "v1a,"+strings.TrimPrefix(badSig, "v1,")+" "+goodSig), ok: true},
		{name: "v1a only", h: with("Webhook-Signature", "v1a,"+strings.TrimPrefix(goodSig, "v1,"))},
		{name: "32 signatures", h: with("Webhook-Signature", strings.Repeat(badSig+" ", 31)+goodSig), ok: true},
		{name: "33 signatures", h: with("Webhook-Signature", strings.Repeat(badSig+" ", 32)+goodSig)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if tc.body != nil {
				b = tc.body
			}
			got, err := webhook.VerifyStandard(tc.h, b, []string{standardSecretNew, standardSecretOld}, tolerance, now)
			if tc.ok {
				if err != nil {
					t.Fatalf("VerifyStandard() = %v, want nil", err)
				}
				if want := tc.h.Get("Webhook-Id"); got != want {
					t.Errorf("VerifyStandard() id = %q, want %q", got, want)
				}
				return
			}
			if !errors.Is(err, webhook.ErrSignature) || got != "" {
				t.Fatalf("VerifyStandard() = %q, %v; want ErrSignature", got, err)
			}
			if strings.Contains(err.Error(), "whsec") {
				t.Errorf("error %q leaks a secret", err)
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		scheme, secret string
		ok             bool
	}{
		{"stripe", stripeSecretNew, true},
		{"stripe", "anything-non-empty", true},
		{"stripe", "", false},
		{"stripe", "whsec_abc ", false},
		{"stripe", "whsec_a\tb", false},
		{"standard", standardSecretNew, true},
		{"standard", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), true},
		{"standard", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 15)), false},
		{"standard", strings.TrimPrefix(standardSecretNew, "whsec_"), false},
		{"standard", "whsec_not base64!", false},
		{"standard", standardSecretNew[:12] + "\n" + standardSecretNew[12:], false},
		{"standard", "whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), false}, // unpadded
		{"standard", "", false},
		{"hmac", stripeSecretNew, false},
		{"", stripeSecretNew, false},
	} {
		err := webhook.ParseSecret(tc.scheme, tc.secret)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSecret(%q, %q) = %v, want ok=%v", tc.scheme, tc.secret, err, tc.ok)
		}
		if err != nil && tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("ParseSecret(%q) error %q contains the secret", tc.scheme, err)
		}
	}
}

// The reference libraries accept what we accept: a sanity check that the
// test vectors above are what real senders produce.
func TestReferenceLibrariesAgree(t *testing.T) {
	body := readFixture(t, "stripe-charge-succeeded.json")
	if err := stripewebhook.ValidatePayloadIgnoringTolerance(body, stripeHeader(body, stripeSecretNew, now), stripeSecretNew); err != nil {
		t.Errorf("stripe-go rejects its own signature: %v", err)
	}
	wh, err := standardwebhooks.NewWebhook(standardSecretNew)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.VerifyIgnoringTimestamp(body, standardHeaders(t, "msg_1", now, body, standardSecretNew)); err != nil {
		t.Errorf("standard-webhooks rejects its own signature: %v", err)
	}
}
