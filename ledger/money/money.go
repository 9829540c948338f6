// Package money converts between decimal amounts in major units and integer
// amounts in minor units, using ISO 4217 currency exponents.
//
// Amounts are never floating point: a decimal string is parsed digit by digit
// and an amount with more decimals than its currency allows is rejected.
package money

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrUnknownCurrency is returned for a code that is not an active ISO 4217
// currency.
var ErrUnknownCurrency = errors.New("unknown currency")

// ErrMalformedAmount is returned for an amount that is not a plain decimal,
// is negative, has more decimals than the currency allows, or overflows.
var ErrMalformedAmount = errors.New("malformed amount")

// exponents lists the active ISO 4217 codes (list one, 2024 amendments) with
// their minor-unit exponents. Funds codes and precious metals are left out.
var exponents = map[string]int{
	"AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
	"BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2,
	"BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0, "CNY": 2,
	"COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2,
	"ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
	"GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2,
	"IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0,
	"KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2,
	"LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
	"MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2,
	"NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2,
	"RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2,
	"SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2,
	"TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0,
	"USD": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2, "VED": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2,
	"XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
}

// Exponent returns the number of minor-unit digits of an ISO 4217 code
// (JPY 0, USD 2, KWD 3). The code must already be upper case.
func Exponent(code string) (int, bool) {
	e, ok := exponents[code]
	return e, ok
}

// NormalizeCurrency upper-cases code and checks that it is an active ISO 4217
// currency.
func NormalizeCurrency(code string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(code))
	if _, ok := exponents[c]; !ok {
		return "", ErrUnknownCurrency
	}
	return c, nil
}

// ParseMajor converts a decimal amount in major units ("19.99", "1500",
// "1.234") of the given currency into minor units. A leading '-' is allowed
// (reports carry negative refunds); '+', exponents, separators and more
// decimals than the currency allows are malformed.
func ParseMajor(s, currency string) (int64, error) {
	exp, ok := exponents[currency]
	if !ok {
		return 0, ErrUnknownCurrency
	}
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > exp {
		return 0, ErrMalformedAmount
	}
	var v int64
	for _, part := range []string{whole, frac + strings.Repeat("0", exp-len(frac))} {
		for i := 0; i < len(part); i++ {
			d := part[i]
			if d < '0' || d > '9' {
				return 0, ErrMalformedAmount
			}
			if v > (math.MaxInt64-int64(d-'0'))/10 {
				return 0, ErrMalformedAmount
			}
			v = v*10 + int64(d-'0')
		}
	}
	if neg {
		v = -v
	}
	return v, nil
}

// FormatMinor renders minor units as a decimal in major units, the inverse of
// ParseMajor: FormatMinor(1999, "USD") = "19.99".
func FormatMinor(v int64, currency string) string {
	exp, ok := exponents[currency]
	if !ok || exp == 0 {
		return fmt.Sprint(v)
	}
	sign := ""
	u := uint64(v)
	if v < 0 {
		sign, u = "-", uint64(-v)
	}
	p := uint64(math.Pow10(exp))
	return fmt.Sprintf("%s%d.%0*d", sign, u/p, exp, u%p)
}
