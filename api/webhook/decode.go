package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/paytrail/paytrail/ledger/money"
)

const (
	// maxDepth caps the nesting of a body. Stripe events nest about eight
	// levels deep.
	maxDepth = 64
	// maxIDLen caps identifiers, which become index keys downstream.
	maxIDLen = 255
	// maxTextLen caps free-text fields such as a cardholder's name.
	maxTextLen = 1024
	// maxAmount is the largest amount accepted, 2^53: beyond it IEEE 754
	// doubles, and so many JSON implementations, skip integers.
	maxAmount = 1 << 53
)

// Event times (generic occurred_at, Stripe created) must lie in
// [minEventTime, maxEventTime). The ledger indexes them as nanoseconds
// since 1970 in an unsigned 64-bit key part: a time before 1970 would sort
// after every later one (and slip past from/to filters), and one after
// 2262-04-11 overflows int64 nanoseconds, so an index row lands among the
// 1970s and later rows become unreachable by cursor. No payment event
// happens outside this range; refusing is failing closed.
var (
	minEventTime = time.Unix(0, 0).UTC()
	maxEventTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// decoded is a body's tree and what the decoder noticed while building it.
type decoded struct {
	root map[string]any
	// sadRemoved reports that members naming sensitive authentication
	// data were left out of root (see StripSAD).
	sadRemoved bool
}

// decodeObject decodes body, which must be exactly one JSON object in valid
// UTF-8 with no duplicate keys and at most maxDepth levels of nesting, into
// maps, slices, strings, json.Numbers, bools and nils: the values, down to
// the non-nil empty maps and slices, that an [encoding/json.Decoder] with
// UseNumber makes, less what StripSAD would delete. Sensitive
// authentication data is dropped as it is read, so that no later step can
// copy it anywhere and none has to walk the tree for it; it must still obey
// the rules above.
//
// A body breaking several rules is reported for the first of: invalid UTF-8,
// bad syntax (anything [encoding/json.Valid] rejects), nesting too deep, not
// an object, a duplicate key.
func decodeObject(body []byte) (decoded, error) {
	if !utf8.Valid(body) {
		return decoded{}, fmt.Errorf("failed to decode event: invalid UTF-8: %w", ErrMalformed)
	}
	d := treeDecoder{body: body, src: string(body)}
	v, err := d.document()
	if errors.Is(err, errTooDeep) && !json.Valid(body) {
		// The decoder stops at the depth limit, before the rest of the
		// body; a syntax error anywhere still takes precedence.
		// encoding/json also caps nesting (at 10000 levels) as a syntax
		// error, which this keeps too.
		err = errSyntax
	}
	switch {
	case errors.Is(err, errSyntax):
		return decoded{}, fmt.Errorf("failed to decode event: not a single JSON value: %w", ErrMalformed)
	case errors.Is(err, errTooDeep):
		return decoded{}, fmt.Errorf("failed to decode event: nested deeper than %d levels: %w", maxDepth, ErrMalformed)
	case err != nil:
		return decoded{}, fmt.Errorf("failed to decode event: %w", ErrMalformed)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return decoded{}, fmt.Errorf("failed to decode event: not a JSON object: %w", ErrMalformed)
	}
	// The key is not named: it could be anything.
	if d.dup {
		return decoded{}, fmt.Errorf("failed to decode event: duplicate object key: %w", ErrMalformed)
	}
	return decoded{root: m, sadRemoved: d.sadRemoved}, nil
}

// fields reads typed fields of one decoded object. A nil map reads as an
// object with no fields; a JSON null reads as an absent field. Errors are
// *FieldError values naming path.key.
type fields struct {
	m    map[string]any
	path string
}

func (f fields) name(key string) string {
	if f.path == "" {
		return key
	}
	return f.path + "." + key
}

func (f fields) errorf(key, format string, args ...any) error {
	return &FieldError{Field: f.name(key), Reason: fmt.Sprintf(format, args...)}
}

// get returns the value of key, or false if it is absent or null.
func (f fields) get(key string) (any, bool) {
	v, ok := f.m[key]
	return v, ok && v != nil
}

// obj returns the object at key.
func (f fields) obj(key string) (fields, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return fields{path: f.name(key)}, false, nil
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		return fields{}, false, f.errorf(key, "must be an object")
	}
	return fields{m: m, path: f.name(key)}, true, nil
}

// str returns the string at key; present but empty is an error.
func (f fields) str(key string) (string, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, f.errorf(key, "must be a string")
	}
	if s == "" {
		return "", false, f.errorf(key, "must not be empty")
	}
	return s, true, nil
}

// reqStr returns the string at key, which must be present.
func (f fields) reqStr(key string) (string, error) {
	s, ok, err := f.str(key)
	if err == nil && !ok {
		err = f.errorf(key, "is required")
	}
	return s, err
}

// id returns the identifier at key: 1 to 255 printable ASCII characters
// other than space.
func (f fields) id(key string) (string, bool, error) {
	s, ok, err := f.str(key)
	if err != nil || !ok {
		return "", false, err
	}
	if len(s) > maxIDLen || !isVisibleASCII(s) {
		return "", false, f.errorf(key, "must be 1 to %d printable ASCII characters without spaces", maxIDLen)
	}
	return s, true, nil
}

