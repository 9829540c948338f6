package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Sealed field names: the contract's disclosure field names, plus the card
// fields the masked view decrypts.
const (
	fieldCardToken      = "card_token"
	fieldBIN            = "bin"
	fieldLast4          = "last4"
	fieldExpMonth       = "exp_month"
	fieldExpYear        = "exp_year"
	fieldFingerprint    = "fingerprint"
	fieldName           = "cardholder_name"
	fieldEmail          = "email"
	fieldCountry        = "billing_country"
	fieldAddress        = "billing_address"
	fieldIP             = "ip"
	fieldRaw            = "raw"
	digestLabelWebhooks = "webhook body"
)

// Subject id prefixes: a subject is an identifier's card token or blind
// index with its kind. A subject is global, not per merchant; requests
// and searches limit what they find to the caller's scope.
const (
	subjectCard        = "card:"
	subjectEmail       = "email:"
	subjectFingerprint = "fingerprint:"
	subjectCustomer    = "customer:"
)

// Blind index labels of the identifiers that have no token.
const (
	blindEmail       = "email"
	blindFingerprint = "fingerprint"
	blindCustomer    = "customer"
)

// ingest receives one webhook event. Checks run in the contract's order:
// unknown source (404), size limit (413), signature (401), content type
// (415), JSON shape (400). It answers 200 only once the entry is durable.
func (s *Server) ingest(c *gin.Context) {
	name := c.Param("source")
	src, ok := s.sources[name]
	if !ok {
		s.abort(c, newError(http.StatusNotFound, "unknown_source", "no webhook source of that name"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.webhookResult(src, "too_large")
			s.abort(c, newError(http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds the size limit"))
			return
		}
		s.abort(c, badRequest("unreadable_body", "could not read the request body"))
		return
	}
	now := s.now()
	var webhookID string
	switch src.Scheme {
	case webhook.SchemeStripe:
		err = webhook.VerifyStripe(c.Request.Header, body, src.Secrets, src.Tolerance, now)
	case webhook.SchemeStandard:
		webhookID, err = webhook.VerifyStandard(c.Request.Header, body, src.Secrets, src.Tolerance, now)
	default:
		err = errors.New("unknown scheme")
	}
	if err != nil {
		if errors.Is(err, webhook.ErrSignature) {
			s.metrics.badSignatures.WithLabelValues(src.Name).Inc()
			s.webhookResult(src, "bad_signature")
			s.logBadSignature(src.Name, c.ClientIP())
		}
		s.abort(c, err)
		return
	}
	if mt, _, err := mime.ParseMediaType(c.ContentType()); c.ContentType() != "" && (err != nil || mt != "application/json") {
		s.webhookResult(src, "bad_content_type")
		s.abort(c, newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "webhook bodies must be application/json"))
		return
	}
	var ev *webhook.Event
	if src.Scheme == webhook.SchemeStripe {
		ev, err = webhook.NormalizeStripe(body, src.DefaultMerchant)
	} else {
		ev, err = webhook.NormalizeGeneric(body, src.DefaultMerchant)
	}
	if err != nil {
		s.webhookResult(src, "malformed")
		s.abort(c, err)
		return
	}
	if !src.allows(ev.MerchantID) {
		s.webhookResult(src, "merchant_not_allowed")
		s.abort(c, errMerchantNotAllowed)
		return
	}
	rec, err := s.paymentRecord(c, src, webhookID, ev, body, now)
	if err != nil {
		s.webhookResult(src, "rejected")
		s.abort(c, err)
		return
	}
	if hook := s.beforeAppend.Load(); hook != nil {
		(*hook)(ev.EventID)
	}
	res, err := s.appender.Append(c, rec)
	if errors.Is(err, ledger.ErrConflict) && s.sameDelivery(src, res.Seq, body) {
		// The original was digested under a blind key that has since been
		// rotated; the bodies are the same.
		res.Duplicate, err = true, nil
	}
	if errors.Is(err, ledger.ErrConflict) {
		s.webhookResult(src, "conflict")
		s.recordSecurityEvent(c, src.Name, "webhook.idempotency_conflict", ev.EventID, map[string]string{"original_seq": strconv.FormatUint(res.Seq, 10)})
		s.abort(c, err)
		return
	}
	if errors.Is(err, ledger.ErrSourceConflict) {
		s.webhookResult(src, "source_conflict")
		s.recordSecurityEvent(c, src.Name, "webhook.transaction_source_conflict", ev.EventID, map[string]string{"transaction_id": ev.TransactionID})
		s.abort(c, err)
		return
	}
	if errors.Is(err, ledger.ErrMerchantConflict) {
		s.webhookResult(src, "merchant_conflict")
		s.recordSecurityEvent(c, src.Name, "webhook.transaction_merchant_conflict", ev.EventID, map[string]string{"transaction_id": ev.TransactionID, "merchant_id": ev.MerchantID})
		s.abort(c, err)
		return
	}
	if err != nil {
		s.webhookResult(src, "error")
		s.abort(c, err)
		return
	}
	if res.Duplicate {
		s.webhookResult(src, "duplicate")
	} else {
		s.webhookResult(src, "stored")
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", ingestAnswer(res.Seq, res.Duplicate))
}

// ingestAnswer is the 200 answer to a delivery, the bytes that c.JSON writes
// for gin.H{"seq": seq, "duplicate": duplicate}, without its reflection.
func ingestAnswer(seq uint64, duplicate bool) []byte {
	b := make([]byte, 0, 48)
	b = append(b, `{"duplicate":`...)
	b = strconv.AppendBool(b, duplicate)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}

func (s *Server) webhookResult(src Source, result string) {
	s.metrics.webhooks.WithLabelValues(src.Name, result).Inc()
}

// logBadSignature logs a rejected signature, one line per source per
// logEvery; the metric counts every one.
func (s *Server) logBadSignature(source, ip string) {
	if n, ok := s.logLimit.allow("bad signature "+source, time.Now()); ok {
		s.log.Warn("webhook signature rejected", "source", source, "origin_ip", ip, "suppressed_since_last", n)
	}
}

// sameDelivery reports whether the entry at seq was made from body.
func (s *Server) sameDelivery(src Source, seq uint64, body []byte) bool {
	e, err := s.ledger.Entry(seq)
	if err != nil || e.Unique == nil {
		return false
	}
	return s.keys.MatchDigest(digestLabelWebhooks, dedupInput(src, body), e.Unique.Digest)
}

// dedupInput is what a delivery's idempotency digest covers: the raw body,
// except that for Stripe the top-level pending_webhooks counter is left
// out, since Stripe may resend an event with a different count and a retry
// must not look like a conflicting event.
func dedupInput(src Source, body []byte) []byte {
	if src.Scheme != webhook.SchemeStripe {
		return body
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return body
	}
	if _, ok := m["pending_webhooks"]; !ok {
		return body
	}
	delete(m, "pending_webhooks")
	b, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return b
}

// recordSecurityEvent appends a security entry for a rejected delivery (an
// event id reused with another body, a transaction id claimed by a second
// merchant). Its failure is logged, not answered: the 409 stands either way.
func (s *Server) recordSecurityEvent(c *gin.Context, source, action, eventID string, details map[string]string) {
	_, err := s.appender.Append(c, ledger.Record{
		Kind: ledger.KindSecurity, ID: ledger.NewRecordID(), Time: s.now(), Policy: PolicyVersion,
		Body: ledger.AdminBody{
			ActorID: "webhook:" + source, ActorName: source, Action: action,
			Target: "event/" + eventID, Details: details, OriginIP: c.ClientIP(),
		},
	})
	if err != nil {
		s.log.Error("failed to record security event", "source", source, "action", action, "err", err)
	}
}

// paymentRecord tokenizes and seals a normalized event into a ledger record.
// The clear PAN is used here only to compute the token, BIN and last 4.
func (s *Server) paymentRecord(c *gin.Context, src Source, webhookID string, ev *webhook.Event, body []byte, now time.Time) (ledger.Record, error) {
	// Status, type and brand are stored in clear and are never numbers: a
	// sender that put a card number there gets 400, never an entry holding
	// it. Identifiers are stored as sent: a numeric 13-19 digit id (Adyen's
	// pspReference, say) passes the Luhn check one time in ten, so refusing
	// Luhn-valid ids would refuse real payments.
	for _, f := range []struct{ name, value string }{
		{"status", ev.Status}, {"type", ev.ProcessorType}, {"card.brand", ev.Card.Brand},
	} {
		if hasPAN(f.value) {
			return ledger.Record{}, &webhook.FieldError{Field: f.name, Reason: "holds a card number"}
		}
	}
	id := ledger.NewRecordID()
	// The fields to seal, at most one of each; a slice, not a map: it is
	// built and read once per event.
	clear := make([]sealField, 0, 12)
	add := func(f, v string) {
		if v != "" {
			clear = append(clear, sealField{f, v})
		}
	}
	// The subjects of the event's identifiers, as rows under every enabled
	// token and blind index key (one, but during a key rotation), so that a
	// restriction recorded before a rotation covers events after it.
	var subjects []string
	if ev.Card.PAN != "" {
		card, err := s.keys.Tokenize(ev.Card.PAN)
		if err != nil {
			return ledger.Record{}, &webhook.FieldError{Field: "card.number", Reason: "not a valid card number"}
		}
		add(fieldCardToken, card.Token)
		add(fieldBIN, card.BIN)
		add(fieldLast4, card.Last4)
		for _, tok := range card.Tokens {
			subjects = append(subjects, subjectCard+tok)
		}
	} else {
		add(fieldLast4, ev.Card.Last4)
	}
	add(fieldFingerprint, ev.Card.Fingerprint)
	add(fieldEmail, ev.Cardholder.Email)
	for _, id := range []struct {
		prefix, label string
		values        []string
	}{
		{subjectEmail, blindEmail, ev.Identifiers.Emails},
		{subjectFingerprint, blindFingerprint, ev.Identifiers.Fingerprints},
		{subjectCustomer, blindCustomer, ev.Identifiers.Customers},
	} {
		for _, v := range id.values {
			for _, bi := range s.keys.BlindIndexes(id.label, v) {
				subjects = append(subjects, id.prefix+bi)
			}
		}
	}
	if ev.Card.ExpMonth != 0 {
		add(fieldExpMonth, strconv.Itoa(ev.Card.ExpMonth))
	}
	if ev.Card.ExpYear != 0 {
		add(fieldExpYear, strconv.Itoa(ev.Card.ExpYear))
	}
	add(fieldName, ev.Cardholder.Name)
	add(fieldCountry, ev.Cardholder.Country)
	add(fieldAddress, string(ev.Cardholder.Address))
	add(fieldIP, ev.IP)
	// Packed: about half its length (webhook.RawCodec).
	add(fieldRaw, string(s.rawCodec.Pack(ev.Raw)))

	rec := ledger.Record{
		Kind: ledger.KindPayment, ID: id, Time: now, Policy: PolicyVersion,
		Unique: &ledger.Unique{
			Key:    "webhook/" + src.Name + "/" + ev.EventID,
			Digest: s.keys.Digest(digestLabelWebhooks, dedupInput(src, body)),
		},
	}
	pb := &ledger.PaymentBody{
		Source: src.Name, EventID: ev.EventID, WebhookID: webhookID,
		Type: string(ev.Type), ProcessorType: ev.ProcessorType,
		TransactionID: ev.TransactionID, AltIDs: ev.AltIDs, MerchantID: ev.MerchantID,
		Amount: ev.Amount, Currency: ev.Currency, Status: ev.Status, OccurredAt: ev.OccurredAt,
		Brand: ev.Card.Brand, SADRemoved: ev.SADRemoved,
	}
	rec.Body = pb
	if len(clear) == 0 {
		return rec, nil
	}
	// A key of its own: an erasure destroys the keys of the events
	// ordered before it, and no event after it can be sealed under one of
	// them (docs/privacy-requests.md).
	dk, err := s.keyPool.take(c)
	if err != nil {
		return ledger.Record{}, err
	}
	if s.cluster != nil {
		// The node seals the event's subjects for the stream with it.
		s.dataKeys.Remember(dk)
	}
	pb.DataKey = dk.ID()
	pb.Sealed = make(map[string][]byte, len(clear))
	ledgerID := s.ledger.ID()
	for _, f := range clear {
		ct, err := dk.Seal(crypto.AD{Ledger: ledgerID, Entry: id, Field: f.name}, []byte(f.value))
		if err != nil {
			return ledger.Record{}, err
		}
		pb.Sealed[f.name] = ct
	}
	if ev.TransactionID != "" {
		rec.Link = &ledger.SubjectLink{TransactionID: ev.TransactionID, DataKey: dk.ID(), Subjects: subjects}
	}
	return rec, nil
}

// sealField is one personal field of an event, in clear, to be sealed.
type sealField struct{ name, value string }
