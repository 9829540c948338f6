package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Disclosure purposes (SECURITY.md, "What is and is not protected") and the roles that may use them.
const (
	purposeFraud      = "fraud_investigation"
	purposeLegal      = "legal_obligation"
	purposeCardholder = "cardholder_request"
)

// purposeAllowed reports whether role may disclose for purpose.
func purposeAllowed(role auth.Role, purpose string) bool {
	switch role {
	case auth.RoleAuditor:
		return purpose == purposeFraud || purpose == purposeLegal
	case auth.RolePrivacy:
		return purpose == purposeCardholder
	}
	return false
}

// List limits (docs/openapi.yaml).
const (
	defaultListLimit = 50
	maxListLimit     = 500
	// maxJustification caps the justification recorded with a disclosure.
	maxJustification = 2000
	// maxCardCandidates caps the entries read to find a transaction's card.
	maxCardCandidates = 16
)

// disclosureFields are the personal fields a disclosure returns, as sealed
// by ingest.
var disclosureFields = []string{fieldName, fieldEmail, fieldCountry, fieldAddress, fieldIP, fieldExpMonth, fieldExpYear}

var (
	errPurposeForbidden = newError(http.StatusForbidden, "purpose_not_allowed", "your role may not disclose for this purpose")
	errRestricted       = newError(http.StatusForbidden, "subject_restricted", "the cardholder has restricted the use of their data; only legal_obligation may disclose it")
	errErased           = newError(http.StatusGone, "subject_erased", "the cardholder's personal data was erased")
	errInvalidCursor    = badRequest("invalid_cursor", "the cursor is malformed, was altered, or belongs to other filters")
)

// cardView is the masked card: never the PAN, expiry or cardholder. Once
// the cardholder's data key is destroyed only the brand remains.
type cardView struct {
	Brand string `json:"brand,omitempty"`
	BIN   string `json:"bin,omitempty"`
	Last4 string `json:"last4,omitempty"`
	Token string `json:"token,omitempty"`
}

