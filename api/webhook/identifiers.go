package webhook

import (
	"slices"
	"strings"
)

func (ids *Identifiers) addEmail(v string) {
	v = strings.ToLower(strings.TrimSpace(v))
	local, domain, ok := strings.Cut(v, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(v, " \t\r\n") || len(v) > 320 || slices.Contains(ids.Emails, v) {
		return
	}
	ids.Emails = append(ids.Emails, v)
}

func (ids *Identifiers) addFingerprint(v string) {
	if v != "" && len(v) <= 255 && !slices.Contains(ids.Fingerprints, v) {
		ids.Fingerprints = append(ids.Fingerprints, v)
	}
}

func (ids *Identifiers) addCustomer(v string) {
	if strings.HasPrefix(v, "cus_") && len(v) <= 255 && !slices.Contains(ids.Customers, v) {
		ids.Customers = append(ids.Customers, v)
	}
}

// Keys of a Stripe object whose string values are a cardholder's email or
// card fingerprint, in any object of any event type: billing_details.email,
// receipt_email, a customer's email, a dispute's
// evidence.customer_email_address, a Checkout Session's customer_email and
// customer_details.email, an Invoice's customer_email.
var (
	stripeEmailKeys       = []string{"email", "receipt_email", "customer_email", "customer_email_address"}
	stripeFingerprintKeys = []string{"fingerprint"}
)

// maxIdentifierDepth bounds the walk of collectStripeIdentifiers; decoding
// already bounds the nesting of the whole body.
const maxIdentifierDepth = 16

// collectStripeIdentifiers adds to ids every email, card fingerprint and
// customer id in v, a Stripe event's data.object: the customer of any
// object ("customer": "cus_..." or an expanded customer), customer objects
// themselves, and the keys above, at any depth. It looks at values only by
// their key, never at their shape, so a field Stripe adds later under a
// known key is found too.
func collectStripeIdentifiers(ids *Identifiers, v any, depth int) {
	if depth > maxIdentifierDepth {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		if kind, _ := x["object"].(string); kind == "customer" {
			if id, ok := x["id"].(string); ok {
				ids.addCustomer(id)
			}
		}
		for k, val := range x {
			switch s, isString := val.(string); {
			case isString && k == "customer":
				ids.addCustomer(s)
			case isString && slices.Contains(stripeEmailKeys, k):
				ids.addEmail(s)
			case isString && slices.Contains(stripeFingerprintKeys, k):
				ids.addFingerprint(s)
			default:
				collectStripeIdentifiers(ids, val, depth+1)
			}
		}
	case []any:
		for _, e := range x {
			collectStripeIdentifiers(ids, e, depth+1)
		}
	}
}
