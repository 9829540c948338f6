package api

import (
	"strings"

	"github.com/paytrail/paytrail/crypto"
)

// redactedPAN replaces a card number found where none belongs.
const redactedPAN = "(redacted)"

// redactPANs replaces every run of 13 to 19 digits (single spaces or dashes
// between digits allowed, as people write card numbers) that is a valid
// card number. Access entries are immutable and outlive any erasure, so
// anything a caller typed (paths, query values, justifications) goes
// through it before it is recorded.
func redactPANs(s string) string {
	var b strings.Builder
	last := 0
	forEachPANRun(s, func(start, end int) {
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

// hasPAN reports whether s holds a valid card number (see redactPANs).
func hasPAN(s string) bool {
	found := false
	forEachPANRun(s, func(int, int) { found = true })
	return found
}

// forEachPANRun calls fn with the byte range of each digit run of s that
// crypto accepts as a card number.
func forEachPANRun(s string, fn func(start, end int)) {
	isDigit := func(i int) bool { return i >= 0 && i < len(s) && s[i] >= '0' && s[i] <= '9' }
	for i := 0; i < len(s); {
		if !isDigit(i) {
			i++
			continue
		}
		start, digits, j := i, 0, i
		for j < len(s) {
			if isDigit(j) {
				digits++
				j++
				continue
			}
			if (s[j] == ' ' || s[j] == '-') && isDigit(j-1) && isDigit(j+1) {
				j++
				continue
			}
			break
		}
		if digits >= 13 && digits <= 19 {
			if _, err := crypto.NormalizePAN(s[start:j]); err == nil {
				fn(start, j)
			}
		}
		i = j
	}
}
