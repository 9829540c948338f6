package ledger

import (
	"crypto/sha256"
	"time"
)

// PaymentBody is the body of a [KindPayment] entry. Anything that links to
// the cardholder (card token, BIN, last 4, expiry, name, email, address, IP,
// the raw payload) appears only as ciphertext in Sealed, under the subject's
// data key DataKey; the financial facts are in clear.
type PaymentBody struct {
	Source        string    `json:"source"`
	EventID       string    `json:"event_id"`
	WebhookID     string    `json:"webhook_id,omitempty"`
	Type          string    `json:"type"`           // payment.captured, ... or opaque
	ProcessorType string    `json:"processor_type"` // e.g. charge.refunded
	TransactionID string    `json:"transaction_id"`
	AltIDs        []string  `json:"alt_ids,omitempty"`
	MerchantID    string    `json:"merchant_id"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Status        string    `json:"status"`
	OccurredAt    time.Time `json:"occurred_at"`
	Brand         string    `json:"brand,omitempty"`
	SADRemoved    bool      `json:"sad_removed"`
	// DataKey is the id of the subject data key the Sealed fields use.
	DataKey string `json:"data_key,omitempty"`
	// Sealed maps field names to AEAD ciphertexts bound to (ledger id,
	// entry id, field name).
	Sealed map[string][]byte `json:"sealed,omitempty"`
}

// Payment event types.
const (
	TypeAuthorized = "payment.authorized"
	TypeCaptured   = "payment.captured"
	TypeRefunded   = "payment.refunded"
	TypeVoided     = "payment.voided"
	TypeFailed     = "payment.failed"
	TypeChargeback = "payment.chargeback"
	TypeSettled    = "payment.settled"
	TypeOpaque     = "opaque"
)

// AccessBody is the body of a [KindAccess] entry (PCI DSS 10.2): who did
// what, when, from where, to which data, and whether it succeeded.
type AccessBody struct {
	ActorID   string   `json:"actor_id"`
	ActorName string   `json:"actor_name"`
	Role      string   `json:"role"`
	Action    string   `json:"action"`
	Resource  string   `json:"resource"`
	Merchants []string `json:"merchants,omitempty"` // merchants whose data was read
	Purpose   string   `json:"purpose,omitempty"`
	Reason    string   `json:"justification,omitempty"`
	Result    string   `json:"result"` // success or failure
	Status    int      `json:"status"`
	OriginIP  string   `json:"origin_ip"`
}

// AdminBody is the body of a [KindAdmin] or [KindSecurity] entry.
type AdminBody struct {
	ActorID   string            `json:"actor_id"`
	ActorName string            `json:"actor_name"`
	Action    string            `json:"action"`
	Target    string            `json:"target,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	OriginIP  string            `json:"origin_ip,omitempty"`
}

// TxState is the derived state of one transaction, folded from its payment
// entries in sequence order.
type TxState struct {
	TransactionID string    `json:"transaction_id"`
	AltIDs        []string  `json:"alt_ids,omitempty"`
	MerchantID    string    `json:"merchant_id"`
	Status        string    `json:"status"`
	Currency      string    `json:"currency"`
	Authorized    int64     `json:"amount_authorized"`
	Captured      int64     `json:"amount_captured"`
	Refunded      int64     `json:"amount_refunded"`
	ChargedBack   int64     `json:"amount_charged_back"`
	FirstSeen     time.Time `json:"first_seen"`
	LastUpdated   time.Time `json:"last_updated"`
	CapturedAt    time.Time `json:"captured_at,omitzero"`
	StatusAt      time.Time `json:"status_at,omitzero"` // occurred_at of the event Status comes from
	Types         []string  `json:"types"`              // distinct event types seen
	Seqs          []uint64  `json:"seqs"`               // payment entries in order
	CardSeq       *uint64   `json:"card_seq,omitempty"`
	// Card is the card entry's card, nil for a transaction whose card
	// entry was appended before copies were kept (a view then reads the
	// entry). It is the row's last field.
	Card *CardCopy `json:"card,omitempty"`

	// cardDigest is, in a state folded from 'e' rows, the card digest of
	// the card entry's row (nil if it has none); verify compares it with
	// the stored copy.
	cardDigest []byte
}

// CardCopy is the card of a transaction's card entry (the one at
// CardSeq) as that entry holds it: the entry's id (the associated data of
// its sealed fields), its brand and data key, and its sealed card fields
// (the ciphertexts themselves, under the entry's data key, which an
// erasure destroys). A masked view of the transaction opens these instead
// of reading the entry. Verify checks the copy against the entry's 'e'
// row, which holds its digest (foldrow.go).
type CardCopy struct {
	Entry   string     `json:"entry"`
	Brand   string     `json:"brand"`
	DataKey string     `json:"data_key"`
	Sealed  CardSealed `json:"sealed"`
}

