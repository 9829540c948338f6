package api

import (
	"encoding/json"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/paytrail/paytrail/ledger/money"
)

// consoleFuncs are the template functions of the console's pages.
var consoleFuncs = template.FuncMap{
	// money renders minor units in major units with the currency's ISO
	// 4217 exponent, grouped by thousands: 123456 USD is "1,234.56 USD".
	"money": func(v int64, currency string) string {
		return groupThousands(money.FormatMinor(v, currency)) + " " + currency
	},
	// when renders a time for people (consoleWhen).
	"when": consoleWhen,
	// whenText is when for a time the API answered as RFC 3339 text.
	"whenText": func(s string) template.HTML {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return template.HTML(template.HTMLEscapeString(s))
		}
		return consoleWhen(t)
	},
	"join":  func(v []string) string { return strings.Join(v, ", ") },
	"label": fieldLabel,
	"deref": func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	},
	"fields": func() []string { return disclosureFields },
	"add":    func(a, b int) int { return a + b },
	"list":   func(v ...string) []string { return v },
	"itoa":   strconv.Itoa,
	"utoa":   func(v uint64) string { return strconv.FormatUint(v, 10) },
	"title": func(s string) string {
		s = strings.ReplaceAll(s, "_", " ")
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
}

// consoleWhen renders a time as a <time> element: UTC in the text (and its
// title), which console.js rewrites into the viewer's zone.
func consoleWhen(t time.Time) template.HTML {
	if t.IsZero() {
		return ""
	}
	u := t.UTC()
	iso := template.HTMLEscapeString(u.Format(time.RFC3339Nano))
	txt := template.HTMLEscapeString(u.Format("2006-01-02 15:04:05") + " UTC")
	return template.HTML(`<time datetime="` + iso + `" title="` + txt + `">` + txt + `</time>`)
}

// groupThousands puts commas between thousands of a decimal's integer part.
func groupThousands(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := sign + b.String()
	if hasFrac {
		out += "." + frac
	}
	return out
}

// fieldLabel names a disclosure field for people.
func fieldLabel(f string) string {
	switch f {
	case fieldName:
		return "Cardholder name"
	case fieldEmail:
		return "Email"
	case fieldCountry:
		return "Billing country"
	case fieldAddress:
		return "Billing address"
	case fieldIP:
		return "IP address"
	case fieldExpMonth:
		return "Expiry month"
	case fieldExpYear:
		return "Expiry year"
	}
	return f
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
