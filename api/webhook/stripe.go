package webhook

import "strings"

// NormalizeStripe parses a Stripe event (API version independent). Every
// event needs id, type and created (unix seconds, which becomes OccurredAt);
// the merchant is account, else defaultMerchant. The mapped types are:
//
//	charge.succeeded               payment.captured if captured, else payment.authorized
//	charge.captured                payment.captured
//	charge.failed                  payment.failed
//	charge.refunded                payment.refunded, Amount = amount_refunded (cumulative)
//	charge.dispute.created         payment.chargeback, Amount = dispute amount
//	charge.dispute.closed          payment.chargeback, Status = dispute status (won, lost, …)
//	payment_intent.succeeded       payment.captured, Amount = amount_received
//	payment_intent.payment_failed  payment.failed
//	payment_intent.canceled        payment.voided
//
// For them data.object is required and parsed strictly: the charge, dispute
// or PaymentIntent id, currency and amount must be present and valid.
// TransactionID is the PaymentIntent id when there is one, else the Charge
// id, which then goes in AltIDs. Amount of a captured charge is
// amount_captured (amount if absent). Status is the type's suffix, except for
// disputes, where it is the dispute's status. Card comes from
// payment_method_details.card (or, for a PaymentIntent, from an expanded
// latest_charge or payment method), Cardholder from billing_details.
//
// Any other type becomes [EventOpaque]: only id, type, created and the
// merchant are required, and TransactionID is a best effort from
// data.object's id, payment_intent and charge, else the event's own id:
// every event belongs to a transaction, so that cardholder requests can
// reach its personal data.
//
// Sensitive authentication data is stripped as for generic events, although
// Stripe never sends it. Every error wraps [ErrMalformed]; a field's error is
// a [*FieldError].
func NormalizeStripe(body []byte, defaultMerchant string) (*Event, error) {
	dec, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	root := dec.root
	ev := &Event{SADRemoved: dec.sadRemoved}
	top := fields{m: root}

	if ev.EventID, err = top.reqID("id"); err != nil {
		return nil, err
	}
	if ev.ProcessorType, err = top.reqID("type"); err != nil {
		return nil, err
	}
	if ev.OccurredAt, err = top.unixTime("created"); err != nil {
		return nil, err
	}
	account, hasAccount, err := top.id("account")
	switch {
	case err != nil:
		return nil, err
	case hasAccount:
		ev.MerchantID = account
	case defaultMerchant != "":
		ev.MerchantID = defaultMerchant
	default:
		return nil, errNoMerchant("account")
	}

	var address fields
	switch ev.ProcessorType {
	case "charge.succeeded", "charge.captured", "charge.failed", "charge.refunded":
		address, err = readStripeCharge(ev, top)
	case "charge.dispute.created", "charge.dispute.closed":
		address, err = readStripeDispute(ev, top)
	case "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled":
		address, err = readStripePaymentIntent(ev, top)
	default:
		address, err = readStripeOpaque(ev, top)
	}
	if err != nil {
		return nil, err
	}
	if data, ok := root["data"].(map[string]any); ok {
		collectStripeIdentifiers(&ev.Identifiers, data["object"], 0)
	}
	if err := finishRaw(ev, root, "", address); err != nil {
		return nil, err
	}
	return ev, nil
}

// dataObject returns the required data.object of a mapped event.
func dataObject(top fields) (fields, error) {
	data, _, err := top.obj("data")
	if err != nil {
		return fields{}, err
	}
	obj, ok, err := data.obj("object")
	if err == nil && !ok {
		err = data.errorf("object", "is required")
	}
	return obj, err
}

// readStripeCharge reads a charge.* event and returns the billing address.
func readStripeCharge(ev *Event, top fields) (fields, error) {
	obj, err := dataObject(top)
	if err != nil {
		return fields{}, err
	}
	charge, err := obj.reqID("id")
	if err != nil {
		return fields{}, err
	}
	pi, _, err := obj.ref("payment_intent")
	if err != nil {
		return fields{}, err
	}
	setTransaction(ev, pi, charge)
	if ev.Currency, err = obj.currency("currency"); err != nil {
		return fields{}, err
	}
	if err := checkMapped(obj, chargeAmounts, "captured"); err != nil {
		return fields{}, err
	}

	switch ev.ProcessorType {
	case "charge.succeeded":
		captured, ok, err := obj.boolean("captured")
		if err == nil && !ok {
			err = obj.errorf("captured", "is required")
		}
		if err != nil {
			return fields{}, err
		}
		if captured {
			ev.Type = EventCaptured
			ev.Amount, err = capturedAmount(obj)
		} else {
			ev.Type = EventAuthorized
			ev.Amount, err = obj.amount("amount")
		}
		if err != nil {
			return fields{}, err
		}
	case "charge.captured":
		ev.Type = EventCaptured
		ev.Amount, err = capturedAmount(obj)
	case "charge.failed":
		ev.Type = EventFailed
		ev.Amount, err = obj.amount("amount")
	case "charge.refunded":
		ev.Type = EventRefunded
		ev.Amount, err = obj.amount("amount_refunded")
	}
	if err != nil {
		return fields{}, err
	}
	ev.Status = typeSuffix(ev.Type)
	return readChargeDetails(ev, obj)
}

