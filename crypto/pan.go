package crypto

import (
	"bytes"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Finding card numbers in free text
//
// Every value paytrail keeps or shows in clear (webhook status, type and
// brand, access entry resources and justifications, principal names) and
// every value of the encrypted raw payload must be free of card numbers. One
// detector decides, here, so that all of those places agree.
//
// A card number is written as groups of digits with separators between
// them, and people and processors use almost anything as a separator:
// spaces (double, tabs, U+00A0, U+2000–U+200B, U+202F, U+3000), hyphens and
// dashes, dots, underscores, slashes, line breaks. The detector therefore
// does not list separators. It reads text as
//
//   - digits: any Unicode decimal digit (general category Nd) with its
//     value, so ASCII, full-width (U+FF10–U+FF19, what East Asian input
//     methods type) and the other scripts' digits all count;
//   - letters: any other letter or number (categories L and N), which end
//     a number;
//   - separators: everything else (punctuation, symbols, spaces, controls,
//     marks, invalid UTF-8).
//
// A group is a maximal run of digits. Two groups are linked when 1 to
// maxPANGap separators and no letter stand between them; a candidate is a
// maximal chain of linked groups. A candidate holds a card number when some
// run of consecutive groups in it has 13 to 19 digits in all and passes the
// Luhn check. Runs of groups, not any digits: a 20-digit number is not a
// card number, but "4111 1111 1111 1111 12/29" holds one, followed by an
// expiry date.
//
// What it misses, on purpose: a card number glued to other digits
// ("41111111111111110"), spelled out, split by letters, or by more than
// maxPANGap separators. What it finds that is no card number: numbers that
// happen to pass Luhn (one in ten of those with 13 to 19 digits), such as
// a long numeric id or a time with nanoseconds; the callers redact or
// refuse them, which costs some text but never lets a card number through.

// maxPANGap is the most separators between two groups of one card number:
// enough for "4111 - 1111", "4111 / 1111", or a line break and indentation
// ("\r\n  "), few enough that numbers in a table do not run together.
const maxPANGap = 4

// FindPANs calls fn with the byte range of each candidate in s that holds a
// card number (see the rules above), in order; ranges do not overlap. The
// range runs from the first digit of the candidate's first group to the
// last digit of its last group, so replacing it removes the card number
// with whatever digits were written around it. FindPANs allocates nothing.
func FindPANs(s string, fn func(start, end int)) {
	sc := panScanner{report: fn}
	sc.scan(s)
}

// ContainsPAN reports whether s holds a card number (see [FindPANs]). It
// is meant to run on every clear field of every request: a string with no
// digit costs one pass over its bytes.
func ContainsPAN(s string) bool {
	if len(s) < minPANDigits {
		return false
	}
	sc := panScanner{stopAtFirst: true}
	sc.scan(s)
	return sc.found
}

// ContainsPANDigits reports whether the digits of s, read in order and
// with everything else skipped (letters too), contain pan, which must be
// ASCII digits. It is the stricter test for a card number already known,
// such as the one an event carries: it finds it however it was written.
func ContainsPANDigits(s, pan string) bool {
	if pan == "" || len(s) < len(pan) {
		return false
	}
	// The digits are copied out first; the buffer stays on the stack for
	// the common short value.
	var buf [64]byte
	digits := buf[:0]
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if isASCIIDigit(c) {
				digits = append(digits, c)
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if v, ok := digitValue(r); ok {
			digits = append(digits, '0'+v)
		}
		i += w
	}
	return bytes.Contains(digits, []byte(pan))
}

// Byte classes of ASCII text for the scanner.
const (
	classSep = iota
	classDigit
	classLetter
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = classDigit
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = classLetter
		}
	}
	return t
}()

// ndZeros holds the zero of every block of ten decimal digits in Unicode
// (category Nd), in order: a rune r is a digit of value r-z when z is the
// greatest zero not above r and r-z < 10. Unicode guarantees Nd comes in
// complete, contiguous 0-9 blocks; TestDigitValue checks the table.
var ndZeros = func() []rune {
	var zs []rune
	add := func(lo, hi, stride uint32) {
		for r := rune(lo); r <= rune(hi); r += rune(stride) {
			if !unicode.IsDigit(r - 1) { // the start of a run of blocks
				for z := r; unicode.IsDigit(z); z += 10 {
					zs = append(zs, z)
				}
			}
		}
	}
	for _, r := range unicode.Nd.R16 {
		add(uint32(r.Lo), uint32(r.Hi), uint32(r.Stride))
	}
	for _, r := range unicode.Nd.R32 {
		add(r.Lo, r.Hi, r.Stride)
	}
	slices.Sort(zs)
	return slices.Compact(zs)
}()

