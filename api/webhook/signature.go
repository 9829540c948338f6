package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scheme names, as written in a webhook source's configuration.
const (
	SchemeStripe   = "stripe"
	SchemeStandard = "standard"
)

// ErrSignature is wrapped by every error that means the request must be
// answered 401: a missing, repeated or malformed signature header, a timestamp
// outside the tolerance, or no signature matching any secret. The wrapping
// message says which of these happened, never which secret matched.
var ErrSignature = errors.New("invalid webhook signature")

const (
	// maxHeaderLen caps the length of any signature header value we parse.
	// Real headers are under 300 bytes even with a rotated secret.
	maxHeaderLen = 4096
	// maxSignatures caps how many signatures one request may carry; a
	// request with more is rejected, so the HMAC comparisons per request are
	// bounded by maxSignatures times the number of configured secrets.
	maxSignatures = 32
	// maxHeaderElements caps the comma-separated elements of a
	// Stripe-Signature header (t, v1 and other schemes together).
	maxHeaderElements = 2*maxSignatures + 1
	// maxWebhookIDLen caps the webhook-id header of Standard Webhooks.
	maxWebhookIDLen = 256
	// standardSecretPrefix precedes the base64 key of a Standard Webhooks
	// secret.
	standardSecretPrefix = "whsec_"
	// minStandardKeyLen is the minimum decoded length of a Standard Webhooks
	// key, 128 bits.
	minStandardKeyLen = 16
)

// ParseSecret checks, at configuration load time, that secret is usable with
// scheme: for [SchemeStripe] a non-empty string without whitespace or control
// characters (used as the HMAC key exactly as written, "whsec_" included); for
// [SchemeStandard] "whsec_" followed by standard, padded base64 of at least 16
// bytes. The error never contains the secret.
func ParseSecret(scheme, secret string) error {
	switch scheme {
	case SchemeStripe:
		return checkStripeSecret(secret)
	case SchemeStandard:
		_, err := standardKey(secret)
		return err
	default:
		return fmt.Errorf("failed to parse webhook secret: unknown scheme %q", scheme)
	}
}

func checkStripeSecret(secret string) error {
	if secret == "" {
		return errors.New("failed to parse stripe webhook secret: empty")
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; c <= ' ' || c == 0x7f {
			return errors.New("failed to parse stripe webhook secret: contains whitespace or control characters")
		}
	}
	return nil
}

// standardKey returns the HMAC key of a Standard Webhooks secret.
func standardKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, standardSecretPrefix)
	if !ok {
		return nil, errors.New("failed to parse standard webhook secret: missing whsec_ prefix")
	}
	key, err := decodeBase64(b64)
	if err != nil {
		return nil, fmt.Errorf("failed to parse standard webhook secret: %w", err)
	}
	if len(key) < minStandardKeyLen {
		return nil, fmt.Errorf("failed to parse standard webhook secret: key is %d bytes, want at least %d", len(key), minStandardKeyLen)
	}
	return key, nil
}

// VerifyStripe authenticates a Stripe webhook. The Stripe-Signature header
// must be exactly one line of the form "t=<unix seconds>,v1=<hex>[,v1=<hex>…]"
// in which every element is key=value with a lower-case alphanumeric key;
// elements of other schemes (v0, …) are ignored, but at least one v1 is
// required and at most 32 are allowed. The request is accepted when some v1
// equals HMAC-SHA256(secret, "<t>.<body>") for some secret, the secret being
// used exactly as configured ("whsec_…" included), and |now − t| ≤ tolerance.
//
// secrets lists the source's secrets, newest first; each must satisfy
// [ParseSecret] and tolerance must be positive, otherwise the error does not
// wrap [ErrSignature]. Every rejection of the request wraps ErrSignature.
// h is expected to have canonical keys, as net/http builds it.
func VerifyStripe(h http.Header, body []byte, secrets []string, tolerance time.Duration, now time.Time) error {
	if len(secrets) == 0 {
		return errors.New("failed to verify stripe signature: no secrets configured")
	}
	for _, s := range secrets {
		if err := checkStripeSecret(s); err != nil {
			return fmt.Errorf("failed to verify stripe signature: %w", err)
		}
	}
	if tolerance <= 0 {
		return errors.New("failed to verify stripe signature: tolerance must be positive")
	}
	v, err := singleHeader(h, "Stripe-Signature")
	if err != nil {
		return fmt.Errorf("failed to verify stripe signature: %w", err)
	}
	ts, sigs, err := parseStripeHeader(v)
	if err != nil {
		return fmt.Errorf("failed to verify stripe signature: %w", err)
	}
	if err := checkTimestamp(ts, tolerance, now); err != nil {
		return fmt.Errorf("failed to verify stripe signature: %w", err)
	}
	for _, secret := range secrets {
		want := signedMAC([]byte(secret), body, ts)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return nil
			}
		}
	}
	return fmt.Errorf("failed to verify stripe signature: no signature matches: %w", ErrSignature)
}

