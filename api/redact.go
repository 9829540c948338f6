package api

import (
	"strings"

	"github.com/paytrail/paytrail/crypto"
)

// redactedPAN replaces a card number found where none belongs.
const redactedPAN = "(redacted)"

// redactPANs replaces every card number in s, written with any separators
// (see [crypto.FindPANs]: the same detector as webhook fields and the raw
// payload), together with the digits written around it. Access entries are
// immutable and outlive any erasure, so anything a caller typed (paths,
// query values, justifications) goes through it before it is recorded.
func redactPANs(s string) string {
	var b strings.Builder
	last := 0
	crypto.FindPANs(s, func(start, end int) {
		b.WriteString(s[last:start])
		b.WriteString(redactedPAN)
		last = end
	})
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// hasPAN reports whether s holds a card number (see redactPANs).
func hasPAN(s string) bool { return crypto.ContainsPAN(s) }
