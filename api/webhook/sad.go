package webhook

import (
	"strings"
	"unicode/utf8"
)

// sadKeys are the normalized keys (see normalizeKey) under which sensitive
// authentication data travels: card verification values, magnetic-stripe
// track data and PIN blocks (PCI DSS 3.3.1: never stored after
// authorization, not even encrypted).
var sadKeys = map[string]bool{
	"cvv": true, "cvc": true, "cvv2": true, "cvc2": true, "cvn": true, "cid": true,
	"cardverification": true, "cardverificationvalue": true, "cardverificationcode": true,
	"securitycode": true,
	"track1":       true, "track2": true, "trackdata": true, "track": true, "magstripe": true,
	"pin": true, "pinblock": true,
}

// normalizeKey lower-cases k and drops '-', '_' and ' ', so that "CVV2",
// "cvv_2", "Security-Code" and "pin block" compare equal to their sadKeys
// spelling.
func normalizeKey(k string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', ' ':
			return -1
		}
		return r
	}, strings.ToLower(k))
}

// isSADKey reports whether an object key names sensitive authentication
// data.
func isSADKey(k string) bool {
	if len(k) > 32 { // longer than any spelling of a SAD key
		return false
	}
	// normalizeKey without its allocations for the ASCII keys that
	// bodies are made of; anything else takes the Unicode path, where
	// lower-casing can turn a non-ASCII letter (the Kelvin sign) into an
	// ASCII one.
	var buf [32]byte
	n := 0
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= utf8.RuneSelf:
			return sadKeys[normalizeKey(k)]
		case c == '-' || c == '_' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	return sadKeys[string(buf[:n])]
}

// StripSAD deletes, in place, every object member whose key names sensitive
// authentication data, at any depth of a value decoded from JSON (objects as
// map[string]any, arrays as []any): cvv, cvc, cvv2, cvc2, cvn, cid,
// card_verification, card_verification_value, card_verification_code,
// security_code, track1, track2, track_data, track, magstripe, pin, pin_block
// and pinblock, compared after lower-casing and dropping '-', '_' and ' '.
// The member goes whatever its value, even null. It reports whether any
// member was deleted. Values of other types are left alone.
func StripSAD(v any) bool {
	removed := false
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if isSADKey(k) {
				delete(v, k)
				removed = true
				continue
			}
			if StripSAD(child) {
				removed = true
			}
		}
	case []any:
		for _, child := range v {
			if StripSAD(child) {
				removed = true
			}
		}
	}
	return removed
}
