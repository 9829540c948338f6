package money

import (
	"errors"
	"testing"
)

func TestParseMajor(t *testing.T) {
	for _, tc := range []struct {
		in, cur string
		want    int64
		err     error
	}{
		{"19.99", "USD", 1999, nil},
		{"19.9", "USD", 1990, nil},
		{"19", "USD", 1900, nil},
		{"1500", "JPY", 1500, nil},
		{"1.234", "KWD", 1234, nil},
		{"-5.00", "USD", -500, nil},
		{"0.001", "BHD", 1, nil},
		{"1.5", "JPY", 0, ErrMalformedAmount},
		{"1.999", "USD", 0, ErrMalformedAmount},
		{"1.", "USD", 0, ErrMalformedAmount},
		{".5", "USD", 0, ErrMalformedAmount},
		{"", "USD", 0, ErrMalformedAmount},
		{"1e3", "USD", 0, ErrMalformedAmount},
		{"+1", "USD", 0, ErrMalformedAmount},
		{"1,000.00", "USD", 0, ErrMalformedAmount},
		{"99999999999999999999", "USD", 0, ErrMalformedAmount},
		{"1.00", "XXX", 0, ErrUnknownCurrency},
	} {
		got, err := ParseMajor(tc.in, tc.cur)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseMajor(%q, %s) = %d, %v; want %d, %v", tc.in, tc.cur, got, err, tc.want, tc.err)
		}
	}
}

func TestFormatMinorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		cur  string
		want string
	}{
		{1999, "USD", "19.99"}, {5, "USD", "0.05"}, {-500, "EUR", "-5.00"}, {1500, "JPY", "1500"}, {1234, "KWD", "1.234"},
	} {
		got := FormatMinor(tc.v, tc.cur)
		if got != tc.want {
			t.Errorf("FormatMinor(%d, %s) = %q, want %q", tc.v, tc.cur, got, tc.want)
		}
		if back, err := ParseMajor(got, tc.cur); err != nil || back != tc.v {
			t.Errorf("ParseMajor(FormatMinor(%d)) = %d, %v", tc.v, back, err)
		}
	}
}

func TestNormalizeCurrency(t *testing.T) {
	if got, err := NormalizeCurrency(" eur"); err != nil || got != "EUR" {
		t.Errorf("NormalizeCurrency(eur) = %q, %v", got, err)
	}
	if _, err := NormalizeCurrency("ABC"); !errors.Is(err, ErrUnknownCurrency) {
		t.Errorf("NormalizeCurrency(ABC) err = %v, want ErrUnknownCurrency", err)
	}
}

func FuzzParseMajor(f *testing.F) {
	for _, s := range []string{"19.99", "1500", "-1.234", "1e9", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseMajor(s, "USD")
		if err != nil {
			return
		}
		if back, err := ParseMajor(FormatMinor(v, "USD"), "USD"); err != nil || back != v {
			t.Fatalf("round trip of %q: %d -> %d, %v", s, v, back, err)
		}
	})
}
