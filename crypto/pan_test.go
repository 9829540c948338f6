package crypto

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestFindPANs(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		want []string // the candidates found, as written
	}{
		{"plain", "4111111111111111", []string{"4111111111111111"}},
		{"spaces", "card 4111 1111 1111 1111 ok", []string{"4111 1111 1111 1111"}},
		{"double spaces", "4111  1111  1111  1111", []string{"4111  1111  1111  1111"}},
		{"hyphens", "4111-1111-1111-1111", []string{"4111-1111-1111-1111"}},
		{"spaced hyphens", "4111 - 1111 - 1111 - 1111", []string{"4111 - 1111 - 1111 - 1111"}},
		{"dots", "4111.1111.1111.1111", []string{"4111.1111.1111.1111"}},
		{"underscores", "4111_1111_1111_1111", []string{"4111_1111_1111_1111"}},
		{"slashes", "4111/1111/1111/1111", []string{"4111/1111/1111/1111"}},
		{"tabs", "4111\t1111\t\t1111\t1111", []string{"4111\t1111\t\t1111\t1111"}},
		{"line breaks", "4111\r\n  1111\n1111\n1111", []string{"4111\r\n  1111\n1111\n1111"}},
		{"no-break space", "4111\u00a01111\u00a01111\u00a01111", []string{"4111\u00a01111\u00a01111\u00a01111"}},
		{"ideographic space", "4111\u30001111\u30001111\u30001111", []string{"4111\u30001111\u30001111\u30001111"}},
		{"narrow no-break space", "5555\u202f5555\u202f5555\u202f4444", []string{"5555\u202f5555\u202f5555\u202f4444"}},
		{"mixed", "4111 -1111._1111\u00a0 1111", []string{"4111 -1111._1111\u00a0 1111"}},
		{"full-width digits", "４１１１ １１１１ １１１１ １１１１", []string{"４１１１ １１１１ １１１１ １１１１"}},
		{"full-width and ASCII", "4111１111 1111 1111", []string{"4111１111 1111 1111"}},
		{"arabic-indic digits", "٤١١١١١١١١١١١١١١١", []string{"٤١١١١١١١١١١١١١١١"}},
		{"combining mark", "4111\u03011111\u03011111\u03011111", []string{"4111\u03011111\u03011111\u03011111"}},
		{"invalid UTF-8", "4111\xff1111\xfe1111\xff1111", []string{"4111\xff1111\xfe1111\xff1111"}},
		{"glued to letters", "x4111111111111111y", []string{"4111111111111111"}},
		{"amex 15", "3782 822463 10005", []string{"3782 822463 10005"}},
		{"19 digits", "4111111111111111110", []string{"4111111111111111110"}},
		{"followed by expiry", "4111 1111 1111 1111 12/29", []string{"4111 1111 1111 1111 12/29"}},
		{"after other digits", "00 4111 1111 1111 1111", []string{"00 4111 1111 1111 1111"}},
		{"two in one candidate", "4111111111111111, 5555555555554444", []string{"4111111111111111, 5555555555554444"}},
		{"two candidates", "a 4111-1111-1111-1111 b 5555555555554444", []string{"4111-1111-1111-1111", "5555555555554444"}},
		{"trailing separator", "4111 1111 1111 1111 ", []string{"4111 1111 1111 1111"}},
		{"single digits", "0 0 0 0 0 0 0 0 0 0 0 0 0", []string{"0 0 0 0 0 0 0 0 0 0 0 0 0"}},
		{"long group then card", "123456789012345678901 4111111111111111", []string{"123456789012345678901 4111111111111111"}},

		{"luhn fails", "4111111111111112", nil},
		{"20 digits", "41111111111111110000", nil},
		{"glued to a digit", "41111111111111110", nil},
		{"12 digits", "4111 1111 1111", nil},
		{"gap of five", "4111     1111 1111 1111", nil},
		{"split by letters", "4111a1111b1111c1111", nil},
		{"split by a word", "4111 1111 and 1111 1111", nil},
		{"split by accented letter", "4111 1111 é 1111 1111", nil},
		{"split by superscript", "4111 1111²1111 1111", nil},
		{"unix time", "1795000000", nil},
		{"luhn-valid 11 digits", "79927398713", nil},
		{"phone", "+43 1 234567", nil},
		{"date", "2026-11-20T14:03:11Z", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			FindPANs(tc.s, func(start, end int) { got = append(got, tc.s[start:end]) })
			if !slices.Equal(got, tc.want) {
				t.Errorf("FindPANs(%q) = %q, want %q", tc.s, got, tc.want)
			}
			if got, want := ContainsPAN(tc.s), tc.want != nil; got != want {
				t.Errorf("ContainsPAN(%q) = %v, want %v", tc.s, got, want)
			}
		})
	}
}

