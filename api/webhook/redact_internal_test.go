package webhook

import "testing"

func TestHasLuhnRun(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"4111111111111111", true},
		{"card 4111 1111 1111 1111 ok", true},
		{"4111-1111-1111-1111", true},
		{"x4111111111111111y", true},
		{"378282246310005", true},           // 15-digit Amex
		{"4111111111111112", false},         // fails Luhn
		{"41111111111111110000", false},     // 20 digits: not a PAN
		{"4111  1111 1111 1111", false},     // double space splits the run
		{"4111 1111 1111 1111 ", true},      // trailing separator ends the run
		{"1795000000", false},               // unix time
		{"79927398713", false},              // Luhn-valid but 11 digits
		{"+43 1 234567", false},             // phone
		{"4111.1111.1111.1111", false},      // dots are not separators
		{"0 0 0 0 0 0 0 0 0 0 0 0 0", true}, // 13 zeros pass Luhn
		{"", false},
	} {
		if got := hasLuhnRun(tc.s); got != tc.want {
			t.Errorf("hasLuhnRun(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestPanDigits(t *testing.T) {
	for _, tc := range []struct {
		pan, want string
		ok        bool
	}{
		{"5555 5555 5555 4444", "5555555555554444", true},
		{"5555-5555-5555-4444", "5555555555554444", true},
		{"555555555555", "555555555555", true},
		{"55555555555", "", false},
		{"55555555555555555555", "", false},
		{"5555.5555.5555.4444", "", false},
		{"５５５５５５５５５５５５", "", false}, // full-width digits
		{"", "", false},
	} {
		got, ok := panDigits(tc.pan)
		if got != tc.want || ok != tc.ok {
			t.Errorf("panDigits(%q) = %q, %v; want %q, %v", tc.pan, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStripSeparators(t *testing.T) {
	for _, tc := range []struct{ s, want string }{
		{"4111111111111111", "4111111111111111"},
		{"4111 1111-1111  1111", "4111111111111111"},
		{"- -", ""},
		{"é 1-2", "é12"},
		{"", ""},
	} {
		if got := stripSeparators(tc.s); got != tc.want {
			t.Errorf("stripSeparators(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