// parseStripeHeader returns the canonical timestamp string and the decoded v1
// signatures of a Stripe-Signature header value.
func parseStripeHeader(v string) (ts string, sigs [][]byte, err error) {
	if strings.Count(v, ",")+1 > maxHeaderElements {
		return "", nil, fmt.Errorf("too many header elements: %w", ErrSignature)
	}
	for elem := range strings.SplitSeq(v, ",") {
		key, val, ok := strings.Cut(elem, "=")
		if !ok || !isSchemeName(key) || val == "" || strings.Contains(val, "=") {
			return "", nil, fmt.Errorf("malformed header element: %w", ErrSignature)
		}
		switch key {
		case "t":
			if ts != "" {
				return "", nil, fmt.Errorf("repeated timestamp: %w", ErrSignature)
			}
			if !isCanonicalUint(val) {
				return "", nil, fmt.Errorf("malformed timestamp: %w", ErrSignature)
			}
			ts = val
		case "v1":
			if len(sigs) == maxSignatures {
				return "", nil, fmt.Errorf("more than %d signatures: %w", maxSignatures, ErrSignature)
			}
			sig, err := hex.DecodeString(val)
			if err != nil || len(sig) != sha256.Size {
				return "", nil, fmt.Errorf("malformed v1 signature: %w", ErrSignature)
			}
			sigs = append(sigs, sig)
		default:
			// Another scheme (v0 is Stripe's test-mode legacy one): not
			// something we verify, and never enough on its own.
		}
	}
	if ts == "" {
		return "", nil, fmt.Errorf("missing timestamp: %w", ErrSignature)
	}
	if len(sigs) == 0 {
		return "", nil, fmt.Errorf("no v1 signature: %w", ErrSignature)
	}
	return ts, sigs, nil
}

