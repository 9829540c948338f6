package ledger

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// A hand scanner for the few flat JSON objects verify reads on every
// payment entry (the head of the body, the idempotency key). It accepts
// only what encoding/json writes for these types — unescaped strings,
// canonical integers, booleans, arrays of strings — and reports !ok on
// anything else, so that the caller falls back to encoding/json. Whatever
// it accepts, it decodes exactly as json.Unmarshal would.

// jsonKind is the kind of a scanned JSON value.
type jsonKind byte

const (
	jsonString jsonKind = iota + 1 // val is the string's contents
	jsonNumber                     // val is a canonical integer
	jsonBool                       // val is "true" or "false"
	jsonArray                      // val is a "[...]" of strings
)

// scanObject calls member for each member of the JSON object b, in order.
// With open, b is an object's opening part: it stops after a member, before
// the closing brace (which it must not contain). It returns false when b is not of the
// accepted shape or member returns false.
func scanObject(b []byte, open bool, member func(key []byte, kind jsonKind, val []byte) bool) bool {
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	i := 1
	if b[i] == '}' {
		return !open && i+1 == len(b)
	}
	for {
		key, n, ok := scanString(b[i:])
		if !ok {
			return false
		}
		i += n
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i++
		kind, val, n, ok := scanValue(b[i:])
		if !ok || !member(key, kind, val) {
			return false
		}
		i += n
		if i == len(b) {
			return open
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return !open && i+1 == len(b)
		default:
			return false
		}
	}
}

// scanString scans a string at the start of b and returns its contents
// and the bytes consumed. Strings with escapes are refused.
func scanString(b []byte) (s []byte, n int, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, 0, false
	}
	high := false
	for j := 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[1:j]
			if high && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= 0x80:
			high = true
		}
	}
	return nil, 0, false
}

func scanValue(b []byte) (kind jsonKind, val []byte, n int, ok bool) {
	if len(b) == 0 {
		return 0, nil, 0, false
	}
	switch c := b[0]; {
	case c == '"':
		s, n, ok := scanString(b)
		return jsonString, s, n, ok
	case c == '-' || c >= '0' && c <= '9':
		j := 0
		if c == '-' {
			j++
		}
		start := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		digits := j - start
		if digits == 0 || digits > 1 && b[start] == '0' || digits > 19 {
			return 0, nil, 0, false
		}
		return jsonNumber, b[:j], j, true
	case c == 't' && len(b) >= 4 && string(b[:4]) == "true":
		return jsonBool, b[:4], 4, true
	case c == 'f' && len(b) >= 5 && string(b[:5]) == "false":
		return jsonBool, b[:5], 5, true
	case c == '[':
		j := 1
		if j < len(b) && b[j] == ']' {
			return jsonArray, b[:2], 2, true
		}
		for j < len(b) {
			_, n, ok := scanString(b[j:])
			if !ok {
				return 0, nil, 0, false
			}
			j += n
			if j < len(b) && b[j] == ']' {
				return jsonArray, b[:j+1], j + 1, true
			}
			if j >= len(b) || b[j] != ',' {
				return 0, nil, 0, false
			}
			j++
		}
	}
	return 0, nil, 0, false
}

// scanStrings decodes a jsonArray value.
func scanStrings(arr []byte) []string {
	out := []string{}
	for j := 1; j < len(arr)-1; {
		s, n, _ := scanString(arr[j:])
		out = append(out, string(s))
		j += n + 1
	}
	return out
}

// scanPaymentHead decodes the head of a canonical payment body — every
// member before "sealed" — as json.Unmarshal into a PaymentBody would. It
// refuses members PaymentBody does not have, since encoding/json would
// match those keys case-insensitively.
func scanPaymentHead(head []byte) (p PaymentBody, ok bool) {
	ok = scanObject(head, true, func(key []byte, kind jsonKind, val []byte) bool {
		switch string(key) {
		case "source":
			p.Source = string(val)
			return kind == jsonString
		case "event_id":
			p.EventID = string(val)
			return kind == jsonString
		case "webhook_id":
			p.WebhookID = string(val)
			return kind == jsonString
		case "processor_type":
			p.ProcessorType = string(val)
			return kind == jsonString
		case "brand":
			p.Brand = string(val)
			return kind == jsonString
		case "data_key":
			p.DataKey = string(val)
			return kind == jsonString
		case "type":
			p.Type = string(val)
			return kind == jsonString
		case "transaction_id":
			p.TransactionID = string(val)
			return kind == jsonString
		case "merchant_id":
			p.MerchantID = string(val)
			return kind == jsonString
		case "currency":
			p.Currency = string(val)
			return kind == jsonString
		case "status":
			p.Status = string(val)
			return kind == jsonString
		case "alt_ids":
			if kind != jsonArray {
				return false
			}
			p.AltIDs = scanStrings(val)
			return true
		case "amount":
			if kind != jsonNumber {
				return false
			}
			v, err := strconv.ParseInt(string(val), 10, 64)
			p.Amount = v
			return err == nil
		case "occurred_at":
			return kind == jsonString && p.OccurredAt.UnmarshalText(val) == nil
		case "sad_removed":
			p.SADRemoved = string(val) == "true"
			return kind == jsonBool
		}
		return false
	})
	return p, ok
}

// scanUnique decodes an entry's "unique" object as json.Unmarshal would.
func scanUnique(b []byte) (u Unique, ok bool) {
	ok = scanObject(b, false, func(key []byte, kind jsonKind, val []byte) bool {
		if kind != jsonString {
			return false
		}
		switch string(key) {
		case "key":
			u.Key = string(val)
			return true
		case "digest":
			d := make([]byte, base64.StdEncoding.DecodedLen(len(val)))
			n, err := base64.StdEncoding.Decode(d, val)
			u.Digest = d[:n]
			return err == nil
		}
		return false
	})
	return u, ok
}
