package webhook

import (
	"encoding/json"
	"strings"

	"github.com/paytrail/paytrail/crypto"
)

// redacted replaces a PAN-like value in Event.Raw.
const redacted = "[redacted]"

// panRedactor replaces, in a decoded body, every value that contains the
// event's PAN or holds some other card number, written with any separators
// (the one detector, [crypto.ContainsPAN], decides). It is the defence in depth behind
// removing card.number: the ledger must never hold a full PAN, not even
// encrypted, wherever in the body a sender put it.
type panRedactor struct {
	pan string // the event's PAN digits without separators, or ""
	hit bool
}

// redact rewrites v in place where it can and returns the value to keep in
// its place.
func (r *panRedactor) redact(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if r.sensitive(k) {
				delete(v, k)
				r.hit = true
				continue
			}
			v[k] = r.redact(child)
		}
	case []any:
		for i, child := range v {
			v[i] = r.redact(child)
		}
	case string:
		if r.sensitive(v) {
			r.hit = true
			return redacted
		}
	case json.Number:
		if r.sensitive(string(v)) {
			r.hit = true
			return redacted
		}
	}
	return v
}

// sensitive reports whether s, or its JSON encoding, holds a card number
// as [crypto.ContainsPAN] finds them (any separators) or the event's own
// PAN's digits however they are written.
func (r *panRedactor) sensitive(s string) bool {
	if r.check(s) {
		return true
	}
	// encoding/json writes control characters and U+2028/U+2029 as \uXXXX,
	// whose hex digits could complete a PAN in the encoded bytes.
	if strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 || c == '\u2028' || c == '\u2029' }) {
		enc, err := encodeJSON(s)
		return err != nil || r.check(string(enc))
	}
	return false
}

func (r *panRedactor) check(s string) bool {
	return crypto.ContainsPANDigits(s, r.pan) || crypto.ContainsPAN(s)
}

// panDigits returns the digits of a card number made of digits, spaces and
// dashes, or false if it has any other character or not 12 to 19 digits.
func panDigits(pan string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(pan); i++ {
		switch c := pan[i]; {
		case isDigit(c):
			b.WriteByte(c)
		case c == ' ' || c == '-':
		default:
			return "", false
		}
	}
	if b.Len() < 12 || b.Len() > 19 {
		return "", false
	}
	return b.String(), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
