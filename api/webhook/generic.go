package webhook

import (
	"bytes"
	"errors"
	"reflect"
)

// genericTypes are the event types a generic event may carry.
var genericTypes = map[EventType]bool{
	EventAuthorized: true, EventCaptured: true, EventRefunded: true, EventVoided: true,
	EventFailed: true, EventChargeback: true, EventSettled: true,
}

// NormalizeGeneric parses paytrail's generic event JSON (the body of a
// Standard Webhooks delivery). Required: id, type (one of the seven payment.*
// types), occurred_at (RFC 3339), transaction_id, amount (JSON integer in
// [0, 2^53], minor units) and currency (ISO 4217, any case); merchant_id
// unless defaultMerchant is non-empty. Optional: status (default: the type's
// suffix), card {number, exp_month, exp_year, brand, last4}, cardholder
// {name, email, country, address}, billing_address (an alternative to
// cardholder.address), ip and metadata (an object, kept only in Raw). Other
// members are kept in Raw. A JSON null reads as an absent member.
//
// card.number is returned in Card.PAN as given; Card.Last4 is taken from it.
// Every error wraps [ErrMalformed]; a field's error is a [*FieldError].
func NormalizeGeneric(body []byte, defaultMerchant string) (*Event, error) {
	dec, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	root := dec.root
	top := fields{m: root}
	ev := &Event{}

	// The PAN leaves the tree first, whatever shape it has, so that no
	// later step can copy it anywhere.
	card, _, err := top.obj("card")
	if err != nil {
		return nil, err
	}
	pan, hasPAN, err := card.str("number")
	delete(card.m, "number")
	if err != nil {
		return nil, err
	}
	panDigits, ok := panDigits(pan)
	if hasPAN && !ok {
		return nil, card.errorf("number", "must be 12 to 19 digits, optionally separated by spaces or dashes")
	}
	ev.Card.PAN = pan
	// The decoder left SAD out of the tree; card.number, now gone, is
	// a string or null, so it held none.
	ev.SADRemoved = dec.sadRemoved

	typ, err := top.reqStr("type")
	if err != nil {
		return nil, err
	}
	ev.Type, ev.ProcessorType = EventType(typ), typ
	if !genericTypes[ev.Type] {
		return nil, top.errorf("type", "must be one of payment.authorized, captured, refunded, voided, failed, chargeback or settled")
	}
	ev.EventID, err = top.reqID("id")
	if err != nil {
		return nil, err
	}
	if ev.OccurredAt, err = top.rfc3339("occurred_at"); err != nil {
		return nil, err
	}
	if ev.TransactionID, err = top.reqID("transaction_id"); err != nil {
		return nil, err
	}
	if ev.Amount, err = top.amount("amount"); err != nil {
		return nil, err
	}
	if ev.Currency, err = top.currency("currency"); err != nil {
		return nil, err
	}
	merchant, hasMerchant, err := top.id("merchant_id")
	switch {
	case err != nil:
		return nil, err
	case hasMerchant:
		ev.MerchantID = merchant
	case defaultMerchant != "":
		ev.MerchantID = defaultMerchant
	default:
		return nil, errNoMerchant("merchant_id")
	}
	status, hasStatus, err := top.id("status")
	if err != nil {
		return nil, err
	}
	if !hasStatus {
		status = typeSuffix(ev.Type)
	}
	ev.Status = status
	if ev.IP, err = top.ip("ip"); err != nil {
		return nil, err
	}
	if _, _, err := top.obj("metadata"); err != nil {
		return nil, err
	}

	if err := readGenericCard(card, panDigits, &ev.Card); err != nil {
		return nil, err
	}
	holder, _, err := top.obj("cardholder")
	if err != nil {
		return nil, err
	}
	address, err := genericAddress(top, holder)
	if err != nil {
		return nil, err
	}
	if err := readCardholder(holder, address, &ev.Cardholder); err != nil {
		return nil, err
	}

	if err := finishRaw(ev, root, panDigits, address); err != nil {
		return nil, err
	}
	return ev, nil
}

// readGenericCard reads the generic card object, whose number is already
// gone; pan holds its digits.
func readGenericCard(card fields, pan string, c *Card) error {
	var err1, err2, err3, err4 error
	c.Brand, err1 = card.text("brand")
	c.ExpMonth, err2 = card.month("exp_month")
	c.ExpYear, err3 = card.year("exp_year")
	c.Last4, err4 = card.last4("last4")
	if err := firstErr(err1, err2, err3, err4); err != nil {
		return err
	}
	if pan != "" {
		if c.Last4 != "" && c.Last4 != pan[len(pan)-4:] {
			return card.errorf("last4", "does not match card.number")
		}
		c.Last4 = pan[len(pan)-4:]
	}
	return nil
}

// genericAddress returns the billing address object: cardholder.address or
// billing_address, which must agree if both are present.
func genericAddress(top, holder fields) (fields, error) {
	a, hasA, err := holder.obj("address")
	if err != nil {
		return fields{}, err
	}
	b, hasB, err := top.obj("billing_address")
	if err != nil {
		return fields{}, err
	}
	if hasA && hasB && !reflect.DeepEqual(a.m, b.m) {
		return fields{}, top.errorf("billing_address", "differs from cardholder.address")
	}
	if hasA {
		return a, nil
	}
	return b, nil
}

// readCardholder reads name, email and country from holder, the country
// falling back to the address's.
func readCardholder(holder, address fields, h *Cardholder) error {
	var err1, err2, err3 error
	h.Name, err1 = holder.text("name")
	h.Email, err2 = holder.email("email")
	h.Country, err3 = holder.country("country")
	if err := firstErr(err1, err2, err3); err != nil {
		return err
	}
	if h.Country == "" {
		c, err := address.country("country")
		if err != nil {
			return err
		}
		h.Country = c
	}
	return nil
}

// finishRaw redacts PAN-like values from the tree, then sets ev.Raw and
// ev.Cardholder.Address from it.
func finishRaw(ev *Event, root map[string]any, pan string, address fields) error {
	ev.Identifiers.addEmail(ev.Cardholder.Email)
	ev.Identifiers.addFingerprint(ev.Card.Fingerprint)
	r := panRedactor{pan: pan}
	r.redact(root)
	ev.PANRedacted = r.hit
	raw, err := encodeJSON(root)
	if err != nil {
		return err
	}
	if address.m != nil {
		if ev.Cardholder.Address, err = encodeJSON(address.m); err != nil {
			return err
		}
	}
	// Fail closed should redaction ever miss an encoding of the PAN.
	if pan != "" && (bytes.Contains(raw, []byte(pan)) || bytes.Contains(ev.Cardholder.Address, []byte(pan))) {
		return errPANInRaw
	}
	ev.Raw = raw
	return nil
}

// errPANInRaw means the redaction failed to remove the PAN from Raw, which
// the tests show cannot happen; it is checked anyway because the cost of a
// PAN reaching the ledger is so high.
// It does not wrap ErrMalformed: it is our failure, not the sender's.
var errPANInRaw = errors.New("failed to redact event: card number still present after redaction")