// VerifyStandard authenticates a Standard Webhooks request and returns its
// webhook-id. The three headers must each appear exactly once:
// webhook-id (1 to 256 printable ASCII characters, no spaces or dots: see
// signedMAC), webhook-timestamp
// (unix seconds, decimal digits without sign or leading zeros) and
// webhook-signature (1 to 32 space-separated "<version>,<signature>"
// elements; v1 signatures are standard base64 of 32 bytes, other versions such
// as v1a are ignored, at least one v1 is required). The request is accepted
// when some v1 equals HMAC-SHA256(key, "<id>.<timestamp>.<body>") for the key
// of some secret and |now − timestamp| ≤ tolerance.
//
// secrets lists the source's secrets ("whsec_<base64>"), newest first; each
// must satisfy [ParseSecret] and tolerance must be positive, otherwise the
// error does not wrap [ErrSignature]. Every rejection of the request,
// including a missing header, wraps ErrSignature. h is expected to have
// canonical keys, as net/http builds it.
func VerifyStandard(h http.Header, body []byte, secrets []string, tolerance time.Duration, now time.Time) (msgID string, err error) {
	if len(secrets) == 0 {
		return "", errors.New("failed to verify standard webhook signature: no secrets configured")
	}
	keys := make([][]byte, 0, len(secrets))
	for _, s := range secrets {
		k, err := standardKey(s)
		if err != nil {
			return "", fmt.Errorf("failed to verify standard webhook signature: %w", err)
		}
		keys = append(keys, k)
	}
	if tolerance <= 0 {
		return "", errors.New("failed to verify standard webhook signature: tolerance must be positive")
	}

	id, err := singleHeader(h, "Webhook-Id")
	if err != nil {
		return "", fmt.Errorf("failed to verify standard webhook signature: webhook-id: %w", err)
	}
	if len(id) > maxWebhookIDLen || !isVisibleASCII(id) || strings.Contains(id, ".") {
		return "", fmt.Errorf("failed to verify standard webhook signature: malformed webhook-id: %w", ErrSignature)
	}
	ts, err := singleHeader(h, "Webhook-Timestamp")
	if err != nil {
		return "", fmt.Errorf("failed to verify standard webhook signature: webhook-timestamp: %w", err)
	}
	if !isCanonicalUint(ts) {
		return "", fmt.Errorf("failed to verify standard webhook signature: malformed webhook-timestamp: %w", ErrSignature)
	}
	sv, err := singleHeader(h, "Webhook-Signature")
	if err != nil {
		return "", fmt.Errorf("failed to verify standard webhook signature: webhook-signature: %w", err)
	}
	sigs, err := parseStandardSignatures(sv)
	if err != nil {
		return "", fmt.Errorf("failed to verify standard webhook signature: %w", err)
	}
	if err := checkTimestamp(ts, tolerance, now); err != nil {
		return "", fmt.Errorf("failed to verify standard webhook signature: %w", err)
	}
	for _, key := range keys {
		want := signedMAC(key, body, id, ts)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("failed to verify standard webhook signature: no signature matches: %w", ErrSignature)
}

// parseStandardSignatures decodes the v1 signatures of a webhook-signature
// header value.
func parseStandardSignatures(v string) ([][]byte, error) {
	if strings.Count(v, " ")+1 > maxSignatures {
		return nil, fmt.Errorf("more than %d signatures: %w", maxSignatures, ErrSignature)
	}
	var sigs [][]byte
	for elem := range strings.SplitSeq(v, " ") {
		version, val, ok := strings.Cut(elem, ",")
		if !ok || !isSchemeName(version) || val == "" || strings.Contains(val, ",") {
			return nil, fmt.Errorf("malformed webhook-signature element: %w", ErrSignature)
		}
		if version != "v1" {
			continue // e.g. v1a, asymmetric signatures we have no key for
		}
		sig, err := decodeBase64(val)
		if err != nil || len(sig) != sha256.Size {
			return nil, fmt.Errorf("malformed v1 signature: %w", ErrSignature)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("no v1 signature: %w", ErrSignature)
	}
	return sigs, nil
}

// decodeBase64 decodes standard, padded base64 and accepts only its
// canonical spelling: even the Strict decoder skips '\r' and '\n' and so
// would accept many spellings of one value.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		// The base64 error names an offset, never the input.
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("non-canonical base64")
	}
	return b, nil
}

// signedMAC returns HMAC-SHA256(key, prefix[0] "." prefix[1] "." … "." body).
// Both schemes sign their header fields and the body joined by dots, which is
// only unambiguous if no field but the body can contain a dot: otherwise
// (id "a.5", t "6", body B) and (id "a", t "5", body "6.B") would share one
// signature. Callers therefore pass only dot-free fields: timestamps are
// digits, and Standard Webhooks ids with a dot are rejected.
func signedMAC(key, body []byte, prefix ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range prefix {
		m.Write([]byte(p))
		m.Write([]byte{'.'})
	}
	m.Write(body)
	return m.Sum(nil)
}

// checkTimestamp rejects a timestamp (canonical decimal unix seconds) further
// than tolerance from now, in the past or in the future.
func checkTimestamp(ts string, tolerance time.Duration, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("malformed timestamp: %w", ErrSignature)
	}
	// Sub saturates, so absurd timestamps land far outside any tolerance.
	d := now.Sub(time.Unix(sec, 0))
	if d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp outside tolerance: %w", ErrSignature)
	}
	return nil
}

// singleHeader returns the only value of a header, which must be present,
// non-empty, not repeated and at most maxHeaderLen bytes long.
func singleHeader(h http.Header, key string) (string, error) {
	vs := h[key]
	switch {
	case len(vs) == 0 || (len(vs) == 1 && vs[0] == ""):
		return "", fmt.Errorf("missing header: %w", ErrSignature)
	case len(vs) > 1:
		return "", fmt.Errorf("repeated header: %w", ErrSignature)
	case len(vs[0]) > maxHeaderLen:
		return "", fmt.Errorf("header too long: %w", ErrSignature)
	}
	return vs[0], nil
}

// isCanonicalUint reports whether s is a decimal integer without sign or
// leading zeros that fits in an int64, so that it is the one spelling of its
// value that a signer would produce.
func isCanonicalUint(s string) bool {
	if s == "" || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isSchemeName reports whether s is a non-empty run of [a-z0-9], the form of
// signature scheme and version names ("t", "v1", "v0", "v1a").
func isSchemeName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isVisibleASCII reports whether s is non-empty and made only of printable
// ASCII characters other than space.
func isVisibleASCII(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