// digitValue returns the value of a decimal digit in any script.
func digitValue(r rune) (byte, bool) {
	if r >= '0' && r <= '9' {
		return byte(r - '0'), true
	}
	if r < utf8.RuneSelf {
		return 0, false
	}
	i, found := slices.BinarySearch(ndZeros, r)
	if !found {
		i--
	}
	if i < 0 || r-ndZeros[i] >= 10 {
		return 0, false
	}
	return byte(r - ndZeros[i]), true
}

// ringMask indexes panScanner's rings: 32 entries, more than the
// maxPANDigits digits or groups a card number can span. Indexes only grow,
// so they are never negative.
const ringMask = 31

// panScanner is one pass of the detector over a string. Digits and group
// starts are kept in rings big enough for the longest card number
// (maxPANDigits digits, so at most that many groups).
type panScanner struct {
	report      func(start, end int)
	stopAtFirst bool
	found       bool

	inChain    bool
	chainStart int // byte offset of the candidate's first digit
	digitEnd   int // byte offset just after the last digit seen
	gap        int // separators since the last digit; 0 inside a group
	hit        bool

	nd     int                 // digits in the candidate so far
	digits [ringMask + 1]uint8 // the last digits' values, digit i at i&ringMask
	from   int                 // the first digit a card number may still start at
	ng     int                 // groups that a card number may still start at
	starts [ringMask + 1]int   // their first digit's index, group j at j&ringMask
}

func (sc *panScanner) scan(s string) {
	for i := 0; i < len(s); {
		if !sc.inChain {
			// Outside a candidate only a digit matters: skip ASCII
			// letters and separators in a tight loop.
			for i < len(s) && s[i] < utf8.RuneSelf && asciiClass[s[i]] != classDigit {
				i++
			}
			if i == len(s) {
				break
			}
		}
		c, w := s[i], 1
		var class uint8
		var v byte
		if c < utf8.RuneSelf {
			class, v = asciiClass[c], c-'0'
		} else {
			var r rune
			r, w = utf8.DecodeRuneInString(s[i:])
			var ok bool
			switch v, ok = digitValue(r); {
			case ok:
				class = classDigit
			case unicode.IsLetter(r) || unicode.IsNumber(r):
				class = classLetter
			default:
				class = classSep
			}
		}
		switch class {
		case classDigit:
			sc.digit(i, i+w, v)
			if w == 1 { // take the rest of an ASCII run at once
				j := i + 1
				for ; j < len(s) && isASCIIDigit(s[j]); j++ {
					sc.digits[sc.nd&ringMask] = s[j] - '0'
					sc.nd++
				}
				sc.digitEnd, w = j, j-i
			}
		case classSep:
			if sc.inChain {
				if sc.gap == 0 {
					sc.endGroup()
				}
				sc.gap++
				if sc.gap > maxPANGap {
					sc.endChain()
				}
			}
		default:
			if sc.inChain {
				if sc.gap == 0 {
					sc.endGroup()
				}
				sc.endChain()
			}
		}
		if sc.found && sc.stopAtFirst {
			return
		}
		i += w
	}
	if sc.inChain {
		if sc.gap == 0 {
			sc.endGroup()
		}
		sc.endChain()
	}
}

// digit adds a digit of value v found at s[start:end].
func (sc *panScanner) digit(start, end int, v byte) {
	switch {
	case !sc.inChain:
		sc.inChain, sc.chainStart, sc.hit = true, start, false
		sc.nd, sc.ng, sc.from = 0, 0, 0
		fallthrough
	case sc.gap > 0:
		sc.starts[sc.ng&ringMask] = sc.nd
		sc.ng++
	}
	sc.digits[sc.nd&ringMask] = v
	sc.nd++
	sc.digitEnd, sc.gap = end, 0
}

// endGroup checks every run of groups that ends with the group just ended.
// All of them end at the same digit, so one Luhn sum, taken from the right
// and extended group by group, serves them all.
func (sc *panScanner) endGroup() {
	if sc.hit {
		return // the candidate is reported whole; nothing more to learn
	}
	if sc.nd-sc.starts[(sc.ng-1)&ringMask] > maxPANDigits {
		// No card number can hold this group: start afresh after it.
		sc.ng, sc.from = 0, sc.nd
		return
	}
	if sc.nd-sc.from < minPANDigits {
		return // too few digits yet: the common case of short numbers
	}
	sum, k := 0, 0 // k: digits summed, counted from the right
	for j := sc.ng - 1; j >= 0; j-- {
		n := sc.nd - sc.starts[j&ringMask]
		if n > maxPANDigits {
			break
		}
		for ; k < n; k++ {
			d := int(sc.digits[(sc.nd-1-k)&ringMask])
			if k%2 == 1 {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
		}
		if n >= minPANDigits && sum%10 == 0 {
			sc.hit, sc.found = true, true
			return
		}
	}
}

func (sc *panScanner) endChain() {
	if sc.hit && sc.report != nil {
		sc.report(sc.chainStart, sc.digitEnd)
	}
	sc.inChain = false
}