// entryView is one payment entry of a transaction in the single view.
type entryView struct {
	Seq           uint64    `json:"seq"`
	Type          string    `json:"type"`
	ProcessorType string    `json:"processor_type,omitempty"`
	Status        string    `json:"status"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	OccurredAt    time.Time `json:"occurred_at"`
	ReceivedAt    time.Time `json:"received_at"`
	SADRemoved    bool      `json:"sad_removed"`
	Source        string    `json:"source"`
	EventID       string    `json:"event_id"`
}

// txView is the masked transaction view (docs/openapi.yaml): financial
// facts, the masked card, and in the single view the entries.
type txView struct {
	TransactionID     string      `json:"transaction_id"`
	AltIDs            []string    `json:"alt_ids,omitempty"`
	MerchantID        string      `json:"merchant_id"`
	Status            string      `json:"status"`
	Currency          string      `json:"currency"`
	AmountAuthorized  int64       `json:"amount_authorized"`
	AmountCaptured    int64       `json:"amount_captured"`
	AmountRefunded    int64       `json:"amount_refunded"`
	AmountChargedBack int64       `json:"amount_charged_back"`
	Card              cardView    `json:"card"`
	Types             []string    `json:"types"`
	FirstSeen         time.Time   `json:"first_seen"`
	LastUpdated       time.Time   `json:"last_updated"`
	Entries           []entryView `json:"entries,omitempty"`
}

// paymentEntry is a payment entry with its decoded body.
type paymentEntry struct {
	entry *ledger.Entry
	body  ledger.PaymentBody
}

// listTransactions answers GET /v1/transactions: masked views in first-seen
// order (occurred_at of the earliest event, then transaction id), within the
// caller's scope, one page at a time. Filters: merchant_id (outside the
// scope: an empty list), from (inclusive) and to (exclusive) on first_seen,
// status, type ("captured" is short for "payment.captured"), card_token.
// A page may hold fewer than limit items when a filter is selective (each
// call examines a bounded number of index rows); only an empty next_cursor
// means the end. Reading the page is an access entry naming its
// transactions, appended before the answer.
func (s *Server) listTransactions(c *gin.Context) {
	p := principal(c)
	f, err := s.parseTxFilters(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	if !s.ready(c) {
		return
	}
	page := &ledger.TxPage{}
	if merchants, all, ok := scopeFilter(p, f.merchant); ok {
		q := ledger.TxQuery{
			AllMerchants: all, Merchants: merchants,
			From: f.from, To: f.to, Status: f.status, Type: f.typ,
			After: f.after, Limit: f.limit,
		}
		if f.cardToken != "" {
			q.Subjects = []string{subjectCard + f.cardToken}
		}
		if page, err = s.ledger.Transactions(c, q); err != nil {
			s.abort(c, err)
			return
		}
	}
	views, err := s.txViews(c, page.Items)
	if err != nil {
		s.abort(c, err)
		return
	}
	next := ""
	if page.Next != nil {
		next = encodeCursor(s.keys, cursorTransactions, f.canonical, cursorPos{T: page.Next.FirstSeen.UnixNano(), ID: page.Next.TransactionID})
	}
	a := access{Action: "transactions.list", Resource: f.resource(), Returned: ": " + idList(page.Items), Merchants: merchantsOf(page.Items)}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"items": views, "next_cursor": next})
}

// getTransaction answers GET /v1/transactions/:id with the masked view and
// the transaction's entries in sequence order. A transaction outside the
// caller's scope answers exactly like a missing one, and both are recorded.
func (s *Server) getTransaction(c *gin.Context) {
	a := access{Action: "transaction.read", Resource: txResource(c.Param("id"))}
	if !s.ready(c) {
		return
	}
	st, ok := s.visibleTransaction(c, a)
	if !ok {
		return
	}
	entries, err := s.paymentEntries(st)
	if err != nil {
		s.abort(c, err)
		return
	}
	v, err := s.txView(c, st, entries)
	if err != nil {
		s.abort(c, err)
		return
	}
	v.Entries = make([]entryView, 0, len(entries))
	for _, pe := range entries {
		b := pe.body
		v.Entries = append(v.Entries, entryView{
			Seq: pe.entry.Seq, Type: b.Type, ProcessorType: b.ProcessorType, Status: b.Status,
			Amount: b.Amount, Currency: b.Currency, OccurredAt: b.OccurredAt, ReceivedAt: pe.entry.Time,
			SADRemoved: b.SADRemoved, Source: b.Source, EventID: b.EventID,
		})
	}
	a.Resource, a.Merchants = "transaction/"+st.TransactionID, []string{st.MerchantID}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, v)
}

// visibleTransaction loads the transaction named by the id parameter. A
// malformed id, a missing transaction and one outside the caller's scope
// are the same recorded denial answering 404. ok is false once an answer
// was sent.
func (s *Server) visibleTransaction(c *gin.Context, a access) (*ledger.TxState, bool) {
	id := c.Param("id")
	if !auth.ValidID(id) {
		s.deny(c, a, errNotFound)
		return nil, false
	}
	st, err := s.ledger.DurableTransaction(id)
	if errors.Is(err, ledger.ErrNotFound) {
		s.deny(c, a, errNotFound)
		return nil, false
	}
	if err != nil {
		s.abort(c, err)
		return nil, false
	}
	if !principal(c).InScope(st.MerchantID) {
		s.deny(c, a, errNotFound)
		return nil, false
	}
	return st, true
}

// disclose answers POST /v1/transactions/:id/disclose: the decrypted
// personal fields of a transaction, for a purpose the caller's role may use
// and a justification. Corrections recorded for the cardholder supersede
// the original values. The access entry, with purpose and justification, is
// durable before anything is sent, and its seq is in the answer.
func (s *Server) disclose(c *gin.Context) {
	var req struct {
		Purpose       string `json:"purpose"`
		Justification string `json:"justification"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	switch req.Purpose {
	case purposeFraud, purposeLegal, purposeCardholder:
	default:
		s.abort(c, badRequest("invalid_purpose", "purpose must be fraud_investigation, legal_obligation or cardholder_request"))
		return
	}
	req.Justification = strings.TrimSpace(req.Justification)
	if req.Justification == "" || len(req.Justification) > maxJustification {
		s.abort(c, badRequest("invalid_justification", fmt.Sprintf("a justification of 1 to %d bytes is required", maxJustification)))
		return
	}
	a := access{
		Action: "transaction.disclose", Resource: txResource(c.Param("id")),
		Purpose: req.Purpose, Justification: req.Justification,
	}
	if !s.ready(c) {
		return
	}
	if !purposeAllowed(principal(c).Role, req.Purpose) {
		s.deny(c, a, errPurposeForbidden)
		return
	}
	st, ok := s.visibleTransaction(c, a)
	if !ok {
		return
	}
	a.Resource, a.Merchants = "transaction/"+st.TransactionID, []string{st.MerchantID}
	entries, err := s.paymentEntries(st)
	if err != nil {
		s.abort(c, err)
		return
	}
	fields, corrected, err := s.personalFields(c, st, entries, req.Purpose)
	if err != nil {
		if e := toError(err); e.Status == http.StatusForbidden || e.Status == http.StatusGone {
			s.deny(c, a, err)
			return
		}
		s.abort(c, err)
		return
	}
	seq, err := s.recordAccess(c, a, http.StatusOK)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{
		"transaction_id": st.TransactionID,
		"purpose":        req.Purpose,
		"fields":         fields,
		"corrected":      corrected,
		"access_seq":     seq,
	})
}

