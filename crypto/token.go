package crypto

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/tink-crypto/tink-go/v2/prf"
)

// Domain labels: the first part of every PRF input, so that a token, a
// blind index and a digest can never equal one another even where they
// share a key (blind indexes and digests both use KeysetBlind).
const (
	labelPANToken   = "paytrail/pan-token/v1"
	labelBlindIndex = "paytrail/blind-index/v1"
	labelDigest     = "paytrail/digest/v1"
)

const (
	// prfOutputSize is the PRF output length: all of HMAC-SHA256, so that
	// collisions stay out of reach however many cards the ledger sees.
	prfOutputSize = 32
	// digestSize is the length of a Digest: key id and PRF output.
	digestSize = 4 + prfOutputSize
	// maxPANInput caps the raw input NormalizePAN looks at: nineteen digits
	// with a separator between each pair is 37 bytes.
	maxPANInput  = 64
	minPANDigits = 13
	maxPANDigits = 19
)

// The reasons a PAN is rejected. None contains a digit, so no error can
// leak part of a number, not even its length.
var (
	errPANLength    = fmt.Errorf("%w: wrong number of digits", ErrInvalidPAN)
	errPANCharacter = fmt.Errorf("%w: unexpected character", ErrInvalidPAN)
	errPANCheck     = fmt.Errorf("%w: check digit mismatch", ErrInvalidPAN)
)

// NormalizePAN removes spaces and dashes from pan and returns the digits if
// there are 13 to 19 of them and they pass the Luhn check. Any other
// character is rejected. Errors wrap ErrInvalidPAN and never contain a
// digit.
func NormalizePAN(pan string) (string, error) {
	if len(pan) > maxPANInput {
		return "", errPANLength
	}
	var buf [maxPANDigits]byte
	n := 0
	for i := 0; i < len(pan); i++ {
		switch c := pan[i]; {
		case c >= '0' && c <= '9':
			if n == maxPANDigits {
				return "", errPANLength
			}
			buf[n] = c
			n++
		case c == ' ' || c == '-':
		default:
			return "", errPANCharacter
		}
	}
	if n < minPANDigits {
		return "", errPANLength
	}
	if !luhnValid(buf[:n]) {
		return "", errPANCheck
	}
	return string(buf[:n]), nil
}

func isASCIIDigit(c byte) bool { return c >= '0' && c <= '9' }

