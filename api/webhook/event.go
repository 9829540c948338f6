package webhook

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/paytrail/paytrail/ledger"
)

// EventType is the normalized kind of a payment event.
type EventType string

// The event types of the generic event JSON. Stripe events are mapped onto
// them, and Stripe event types with no mapping become [EventOpaque].
// The values are the ledger's payment types, so a normalized event's type
// is stored as is.
const (
	EventAuthorized EventType = ledger.TypeAuthorized
	EventCaptured   EventType = ledger.TypeCaptured
	EventRefunded   EventType = ledger.TypeRefunded
	EventVoided     EventType = ledger.TypeVoided
	EventFailed     EventType = ledger.TypeFailed
	EventChargeback EventType = ledger.TypeChargeback
	EventSettled    EventType = ledger.TypeSettled
	// EventOpaque is an event paytrail stores but does not interpret: its
	// Amount, Currency and Status are empty and its TransactionID is a best
	// effort (for Stripe, the event's own id when nothing better is there).
	EventOpaque EventType = ledger.TypeOpaque
)

// Event is a verified webhook body in paytrail's terms. Fields that the body
// did not carry are left zero. Identifier fields (EventID, TransactionID,
// AltIDs, MerchantID, Status) hold 1 to 255 printable ASCII characters without
// spaces.
type Event struct {
	// EventID is the body's own event id: with the source, the
	// deduplication key of the delivery.
	EventID string
	Type    EventType
	// ProcessorType is the type string as the processor sent it, such as
	// "charge.refunded" or "payment.captured".
	ProcessorType string
	// OccurredAt is when the processor says the event happened, in UTC.
	OccurredAt time.Time
	// TransactionID groups the events of one payment. For Stripe it is the
	// PaymentIntent id when there is one, else the Charge id.
	TransactionID string
	// AltIDs are further ids under which the transaction must be found; for
	// Stripe, the Charge id when TransactionID is a PaymentIntent id.
	AltIDs []string
	// MerchantID is the body's merchant (generic merchant_id, Stripe
	// account), else the source's default merchant.
	MerchantID string
	// Amount is in minor units of Currency, in [0, 2^53]. For a Stripe
	// refund it is the cumulative amount refunded so far (amount_refunded);
	// for a chargeback the disputed amount. A generic event's amount is
	// taken as sent.
	Amount int64
	// Currency is an active ISO 4217 code in upper case.
	Currency string
	// Status is the processor's status for the payment after this event;
	// by default the type's suffix ("captured" for payment.captured).
	Status     string
	Card       Card
	Cardholder Cardholder
	// IP is the client IP address in canonical form, if the body had one.
	IP string
	// Raw is the whole body re-encoded as JSON (object keys sorted) after
	// removing card.number and all sensitive authentication data and
	// redacting PAN-like values. It still holds personal data: it must be
	// encrypted before it is stored.
	Raw []byte
	// Identifiers are every identifier of the cardholder the event
	// carries, wherever in the body (for Stripe: billing details, a
	// PaymentIntent's receipt_email and customer, a dispute's evidence, a
	// customer object), Card.Fingerprint and Cardholder.Email included.
	// Cardholder requests find the event's transaction by any of them.
	Identifiers Identifiers
	// SADRemoved reports that the body carried sensitive authentication
	// data (see StripSAD), now removed from Raw.
	SADRemoved bool
	// PANRedacted reports that a value in Raw other than card.number looked
	// like a PAN and was replaced by "[redacted]".
	PANRedacted bool
}

// Card is what an event says about the payment card.
type Card struct {
	// PAN is the full card number exactly as the generic event's card.number
	// gave it: 12 to 19 digits, possibly separated by spaces or dashes. The
	// caller must validate it (Luhn) and tokenize it, keep it only in
	// memory, and never log or store it. Always empty for Stripe.
	PAN string
	// Brand is the card network as the processor names it ("visa").
	Brand string
	// Last4 is the last four digits (from PAN when there is one).
	Last4 string
	// Fingerprint is the processor's own card fingerprint (Stripe).
	Fingerprint string
	// ExpMonth (1-12) and ExpYear (four digits) are zero when unknown.
	ExpMonth, ExpYear int
}

// Identifiers are a cardholder's identifiers in one event, each list
// without repeats. Emails are trimmed and lower case.
type Identifiers struct {
	Emails       []string
	Fingerprints []string // the processor's card fingerprints (Stripe)
	Customers    []string // the processor's customer ids (Stripe cus_...)
}

// Cardholder is the personal data an event carries about the payer. All of
// it must be encrypted before it is stored.
type Cardholder struct {
	Name  string
	Email string
	// Country is an upper-case ISO 3166-1 alpha-2 code.
	Country string
	// Address is the full billing address object as JSON, if the event has
	// one, with the same redactions as Event.Raw.
	Address json.RawMessage
}

// ErrMalformed is wrapped by every error that means the body must be
// answered 400: not a JSON object, or a missing or invalid field.
var ErrMalformed = errors.New("malformed event")

// FieldError reports a missing or invalid field. Field is the field's path
// in the body ("card.exp_month", "data.object.currency"); Reason says what is
// wrong with it and never quotes the value, which may be cardholder data.
type FieldError struct {
	Field  string
	Reason string
}

// Error returns "invalid field <field>: <reason>".
func (e *FieldError) Error() string {
	return "invalid field " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrMalformed.
func (e *FieldError) Unwrap() error { return ErrMalformed }