// CardSealed are the sealed card fields of a card copy; nil when the
// entry has none (a Stripe charge has a last 4 only).
type CardSealed struct {
	BIN   []byte `json:"bin,omitzero"`
	Token []byte `json:"card_token,omitzero"`
	Last4 []byte `json:"last4,omitzero"`
}

// cardFields are the names of the sealed card fields, in the order of
// CardSealed and of json.Marshal.
var cardFields = [...]string{"bin", "card_token", "last4"}

// cardCopyOf returns the card copy of payment entry entryID. Its
// ciphertexts share one allocation of their own: a state in the
// appender's cache must not keep the rest of a decoded body alive.
func cardCopyOf(entryID string, p *PaymentBody) *CardCopy {
	c := &CardCopy{Entry: entryID, Brand: p.Brand, DataKey: p.DataKey}
	n := 0
	for _, f := range cardFields {
		n += len(p.Sealed[f])
	}
	buf := make([]byte, 0, n)
	for i, dst := range [...]*[]byte{&c.Sealed.BIN, &c.Sealed.Token, &c.Sealed.Last4} {
		if v, ok := p.Sealed[cardFields[i]]; ok {
			start := len(buf)
			buf = append(buf, v...)
			*dst = buf[start:len(buf):len(buf)]
		}
	}
	return c
}

// cardDigestSize is the bytes of a card copy's digest in an 'e' row.
const cardDigestSize = 16

// cardDigest returns the digest of a card copy's stored form.
func cardDigest(stored []byte) []byte {
	d := sha256.Sum256(stored)
	return d[:cardDigestSize]
}

// foldInput is what one payment entry contributes to its transaction's
// state. It is also stored as the entry's 'e' index row, so verify can
// re-fold every transaction from one sequential scan of the index.
type foldInput struct {
	Type       string    `json:"t"`
	Merchant   string    `json:"m"`
	Amount     int64     `json:"a"`
	Currency   string    `json:"c,omitempty"`
	Status     string    `json:"s,omitempty"`
	OccurredAt time.Time `json:"o"`
	AltIDs     []string  `json:"x,omitempty"`
	Card       bool      `json:"k,omitempty"`
	// CardDigest is the digest of the entry's card copy (only in 'e'
	// rows, from the time copies are kept; nil otherwise).
	CardDigest []byte `json:"-"`
}

func foldInputOf(p *PaymentBody) *foldInput {
	_, hasToken := p.Sealed["card_token"]
	_, hasLast4 := p.Sealed["last4"]
	return &foldInput{
		Type: p.Type, Merchant: p.MerchantID, Amount: p.Amount, Currency: p.Currency, Status: p.Status,
		OccurredAt: p.OccurredAt.UTC(), AltIDs: p.AltIDs, Card: hasToken || hasLast4,
	}
}

// fold applies one payment entry to the state. Amounts follow the event
// semantics: refunds and chargebacks carry cumulative amounts (Stripe's
// amount_refunded), so the latest value wins.
func (s *TxState) fold(seq uint64, txid string, p *foldInput) {
	if s.TransactionID == "" {
		s.TransactionID = txid
		s.MerchantID = p.Merchant
		s.FirstSeen = p.OccurredAt
	}
	for _, id := range p.AltIDs {
		if id != s.TransactionID && !contains(s.AltIDs, id) {
			s.AltIDs = append(s.AltIDs, id)
		}
	}
	if p.OccurredAt.Before(s.FirstSeen) {
		s.FirstSeen = p.OccurredAt
	}
	if p.OccurredAt.After(s.LastUpdated) {
		s.LastUpdated = p.OccurredAt
	}
	s.Seqs = append(s.Seqs, seq)
	if !contains(s.Types, p.Type) {
		s.Types = append(s.Types, p.Type)
	}
	if p.Card {
		c := seq
		s.CardSeq = &c
		s.cardDigest = p.CardDigest
	}
	if p.Type == TypeOpaque {
		return
	}
	if s.Currency == "" {
		s.Currency = p.Currency
	}
	// Webhooks are at-least-once and unordered: the status is that of the
	// latest event by occurred_at (ties: the later entry), and cumulative
	// amounts only grow, whatever order the events arrive in.
	if !p.OccurredAt.Before(s.StatusAt) {
		s.Status, s.StatusAt = p.Status, p.OccurredAt
	}
	switch p.Type {
	case TypeAuthorized:
		s.Authorized = max(s.Authorized, p.Amount)
	case TypeCaptured:
		s.Captured = max(s.Captured, p.Amount)
		s.Authorized = max(s.Authorized, p.Amount)
		if s.CapturedAt.IsZero() || p.OccurredAt.Before(s.CapturedAt) {
			s.CapturedAt = p.OccurredAt
		}
	case TypeRefunded:
		s.Refunded = max(s.Refunded, p.Amount)
	case TypeChargeback:
		s.ChargedBack = max(s.ChargedBack, p.Amount)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