// TestFindPANsSeparators writes one card number with each separator a
// person or processor might use, every Unicode space among them.
func TestFindPANsSeparators(t *testing.T) {
	seps := []string{" ", "  ", "-", "--", " - ", ".", "_", "/", " / ", "\t", "\n", "\r\n", "\u00a0", "\u202f", "\u205f", "\u3000",
		"\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", "\u00ad", "\ufeff", ",", ":", "*", "|", "\\", "'", "#", "~"}
	for r := '\u2000'; r <= '\u200b'; r++ {
		seps = append(seps, string(r))
	}
	for _, r := range unicode.Zs.R16 {
		for c := r.Lo; c <= r.Hi; c += r.Stride {
			seps = append(seps, string(rune(c)))
		}
	}
	for _, sep := range seps {
		for _, pan := range []string{testPAN, testPAN2, "378282246310005"} {
			s := "ref " + strings.Join([]string{pan[:4], pan[4:8], pan[8:12], pan[12:]}, sep) + " end"
			if !ContainsPAN(s) {
				t.Errorf("ContainsPAN(%q) = false", s)
			}
		}
	}
}

func TestContainsPANDigits(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{testPAN, true},
		{"4111.1111.1111.1111", true},
		{"card 4111 x 1111 y 1111 z 1111", true},
		{"４１１１１１１１１１１１１１１１", true},
		{"0041111111111111119", true},
		{"411111111111111", false},
		{"5555555555554444", false},
		{"", false},
	} {
		if got := ContainsPANDigits(tc.s, testPAN); got != tc.want {
			t.Errorf("ContainsPANDigits(%q, testPAN) = %v, want %v", tc.s, got, tc.want)
		}
	}
	if ContainsPANDigits(testPAN, "") {
		t.Errorf("ContainsPANDigits(s, \"\") = true")
	}
}

// TestDigitValue checks the table of decimal digit blocks against every
// rune Unicode calls a decimal digit, and against a sample of others.
func TestDigitValue(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		v, ok := digitValue(r)
		if ok != unicode.IsDigit(r) {
			t.Fatalf("digitValue(%U) ok = %v, unicode.IsDigit = %v", r, ok, !ok)
		}
		if ok && int(v) != refDigitValue(r) {
			t.Fatalf("digitValue(%U) = %d, want %d", r, v, refDigitValue(r))
		}
	}
}

func FuzzContainsPAN(f *testing.F) {
	for _, s := range []string{
		"4111111111111111", "4111 1111 1111 1111", "4111.1111.1111.1111", "4111_1111_1111_1111",
		"4111\u00a01111\u00a01111\u00a01111", "4111\u20091111\u30001111\u202f1111", "４１１１ １１１１ １１１１ １１１１",
		"4111 1111 1111 1111 12/29", "41111111111111110000", "4111     1111 1111 1111", "x4111111111111111y",
		"a 4111-1111-1111-1111 b 5555555555554444", "0 0 0 0 0 0 0 0 0 0 0 0 0", "378282246310005",
		"4111\xff1111\xfe1111\xff1111", "2026-11-20T14:03:11.123456789Z", "seq 1,2,3,4,5,6,7,8,9,10,11,12,13,14",
		"123456789012345678901 4111111111111111", "4111²1111", "٤١١١١١١١١١١١١١١١", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 2000 {
			return // the reference is quadratic in the number of digit groups
		}
		want := refFindPANs(s)
		var got [][2]int
		FindPANs(s, func(start, end int) { got = append(got, [2]int{start, end}) })
		if !slices.Equal(got, want) {
			t.Fatalf("FindPANs(%q) = %v, reference %v", s, got, want)
		}
		if ContainsPAN(s) != (len(want) > 0) {
			t.Fatalf("ContainsPAN(%q) = %v, reference found %v", s, !(len(want) > 0), want)
		}
	})
}

