// Package webhook verifies signed payment-processor webhooks and normalizes
// their bodies into [Event] values that the ledger can record.
//
// It is pure: no storage, no network, no clock. The HTTP handler drives it:
//
//	body := read at most the size limit         // 413 beyond it
//	err := webhook.VerifyStripe(r.Header, body, secrets, tolerance, now)
//	if errors.Is(err, webhook.ErrSignature) { 401 }
//	ev, err := webhook.NormalizeStripe(body, defaultMerchant)
//	if errors.Is(err, webhook.ErrMalformed) { 400 }
//	// tokenize ev.Card.PAN, encrypt personal fields and ev.Raw (packed by
//	// a RawCodec), append
//
// # Signature schemes
//
// Two schemes are supported, selected per webhook source: [SchemeStripe]
// ([VerifyStripe]) and [SchemeStandard] ([VerifyStandard], Standard
// Webhooks). Both are HMAC-SHA256 over a timestamp and the raw body, compared
// with [hmac.Equal]; both reject a timestamp further than the tolerance from
// now in either direction; both accept several signatures and several secrets
// so that secrets can be rotated without downtime. Every rejection of a
// request wraps [ErrSignature]; errors never say which secret matched or how
// close a signature came. A misconfiguration (no secrets, an unusable secret,
// a non-positive tolerance) is reported with an error that does not wrap
// ErrSignature, so the handler answers 500 rather than blaming the sender.
//
// Headers are parsed strictly and the work is capped: a header that repeats,
// is longer than 4 KiB, carries more than 32 signatures, or has any element
// that is not of the documented form is rejected outright rather than
// partially understood.
//
// # Normalization
//
// [NormalizeGeneric] reads paytrail's generic event JSON and [NormalizeStripe]
// reads Stripe event JSON. Both decode as an [encoding/json.Decoder] with
// UseNumber would, and reject, with an error wrapping [ErrMalformed]:
// invalid UTF-8, anything but a single JSON object, duplicate object keys,
// nesting deeper than 64 levels, and amounts that are not JSON integers in
// [0, 2^53]. A missing or invalid field is reported as a [*FieldError]
// naming the field; its message never contains the field's value.
//
// # Card data
//
// The primary account number (PAN) is accepted only from the generic event's
// card.number. It is returned in [Card].PAN for the caller to validate (Luhn)
// and tokenize, and it is never part of [Event].Raw. Sensitive
// authentication data (CVV/CVC, track data, PIN blocks, see [StripSAD]) is
// removed at any depth before anything else looks at the body, and
// [Event].SADRemoved records that it was there.
//
// As a defence in depth, Raw and the billing address also lose any value
// (string, number or object key) that contains the PAN's digits, or that
// contains a run of 13 to 19 digits, optionally separated by single spaces or
// dashes, that passes the Luhn check; such a value is replaced by the string
// "[redacted]" (a key is dropped with its value) and [Event].PANRedacted is
// set. This can redact long numeric identifiers or phone numbers that happen to
// pass Luhn; it only ever touches Raw and the address, never the structured
// fields, which are read before redaction.
package webhook