// personalFields decrypts the disclosure fields of transaction st's
// entries (the latest value of each field wins), then applies the
// corrections recorded for it. It fails with errRestricted when an
// identifier the transaction carries is restricted for its merchant and
// purpose is not legal_obligation, and with errErased when every entry with
// personal data was erased. Entries of an erased event are skipped: the
// events that arrived after an erasure are sealed under keys of their own
// and stay readable.
func (s *Server) personalFields(ctx context.Context, st *ledger.TxState, entries []paymentEntry, purpose string) (map[string]*string, []string, error) {
	subjects, err := s.ledger.TransactionSubjects(st.TransactionID)
	if err != nil {
		return nil, nil, err
	}
	restricted, err := s.ledger.Restricted(subjects, st.MerchantID)
	if err != nil {
		return nil, nil, err
	}
	if restricted && purpose != purposeLegal {
		return nil, nil, errRestricted
	}

	fields := make(map[string]*string, len(disclosureFields))
	for _, f := range disclosureFields {
		fields[f] = nil
	}
	sealed, opened := 0, 0
	for _, pe := range entries {
		if pe.body.DataKey == "" || len(pe.body.Sealed) == 0 {
			continue
		}
		sealed++
		dk, err := s.dataKeys.Get(ctx, pe.body.DataKey)
		if errors.Is(err, crypto.ErrDataKeyDestroyed) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		opened++
		for _, f := range disclosureFields {
			ct, ok := pe.body.Sealed[f]
			if !ok {
				continue
			}
			v, err := dk.Open(crypto.AD{Ledger: s.ledger.ID(), Entry: pe.entry.ID, Field: f}, ct)
			if err != nil {
				return nil, nil, err
			}
			str := string(v)
			fields[f] = &str
		}
	}
	if sealed > 0 && opened == 0 {
		return nil, nil, errErased
	}

	seqs, err := s.ledger.Corrections(st.TransactionID)
	if err != nil {
		return nil, nil, err
	}
	corrected := []string{}
	size := s.ledger.Size()
	for _, seq := range seqs {
		if seq >= size {
			continue // not durable yet
		}
		e, err := s.ledger.Entry(seq)
		if err != nil {
			return nil, nil, err
		}
		var body ledger.SubjectRequestBody
		if e.Kind != ledger.KindSubjectRequest {
			return nil, nil, fmt.Errorf("failed to apply correction: entry %d is a %s entry: %w", seq, e.Kind, ledger.ErrTampered)
		}
		if err := e.DecodeBody(&body); err != nil {
			return nil, nil, err
		}
		i := slices.IndexFunc(body.Corrections, func(sc ledger.SealedCorrection) bool { return sc.TransactionID == st.TransactionID })
		if i < 0 {
			return nil, nil, fmt.Errorf("failed to apply correction: entry %d has none for the transaction: %w", seq, ledger.ErrTampered)
		}
		sc := body.Corrections[i]
		dk, err := s.dataKeys.Get(ctx, sc.DataKey)
		if errors.Is(err, crypto.ErrDataKeyDestroyed) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		for _, f := range disclosureFields {
			ct, ok := sc.Sealed[f]
			if !ok {
				continue
			}
			v, err := dk.Open(crypto.AD{Ledger: s.ledger.ID(), Entry: e.ID, Field: correctionField(st.TransactionID, f)}, ct)
			if err != nil {
				return nil, nil, err
			}
			str := string(v)
			fields[f] = &str
			if !slices.Contains(corrected, f) {
				corrected = append(corrected, f)
			}
		}
	}
	slices.Sort(corrected)
	return fields, corrected, nil
}