// refFindPANs is the detector's definition (see pan.go) written as plainly
// as possible and without regard for speed: split the text into runs of
// digits, link neighbouring runs separated by 1 to 4 runes none of which is
// a letter or number, and in each chain of linked runs try every stretch of
// consecutive runs: strip everything but the digits, and it is a card
// number if 13 to 19 digits remain and they pass Luhn. It returns the byte
// range of each chain that holds a card number.
func refFindPANs(s string) [][2]int {
	runes := []rune(s)
	offset := make([]int, 0, len(runes)+1) // byte offset of each rune
	for i := range s {
		offset = append(offset, i)
	}
	offset = append(offset, len(s))

	type run struct{ start, end int } // rune indexes
	var runs []run
	for i := 0; i < len(runes); i++ {
		if unicode.IsDigit(runes[i]) {
			j := i
			for j < len(runes) && unicode.IsDigit(runes[j]) {
				j++
			}
			runs = append(runs, run{i, j})
			i = j
		}
	}
	linked := func(a, b run) bool {
		gap := runes[a.end:b.start]
		if len(gap) > 4 {
			return false
		}
		for _, r := range gap {
			if unicode.IsLetter(r) || unicode.IsNumber(r) {
				return false
			}
		}
		return true
	}
	isPAN := func(text []rune) bool {
		var digits []int
		for _, r := range text {
			if unicode.IsDigit(r) {
				digits = append(digits, refDigitValue(r))
			}
		}
		return len(digits) >= 13 && len(digits) <= 19 && refLuhn(digits)
	}

	var out [][2]int
	for first := 0; first < len(runs); {
		last := first
		for last+1 < len(runs) && linked(runs[last], runs[last+1]) {
			last++
		}
		found := false
		for a := first; a <= last && !found; a++ {
			digits := 0
			for b := a; b <= last && !found; b++ {
				if digits += runs[b].end - runs[b].start; digits > 19 {
					break // longer stretches only have more
				}
				found = isPAN(runes[runs[a].start:runs[b].end])
			}
		}
		if found {
			out = append(out, [2]int{offset[runs[first].start], offset[runs[last].end]})
		}
		first = last + 1
	}
	return out
}

// refLuhn is the Luhn check as usually stated: from the rightmost digit,
// double every second digit, add the digits of every number, and the total
// must be a multiple of ten.
func refLuhn(digits []int) bool {
	total := 0
	for i := range digits {
		d := digits[len(digits)-1-i]
		if i%2 == 1 {
			d *= 2
		}
		total += d/10 + d%10
	}
	return total%10 == 0
}

// refDigitValue returns the value of a decimal digit: Unicode lays out
// decimal digits in contiguous runs of whole 0-9 blocks, so it is the
// distance from the start of its run, modulo ten.
func refDigitValue(r rune) int {
	z := r
	for unicode.IsDigit(z - 1) {
		z--
	}
	return int(r-z) % 10
}

// Typical clear values and free text, as the detector sees them on every
// webhook and access entry.
var benchPANInputs = []struct{ name, s string }{
	{"status", "succeeded"},
	{"brand", "mastercard"},
	{"justification", "Chargeback dispute opened 2026-11-20: the customer called on +43 1 234567 about order B-77 " +
		"(amount 45.50 USD, ticket 99812); reviewing per policy 4.2 section 7 before answering the issuer."},
	{"payload 4KiB", strings.Repeat(`{"id":"ch_3MmlLrLkdIwHu7ix0snN0B15","amount":4550,"created":1680000000,"x":"a b"},`, 50)},
	{"card with dots", "paid with 4111.1111.1111.1111 today"},
}

func BenchmarkContainsPAN(b *testing.B) {
	for _, in := range benchPANInputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.s)))
			for b.Loop() {
				ContainsPAN(in.s)
			}
		})
	}
}
