package webhook

import (
	"encoding/json"
	"github.com/paytrail/paytrail/crypto"
	"strings"
)

// redacted replaces a PAN-like value in Event.Raw.
const redacted = "[redacted]"

// panRedactor replaces, in a decoded body, every value that contains the
// event's PAN or looks like some other PAN. It is the defence in depth behind
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

// sensitive reports whether s, or its JSON encoding, contains the PAN's
// digits (ignoring spaces and dashes) or a Luhn-valid run of 13 to 19 digits.
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
	if countDigits(s) < 12 { // shorter than any PAN: the common case, cheaply
		return false
	}
	if r.pan != "" && strings.Contains(stripSeparators(s), r.pan) {
		return true
	}
	return crypto.ContainsPAN(s)
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

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

func stripSeparators(s string) string {
	if !strings.ContainsAny(s, " -") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '-' {
			b = append(b, c)
		}
	}
	return string(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