// searchCard answers POST /v1/cards/search {"pan"} or
// {"card_fingerprint"}: the masked views of the card's transactions in the
// caller's scope and, for a PAN, its token under the primary token key.
// Tokens and blind indexes under every key are searched, so cards seen
// before a key rotation are found. A Stripe payment is found by its card
// fingerprint only: Stripe never sends a card number. The PAN is used only
// to compute tokens: it is never logged, stored or echoed, and the access
// entry names the transactions found, not the card. At most 500 transactions are
// returned; "truncated" says when there were more.
func (s *Server) searchCard(c *gin.Context) {
	var req struct {
		PAN             string `json:"pan"`
		CardFingerprint string `json:"card_fingerprint"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	var subjects, tokens []string
	switch {
	case req.PAN != "" && req.CardFingerprint != "":
		s.abort(c, badRequest("invalid_request", "give one of pan or card_fingerprint, not both"))
		return
	case req.CardFingerprint == "":
		var err error
		if tokens, err = s.keys.Tokens(req.PAN); err != nil {
			s.abort(c, badRequest("invalid_pan", "the card number is not valid"))
			return
		}
		for _, tok := range tokens {
			subjects = append(subjects, subjectCard+tok)
		}
	default:
		fp, err := processorID("card_fingerprint", req.CardFingerprint)
		if err != nil {
			s.abort(c, err)
			return
		}
		for _, bi := range s.keys.BlindIndexes(blindFingerprint, fp) {
			subjects = append(subjects, subjectFingerprint+bi)
		}
	}
	if !s.ready(c) {
		return
	}
	merchants, all, _ := scopeFilter(principal(c), "")
	q := ledger.TxQuery{AllMerchants: all, Merchants: merchants, Limit: maxListLimit, Subjects: subjects}
	page, err := s.ledger.Transactions(c, q)
	if err != nil {
		s.abort(c, err)
		return
	}
	views, err := s.txViews(c, page.Items)
	if err != nil {
		s.abort(c, err)
		return
	}
	// The ids come from stored state, after the redaction of what the
	// caller sent: numeric ids side by side must not read as a card number.
	a := access{Action: "cards.search", Resource: "card search", Returned: ": " + idList(page.Items), Merchants: merchantsOf(page.Items)}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	answer := gin.H{"items": views, "truncated": page.Next != nil}
	if len(tokens) > 0 {
		answer["card_token"] = tokens[0]
	}
	c.JSON(http.StatusOK, answer)
}

// ready answers 503 and returns false when the ledger cannot append: an
// access that cannot be recorded must not happen, so no data is read.
func (s *Server) ready(c *gin.Context) bool {
	if err := s.ledger.Healthy(); err != nil {
		if n, ok := s.logLimit.allow("refusing to read "+c.FullPath(), time.Now()); ok {
			s.log.Error("ledger cannot record access; refusing to read", "route", c.FullPath(), "err", err, "suppressed_since_last", n)
		}
		s.abort(c, errUnavailable)
		return false
	}
	return true
}

// paymentEntries reads a transaction's durable payment entries in sequence
// order.
func (s *Server) paymentEntries(st *ledger.TxState) ([]paymentEntry, error) {
	out := make([]paymentEntry, 0, len(st.Seqs))
	for _, seq := range st.Seqs {
		pe, err := s.paymentEntry(seq)
		if err != nil {
			return nil, err
		}
		out = append(out, pe)
	}
	return out, nil
}

func (s *Server) paymentEntry(seq uint64) (paymentEntry, error) {
	e, err := s.ledger.Entry(seq)
	if err != nil {
		return paymentEntry{}, err
	}
	if e.Kind != ledger.KindPayment {
		return paymentEntry{}, fmt.Errorf("failed to read transaction: entry %d is a %s entry: %w", seq, e.Kind, ledger.ErrTampered)
	}
	pe := paymentEntry{entry: e}
	if err := e.DecodeBody(&pe.body); err != nil {
		return paymentEntry{}, err
	}
	return pe, nil
}

// txViews builds the masked views of a page. Each view reads its card
// entry and data key from random places in the stores and decrypts them,
// so a page's views are built by up to one goroutine per core: at 10M
// events a page of 50 took 32 ms on one (docs/operations.md, "Reads and
// scale"). The answer is the same as building them one by one in order
// (txViewsInOrder), the error too: the first item's that fails.
func (s *Server) txViews(ctx context.Context, items []*ledger.TxState) ([]txView, error) {
	workers := min(len(items), runtime.GOMAXPROCS(0), maxViewWorkers)
	if workers <= 1 {
		return s.txViewsInOrder(ctx, items)
	}
	out := make([]txView, len(items))
	errs := make([]error, len(items))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				out[i], errs[i] = s.safeTxView(ctx, items[i])
				if errs[i] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// maxViewWorkers bounds the goroutines of one page's views.
const maxViewWorkers = 8

// txViewsInOrder is txViews on the caller's goroutine, one view after
// the other: the reference the concurrent one is tested against.
func (s *Server) txViewsInOrder(ctx context.Context, items []*ledger.TxState) ([]txView, error) {
	out := make([]txView, 0, len(items))
	for _, st := range items {
		v, err := s.txView(ctx, st, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// safeTxView is txView for a goroutine of its own, where a panic over a
// damaged store block would take the whole process down: it becomes the
// request's error instead (the ledger's damaged-store error).
func (s *Server) safeTxView(ctx context.Context, st *ledger.TxState) (v txView, err error) {
	defer ledger.RecoverDamaged(&err)
	return s.txView(ctx, st, nil)
}

// txView builds the masked view of st. entries, if not nil, are its payment
// entries (already read by the single view).
func (s *Server) txView(ctx context.Context, st *ledger.TxState, entries []paymentEntry) (txView, error) {
	card, err := s.card(ctx, st, entries)
	if err != nil {
		return txView{}, err
	}
	return txView{
		TransactionID: st.TransactionID, AltIDs: st.AltIDs, MerchantID: st.MerchantID,
		Status: st.Status, Currency: st.Currency,
		AmountAuthorized: st.Authorized, AmountCaptured: st.Captured,
		AmountRefunded: st.Refunded, AmountChargedBack: st.ChargedBack,
		Card: card, Types: st.Types, FirstSeen: st.FirstSeen, LastUpdated: st.LastUpdated,
	}, nil
}

// card decrypts the masked card of a transaction from its card entry: the
// one at CardSeq (the latest that carried a card number or a sealed last
// 4: Stripe events carry no PAN), else the latest with a brand. If the
// cardholder's data key was destroyed, only the brand is shown. The card
// entry's card is read from the state's copy of it, without a read of the
// entry; states written before copies were kept have none, and the entry
// is read (cardFromEntries, the reference the copy is tested against).
func (s *Server) card(ctx context.Context, st *ledger.TxState, entries []paymentEntry) (cardView, error) {
	if c := st.Card; c != nil {
		return s.openCard(ctx, c.Entry, c.Brand, c.DataKey, c.Sealed)
	}
	return s.cardFromEntries(ctx, st, entries)
}

// cardFromEntries is card reading the entries.
func (s *Server) cardFromEntries(ctx context.Context, st *ledger.TxState, entries []paymentEntry) (cardView, error) {
	bySeq := func(seq uint64) (paymentEntry, error) {
		for _, pe := range entries {
			if pe.entry.Seq == seq {
				return pe, nil
			}
		}
		return s.paymentEntry(seq)
	}
	var candidates []uint64
	if st.CardSeq != nil {
		candidates = append(candidates, *st.CardSeq)
	}
	for i := len(st.Seqs) - 1; i >= 0 && len(candidates) < maxCardCandidates; i-- {
		candidates = append(candidates, st.Seqs[i])
	}
	brand := ""
	for _, seq := range candidates {
		pe, err := bySeq(seq)
		if err != nil {
			return cardView{}, err
		}
		b := pe.body
		if brand == "" {
			brand = b.Brand
		}
		_, hasToken := b.Sealed[fieldCardToken]
		_, hasLast4 := b.Sealed[fieldLast4]
		if b.DataKey == "" || !hasToken && !hasLast4 {
			continue
		}
		if b.Brand != "" {
			brand = b.Brand
		}
		sealed := ledger.CardSealed{BIN: b.Sealed[fieldBIN], Token: b.Sealed[fieldCardToken], Last4: b.Sealed[fieldLast4]}
		return s.openCard(ctx, pe.entry.ID, brand, b.DataKey, sealed)
	}
	return cardView{Brand: brand}, nil
}

// openCard opens the sealed card fields of entry entryID.
func (s *Server) openCard(ctx context.Context, entryID, brand, dataKey string, sealed ledger.CardSealed) (cardView, error) {
	v := cardView{Brand: brand}
	dk, err := s.dataKeys.Get(ctx, dataKey)
	if errors.Is(err, crypto.ErrDataKeyDestroyed) {
		return v, nil
	}
	if err != nil {
		return cardView{}, err
	}
	for _, f := range [...]struct {
		name string
		ct   []byte
		dst  *string
	}{{fieldBIN, sealed.BIN, &v.BIN}, {fieldLast4, sealed.Last4, &v.Last4}, {fieldCardToken, sealed.Token, &v.Token}} {
		if f.ct == nil {
			continue
		}
		pt, err := dk.Open(crypto.AD{Ledger: s.ledger.ID(), Entry: entryID, Field: f.name}, f.ct)
		if err != nil {
			return cardView{}, err
		}
		*f.dst = string(pt)
	}
	return v, nil
}

// txResource names a requested transaction in an access entry (the
// caller's id; recordAccess redacts it if it could be a card number).
func txResource(id string) string {
	if !auth.ValidID(id) {
		return "transaction/(invalid id)"
	}
	return "transaction/" + id
}

func merchantsOf(items []*ledger.TxState) []string {
	var out []string
	for _, st := range items {
		if !slices.Contains(out, st.MerchantID) {
			out = append(out, st.MerchantID)
		}
	}
	slices.Sort(out)
	return out
}

func idList(items []*ledger.TxState) string {
	if len(items) == 0 {
		return "no transactions"
	}
	ids := make([]string, len(items))
	for i, st := range items {
		ids[i] = st.TransactionID
	}
	return "transactions " + strings.Join(ids, ",")
}

// txFilters are the parsed query parameters of GET /v1/transactions.
type txFilters struct {
	merchant, status, typ, cardToken string
	from, to                         time.Time
	limit                            int
	after                            *ledger.TxPos
	// canonical is the normalized filters, bound into cursors.
	canonical string
}

// parseTxFilters parses and validates the list parameters; every error is a
// 400 that echoes no parameter value.
func (s *Server) parseTxFilters(c *gin.Context) (*txFilters, error) {
	f := &txFilters{}
	var err error
	if f.limit, err = parseLimit(c.Query("limit")); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"merchant_id", &f.merchant}, {"status", &f.status}, {"type", &f.typ}, {"card_token", &f.cardToken}} {
		v := c.Query(p.name)
		if v != "" && !auth.ValidID(v) {
			return nil, badRequest("invalid_parameter", p.name+" is not a valid value")
		}
		*p.dst = v
	}
	if f.typ != "" && !strings.Contains(f.typ, ".") && f.typ != ledger.TypeOpaque {
		f.typ = "payment." + f.typ // "captured" means "payment.captured"
	}
	if f.from, err = parseViewTime(c.Query("from"), "from"); err != nil {
		return nil, err
	}
	if f.to, err = parseViewTime(c.Query("to"), "to"); err != nil {
		return nil, err
	}
	canon := url.Values{}
	for k, v := range map[string]string{"merchant_id": f.merchant, "status": f.status, "type": f.typ, "card_token": f.cardToken} {
		if v != "" {
			canon.Set(k, v)
		}
	}
	if !f.from.IsZero() {
		canon.Set("from", strconv.FormatInt(f.from.UnixNano(), 10))
	}
	if !f.to.IsZero() {
		canon.Set("to", strconv.FormatInt(f.to.UnixNano(), 10))
	}
	f.canonical = canon.Encode()
	if cur := c.Query("cursor"); cur != "" {
		pos, err := decodeCursor(s.keys, cursorTransactions, f.canonical, cur)
		if err != nil || pos.ID == "" {
			return nil, errInvalidCursor
		}
		f.after = &ledger.TxPos{FirstSeen: time.Unix(0, pos.T).UTC(), TransactionID: pos.ID}
	}
	return f, nil
}

// resource describes a list read for the access log: the non-personal
// filters and the transactions returned. A card token links to the
// cardholder, and entries are immutable, so the filter is recorded only as
// present (a card token links to the person; docs/privacy-requests.md).
func (f *txFilters) resource() string {
	var b strings.Builder
	b.WriteString("GET /v1/transactions")
	sep := "?"
	add := func(k, v string) {
		if v != "" {
			b.WriteString(sep + k + "=" + v)
			sep = "&"
		}
	}
	add("merchant_id", f.merchant)
	add("status", f.status)
	add("type", f.typ)
	if !f.from.IsZero() {
		add("from", f.from.Format(time.RFC3339Nano))
	}
	if !f.to.IsZero() {
		add("to", f.to.Format(time.RFC3339Nano))
	}
	if f.cardToken != "" {
		add("card_token", "(redacted)")
	}
	if f.after != nil {
		add("cursor", "(next page)")
	}
	return b.String()
}

// parseLimit parses a list limit: absent is the default, above the maximum
// is clamped, ≤ 0 or not a number is 400.
func parseLimit(v string) (int, error) {
	if v == "" {
		return defaultListLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil && errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(v, "-") {
		return maxListLimit, nil
	}
	if err != nil || n <= 0 {
		return 0, badRequest("invalid_parameter", "limit must be a positive integer")
	}
	return min(n, maxListLimit), nil
}

// parseViewTime parses an optional RFC 3339 time parameter.
func parseViewTime(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1970 || t.Year() > 2200 {
		return time.Time{}, badRequest("invalid_parameter", name+" must be an RFC 3339 time between 1970 and 2200")
	}
	return t.UTC(), nil
}

// Cursors are opaque to clients: base64url(JSON position) "." base64url(a
// keyed digest). The digest (crypto.Keysets.Digest: HMAC-SHA256 under the
// blind-index keyset, with its own label) covers the list kind, the
// normalized filters and the position, so a cursor that was altered,
// forged, or is replayed with other filters or on another list is a 400
// invalid_cursor and is never decoded into a position. A cursor carries no
// scope: the caller's scope is applied again on every page, so a cursor
// handed to a principal with a narrower scope cannot widen what it sees.
const (
	cursorLabel        = "paytrail/list-cursor/v1"
	cursorTransactions = "transactions"
	cursorAccessLog    = "access-log"
	maxCursorLen       = 1024
)

// cursorPos is the position a cursor carries: a time in Unix nanoseconds
// and a transaction id or sequence number.
type cursorPos struct {
	T   int64  `json:"t"`
	ID  string `json:"i,omitempty"`
	Seq uint64 `json:"s,omitempty"`
}

// cursorDigester is the keyed digest cursors are authenticated with
// (*crypto.Keysets).
type cursorDigester interface {
	Digest(label string, data []byte) []byte
	MatchDigest(label string, data, digest []byte) bool
}

func cursorMACInput(kind, filters string, payload []byte) []byte {
	var b []byte
	for _, p := range [][]byte{[]byte(kind), []byte(filters), payload} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func encodeCursor(d cursorDigester, kind, filters string, pos cursorPos) string {
	payload, err := json.Marshal(pos)
	if err != nil {
		panic("api: cursor position does not encode: " + err.Error())
	}
	mac := d.Digest(cursorLabel, cursorMACInput(kind, filters, payload))
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

// decodeCursor authenticates and decodes a cursor made by encodeCursor for
// the same kind and filters.
func decodeCursor(d cursorDigester, kind, filters, cur string) (cursorPos, error) {
	if len(cur) > maxCursorLen {
		return cursorPos{}, errInvalidCursor
	}
	p64, m64, ok := strings.Cut(cur, ".")
	if !ok {
		return cursorPos{}, errInvalidCursor
	}
	payload, err1 := base64.RawURLEncoding.Strict().DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.Strict().DecodeString(m64)
	if err1 != nil || err2 != nil || !d.MatchDigest(cursorLabel, cursorMACInput(kind, filters, payload), mac) {
		return cursorPos{}, errInvalidCursor
	}
	var pos cursorPos
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pos); err != nil || dec.More() || pos.T < 0 {
		return cursorPos{}, errInvalidCursor
	}
	return pos, nil
}