// reqID is id for a required field.
func (f fields) reqID(key string) (string, error) {
	s, ok, err := f.id(key)
	if err == nil && !ok {
		err = f.errorf(key, "is required")
	}
	return s, err
}

// ref returns the id at key, which Stripe sends either as a string or, when
// expanded, as an object with an "id"; the object, if any, is returned too.
func (f fields) ref(key string) (string, fields, error) {
	v, ok := f.get(key)
	if !ok {
		return "", fields{}, nil
	}
	if _, isObj := v.(map[string]any); isObj {
		o, _, err := f.obj(key)
		if err != nil {
			return "", fields{}, err
		}
		id, err := o.reqID("id")
		return id, o, err
	}
	id, _, err := f.id(key)
	return id, fields{}, err
}

// text returns the free text at key: no control characters, at most
// maxTextLen bytes.
func (f fields) text(key string) (string, error) {
	s, _, err := f.str(key)
	if err != nil {
		return "", err
	}
	if len(s) > maxTextLen || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", f.errorf(key, "must be at most %d bytes of text without control characters", maxTextLen)
	}
	return s, nil
}

// email returns the email address at key, checked only for shape.
func (f fields) email(key string) (string, error) {
	s, err := f.text(key)
	if err != nil || s == "" {
		return "", err
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || strings.ContainsAny(s, " \t") || len(s) > 320 {
		return "", f.errorf(key, "must be an email address")
	}
	return s, nil
}

// country returns the ISO 3166-1 alpha-2 code at key in upper case.
func (f fields) country(key string) (string, error) {
	s, ok, err := f.str(key)
	if err != nil || !ok {
		return "", err
	}
	if len(s) != 2 || !isASCIILetter(s[0]) || !isASCIILetter(s[1]) {
		return "", f.errorf(key, "must be a two-letter country code")
	}
	return strings.ToUpper(s), nil
}

// boolean returns the bool at key.
func (f fields) boolean(key string) (bool, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return false, false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, false, f.errorf(key, "must be true or false")
	}
	return b, true, nil
}

// integer returns the JSON integer at key, which must be written without
// fraction or exponent and lie in [lo, hi].
func (f fields) integer(key string, lo, hi int64) (int64, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false, f.errorf(key, "must be a JSON integer")
	}
	s := string(n)
	// "1.0" and "1e3" are not JSON integers; "-0" is not in [0, hi].
	if strings.ContainsAny(s, ".eE") {
		return 0, false, f.errorf(key, "must be a JSON integer")
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || i < lo || i > hi || (lo >= 0 && s[0] == '-') {
		return 0, false, f.errorf(key, "must be between %d and %d", lo, hi)
	}
	return i, true, nil
}

// amount returns the required amount in minor units at key.
func (f fields) amount(key string) (int64, error) {
	a, ok, err := f.integer(key, 0, maxAmount)
	if err == nil && !ok {
		err = f.errorf(key, "is required")
	}
	return a, err
}

// currency returns the required ISO 4217 code at key in upper case.
func (f fields) currency(key string) (string, error) {
	s, err := f.reqStr(key)
	if err != nil {
		return "", err
	}
	// money.NormalizeCurrency tolerates surrounding spaces; we do not.
	c, err := money.NormalizeCurrency(s)
	if len(s) != 3 || err != nil {
		return "", f.errorf(key, "must be an active ISO 4217 currency code")
	}
	return c, nil
}

// month and year read card expiry fields; zero means absent.
func (f fields) month(key string) (int, error) {
	m, _, err := f.integer(key, 1, 12)
	return int(m), err
}

func (f fields) year(key string) (int, error) {
	y, _, err := f.integer(key, 1000, 9999)
	return int(y), err
}

// unixTime returns the required event time in unix seconds at key, in
// UTC, within the event time range.
func (f fields) unixTime(key string) (time.Time, error) {
	s, ok, err := f.integer(key, 1, maxEventTime.Unix()-1)
	if err == nil && !ok {
		err = f.errorf(key, "is required")
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(s, 0).UTC(), nil
}

// rfc3339 returns the required RFC 3339 event time at key, in UTC, within
// the event time range.
func (f fields) rfc3339(key string) (time.Time, error) {
	s, err := f.reqStr(key)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, f.errorf(key, "must be an RFC 3339 date and time")
	}
	if t.Before(minEventTime) || !t.Before(maxEventTime) {
		return time.Time{}, f.errorf(key, "must be from 1970 to 2261 (UTC)")
	}
	return t.UTC(), nil
}

// ip returns the IP address at key in canonical form.
func (f fields) ip(key string) (string, error) {
	s, ok, err := f.str(key)
	if err != nil || !ok {
		return "", err
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", f.errorf(key, "must be an IP address")
	}
	return a.String(), nil
}

// last4 returns the last four digits at key.
func (f fields) last4(key string) (string, error) {
	s, ok, err := f.str(key)
	if err != nil || !ok {
		return "", err
	}
	if len(s) != 4 || strings.Trim(s, "0123456789") != "" {
		return "", f.errorf(key, "must be four digits")
	}
	return s, nil
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// errNoMerchant is returned when neither the body nor the source names a
// merchant.
func errNoMerchant(field string) error {
	return &FieldError{Field: field, Reason: "is required when the source has no default merchant"}
}