// The amount members of a charge and of a PaymentIntent: each event type
// maps one of them, and all of them must be well typed (see checkMapped).
var (
	chargeAmounts        = []string{"amount", "amount_captured", "amount_refunded"}
	paymentIntentAmounts = []string{"amount", "amount_received"}
)

// checkMapped checks the type of the members of a mapped object that some
// event type reads, whichever this event reads: amounts (JSON integers in
// [0, 2^53]) and, if named, one boolean. A charge.refunded event maps
// amount_refunded, not amount, yet an amount sent as a string makes it as
// malformed as it makes a charge.failed event, which maps it; accepting it
// would store a body that the same object under another type refuses.
func checkMapped(obj fields, amounts []string, boolean string) error {
	for _, k := range amounts {
		if _, _, err := obj.integer(k, 0, maxAmount); err != nil {
			return err
		}
	}
	if boolean != "" {
		if _, _, err := obj.boolean(boolean); err != nil {
			return err
		}
	}
	return nil
}

// capturedAmount is amount_captured, or amount for API versions before it.
func capturedAmount(charge fields) (int64, error) {
	if _, ok := charge.get("amount_captured"); ok {
		return charge.amount("amount_captured")
	}
	return charge.amount("amount")
}

// readChargeDetails reads the card and cardholder of a charge object and
// returns its billing address.
func readChargeDetails(ev *Event, charge fields) (fields, error) {
	pmd, _, err := charge.obj("payment_method_details")
	if err != nil {
		return fields{}, err
	}
	card, _, err := pmd.obj("card")
	if err != nil {
		return fields{}, err
	}
	if err := readStripeCard(card, &ev.Card); err != nil {
		return fields{}, err
	}
	return readBillingDetails(ev, charge)
}

// readPaymentMethod reads the card and cardholder of a PaymentMethod object
// and returns its billing address.
func readPaymentMethod(ev *Event, pm fields) (fields, error) {
	card, _, err := pm.obj("card")
	if err != nil {
		return fields{}, err
	}
	if err := readStripeCard(card, &ev.Card); err != nil {
		return fields{}, err
	}
	return readBillingDetails(ev, pm)
}

// readBillingDetails reads the cardholder from the billing_details of a
// charge or PaymentMethod and returns the address.
func readBillingDetails(ev *Event, parent fields) (fields, error) {
	bd, _, err := parent.obj("billing_details")
	if err != nil {
		return fields{}, err
	}
	address, _, err := bd.obj("address")
	if err != nil {
		return fields{}, err
	}
	return address, readCardholder(bd, address, &ev.Cardholder)
}

// readStripeCard reads a Stripe card hash (charge payment_method_details.card
// or PaymentMethod card).
func readStripeCard(card fields, c *Card) error {
	var errs [5]error
	c.Brand, errs[0] = card.text("brand")
	c.Last4, errs[1] = card.last4("last4")
	c.ExpMonth, errs[2] = card.month("exp_month")
	c.ExpYear, errs[3] = card.year("exp_year")
	c.Fingerprint, errs[4] = card.text("fingerprint")
	return firstErr(errs[:]...)
}

// readStripeDispute reads a charge.dispute.* event and returns the billing
// address of an expanded charge, if any.
func readStripeDispute(ev *Event, top fields) (fields, error) {
	obj, err := dataObject(top)
	if err != nil {
		return fields{}, err
	}
	if _, err := obj.reqID("id"); err != nil {
		return fields{}, err
	}
	charge, chargeObj, err := obj.ref("charge")
	if err == nil && charge == "" {
		err = obj.errorf("charge", "is required")
	}
	if err != nil {
		return fields{}, err
	}
	pi, _, err := obj.ref("payment_intent")
	if err != nil {
		return fields{}, err
	}
	setTransaction(ev, pi, charge)
	ev.Type = EventChargeback
	if ev.Amount, err = obj.amount("amount"); err != nil {
		return fields{}, err
	}
	if ev.Currency, err = obj.currency("currency"); err != nil {
		return fields{}, err
	}
	status, ok, err := obj.id("status")
	switch {
	case err != nil:
		return fields{}, err
	case ok:
		ev.Status = status
	case ev.ProcessorType == "charge.dispute.closed":
		return fields{}, obj.errorf("status", "is required")
	default:
		ev.Status = typeSuffix(ev.Type)
	}
	evidence, _, err := obj.obj("evidence")
	if err != nil {
		return fields{}, err
	}
	if chargeObj.m != nil {
		address, err := readChargeDetails(ev, chargeObj)
		if err == nil {
			err = readEvidence(evidence, &ev.Cardholder)
		}
		return address, err
	}
	if err := readEvidence(evidence, &ev.Cardholder); err != nil {
		return fields{}, err
	}
	// Recent API versions describe the disputed card on the dispute.
	pmd, _, err := obj.obj("payment_method_details")
	if err != nil {
		return fields{}, err
	}
	card, _, err := pmd.obj("card")
	if err != nil {
		return fields{}, err
	}
	return fields{}, readStripeCard(card, &ev.Card)
}