// luhnValid reports whether ASCII digits pass the Luhn (mod 10) check.
func luhnValid(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// Card is what the ledger may keep of a card number (PCI DSS 3.4): a keyed
// token, the first six digits and the last four.
type Card struct {
	// Token is "tok_" + the token key id (8 hex digits) + "_" + base64url
	// (no padding) of HMAC-SHA256 over the normalized PAN. Same PAN, same
	// key: same token.
	Token string
	BIN   string
	Last4 string
	// Tokens is the PAN's token under every enabled key of KeysetToken,
	// primary first (so Tokens[0] == Token): cards seen before a rotation
	// are found under the older ones.
	Tokens []string
}

// Tokenize normalizes pan (see NormalizePAN) and returns its token under the
// primary key of KeysetToken, with its BIN and last four digits. The PAN is
// not kept anywhere.
func (k *Keysets) Tokenize(pan string) (Card, error) {
	n, err := NormalizePAN(pan)
	if err != nil {
		return Card{}, err
	}
	st := k.state.Load()
	in := encodeParts(labelPANToken, n)
	tokens := make([]string, 0, len(st.token.ids))
	for _, id := range st.token.ids {
		tokens = append(tokens, formatPRF("tok_", id, st.token.prfs[id], in))
	}
	return Card{Token: tokens[0], BIN: n[:6], Last4: n[len(n)-4:], Tokens: tokens}, nil
}

// Tokens returns the tokens of pan under every enabled key of KeysetToken,
// primary first (the first equals Tokenize's), so that cards seen before a
// rotation can still be found.
func (k *Keysets) Tokens(pan string) ([]string, error) {
	c, err := k.Tokenize(pan)
	return c.Tokens, err
}

// BlindIndex returns a deterministic keyed index of value for the personal
// field named field, under the primary key of KeysetBlind:
// "bi_" + key id (8 hex digits) + "_" + base64url (no padding) of
// HMAC-SHA256 over (domain label, field, value). The field name separates
// domains: the same value in two fields gives unrelated indexes. For field
// "email" the value is trimmed and lowercased first.
func (k *Keysets) BlindIndex(field, value string) string {
	st := k.state.Load()
	id := st.blind.ids[0]
	return formatPRF("bi_", id, st.blind.prfs[id], blindInput(field, value))
}

// BlindIndexes returns value's blind index under every enabled key of
// KeysetBlind, primary first (the first equals BlindIndex's).
func (k *Keysets) BlindIndexes(field, value string) []string {
	st := k.state.Load()
	in := blindInput(field, value)
	out := make([]string, 0, len(st.blind.ids))
	for _, id := range st.blind.ids {
		out = append(out, formatPRF("bi_", id, st.blind.prfs[id], in))
	}
	return out
}

// blindInput normalizes value for field and encodes the PRF input.
func blindInput(field, value string) []byte {
	if field == "email" {
		value = strings.ToLower(strings.TrimSpace(value))
	}
	return encodeParts(labelBlindIndex, field, value)
}

// Digest returns a keyed digest of data for the purpose named by label,
// under the primary key of KeysetBlind: the 4-byte big-endian key id
// followed by HMAC-SHA256 over (domain label, label, data), 36 bytes in
// all. It is meant for comparing raw bodies that may hold a PAN (webhook
// idempotency), where a plain SHA-256 would be a PAN hash anyone can test
// guesses against. Compare with MatchDigest, which keeps working after
// KeysetBlind is rotated.
func (k *Keysets) Digest(label string, data []byte) []byte {
	st := k.state.Load()
	id := st.blind.ids[0]
	out := binary.BigEndian.AppendUint32(make([]byte, 0, digestSize), id)
	return append(out, mustPRF(st.blind.prfs[id], digestInput(label, data))...)
}

// MatchDigest reports whether digest is Digest(label, data) under the
// KeysetBlind key it names, comparing in constant time. It is false for a
// malformed digest or one made with a key no longer in the keyset.
func (k *Keysets) MatchDigest(label string, data, digest []byte) bool {
	if len(digest) != digestSize {
		return false
	}
	st := k.state.Load()
	p, ok := st.blind.prfs[binary.BigEndian.Uint32(digest)]
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare(mustPRF(p, digestInput(label, data)), digest[4:]) == 1
}

func digestInput(label string, data []byte) []byte {
	b := make([]byte, 0, 12+len(labelDigest)+len(label)+len(data))
	b = appendPart(b, labelDigest)
	b = appendPart(b, label)
	return appendPart(b, data)
}

// formatPRF returns prefix + key id hex + "_" + base64url(PRF(input)).
func formatPRF(prefix string, id uint32, p prf.PRF, input []byte) string {
	return prefix + keyIDHex(id) + "_" + base64.RawURLEncoding.EncodeToString(mustPRF(p, input))
}

// mustPRF computes a 32-byte HMAC-SHA256 PRF output. Tink's HMAC PRF fails
// only when asked for more bytes than the hash gives, which prfOutputSize
// never does, and keysets are checked to hold only HMAC-SHA256 keys when
// they are loaded; so an error here is a bug, not a condition to handle.
func mustPRF(p prf.PRF, input []byte) []byte {
	out, err := p.ComputePRF(input, prfOutputSize)
	if err != nil {
		panic(fmt.Sprintf("crypto: hmac-sha256 prf failed: %v", err))
	}
	return out
}
