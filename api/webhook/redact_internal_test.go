package webhook

import "testing"

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