// readEvidence fills the cardholder's name and email from a dispute's
// evidence where the charge did not give them.
func readEvidence(evidence fields, h *Cardholder) error {
	name, err1 := evidence.text("customer_name")
	email, err2 := evidence.email("customer_email_address")
	if err := firstErr(err1, err2); err != nil {
		return err
	}
	if h.Name == "" {
		h.Name = name
	}
	if h.Email == "" {
		h.Email = email
	}
	return nil
}

// readStripePaymentIntent reads a payment_intent.* event and returns the
// billing address of an expanded charge or payment method, if any.
func readStripePaymentIntent(ev *Event, top fields) (fields, error) {
	obj, err := dataObject(top)
	if err != nil {
		return fields{}, err
	}
	pi, err := obj.reqID("id")
	if err != nil {
		return fields{}, err
	}
	charge, chargeObj, err := obj.ref("latest_charge")
	if err != nil {
		return fields{}, err
	}
	setTransaction(ev, pi, charge)
	if ev.Currency, err = obj.currency("currency"); err != nil {
		return fields{}, err
	}
	if err := checkMapped(obj, paymentIntentAmounts, ""); err != nil {
		return fields{}, err
	}
	// The receipt email is the cardholder's email where the charge or
	// payment method names none; like every mapped member, it must be
	// well formed even when it is not used.
	receiptEmail, err := obj.email("receipt_email")
	if err != nil {
		return fields{}, err
	}
	switch ev.ProcessorType {
	case "payment_intent.succeeded":
		ev.Type = EventCaptured
		ev.Amount, err = obj.amount("amount_received")
	case "payment_intent.payment_failed":
		ev.Type = EventFailed
		ev.Amount, err = obj.amount("amount")
	case "payment_intent.canceled":
		ev.Type = EventVoided
		ev.Amount, err = obj.amount("amount")
	}
	if err != nil {
		return fields{}, err
	}
	ev.Status = typeSuffix(ev.Type)
	address, err := readPaymentIntentDetails(ev, obj, chargeObj)
	if err != nil {
		return fields{}, err
	}
	if ev.Cardholder.Email == "" {
		ev.Cardholder.Email = receiptEmail
	}
	return address, nil
}

// readPaymentIntentDetails reads the card and cardholder of a PaymentIntent
// from its expanded latest charge, else its expanded payment method (or
// that of its last payment error), and returns the billing address.
func readPaymentIntentDetails(ev *Event, obj, chargeObj fields) (fields, error) {
	if chargeObj.m != nil {
		return readChargeDetails(ev, chargeObj)
	}
	_, pm, err := obj.ref("payment_method")
	if err != nil {
		return fields{}, err
	}
	if pm.m == nil {
		lpe, _, err := obj.obj("last_payment_error")
		if err != nil {
			return fields{}, err
		}
		if _, pm, err = lpe.ref("payment_method"); err != nil {
			return fields{}, err
		}
	}
	if pm.m != nil {
		return readPaymentMethod(ev, pm)
	}
	return fields{}, nil
}

// readStripeOpaque fills the transaction ids of an unmapped event, best
// effort: a field that is missing or of the wrong type is ignored. For a
// customer object (customer.created, customer.updated, ...) it also reads
// the cardholder (name, email, address) and returns the address.
func readStripeOpaque(ev *Event, top fields) (fields, error) {
	ev.Type = EventOpaque
	data, _, _ := top.obj("data")
	obj, _, _ := data.obj("object")
	id, _, _ := obj.id("id")
	kind, _, _ := obj.str("object")
	if kind == "customer" {
		ev.TransactionID = id
		address, _, err := obj.obj("address")
		if err != nil {
			return fields{}, err
		}
		return address, readCardholder(obj, address, &ev.Cardholder)
	}
	pi, _, _ := obj.ref("payment_intent")
	charge, _, _ := obj.ref("charge")
	switch kind {
	case "payment_intent":
		pi = id
	case "charge":
		charge = id
	}
	switch {
	case pi != "" || charge != "":
		setTransaction(ev, pi, charge)
	case id != "":
		ev.TransactionID = id
	default:
		ev.TransactionID = ev.EventID
	}
	return fields{}, nil
}

// setTransaction sets the transaction id to the PaymentIntent id when there
// is one, keeping the Charge id searchable, else to the Charge id.
func setTransaction(ev *Event, pi, charge string) {
	switch {
	case pi == "":
		ev.TransactionID = charge
	case charge == "" || charge == pi:
		ev.TransactionID = pi
	default:
		ev.TransactionID, ev.AltIDs = pi, []string{charge}
	}
}

// typeSuffix is the default status of an event type: "captured" for
// payment.captured.
func typeSuffix(t EventType) string {
	return strings.TrimPrefix(string(t), "payment.")
}
