package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Cardholder requests (policy item 5; docs/privacy-requests.md). A privacy
// officer acts for a cardholder, named by one or more identifiers (card
// number, email, Stripe card fingerprint, Stripe customer id), on exactly
// the transactions of their merchant scope in which an event carries one of
// them. History is never rewritten:
//
//   - correct appends an entry with the new values of personal fields,
//     sealed per transaction under one of its data keys, which supersede
//     the originals in disclosures ([ledger.TableCorrections]);
//   - restrict and unrestrict set or clear rows per identifier and merchant
//     that block disclosure of every transaction carrying the identifier,
//     now or later, except for legal obligation ([ledger.TableRestricted]);
//   - erase appends an entry that, at its place in the ledger's order,
//     deletes the transactions' subject rows and hands back their events'
//     data keys, which are then destroyed (crypto-shredding).

// The kinds of subject request.
const (
	subjectRequestCorrect    = "correct"
	subjectRequestRestrict   = "restrict"
	subjectRequestUnrestrict = "unrestrict"
	subjectRequestErase      = "erase"
)

const (
	// subjectRequestUniquePrefix starts a request's idempotency key; the
	// reference follows.
	subjectRequestUniquePrefix = "subject-request/"
	// digestLabelSubjectRequests separates the digests of requests (which
	// cover a PAN or an email, hence keyed) from other digests.
	digestLabelSubjectRequests = "subject request"
	// maxSubjectReference caps the reference, in characters.
	maxSubjectReference = 200
	// maxProcessorID caps a card fingerprint or customer id.
	maxProcessorID = 255
)

var (
	errSubjectRequestUnknown = newError(http.StatusNotFound, "subject_not_found", "no cardholder data is held for these identifiers in your merchant scope")
	errSubjectRequestReused  = newError(http.StatusConflict, "idempotency_conflict", "this reference was already used for a different request")
)

// subjectRequestJSON is the request body.
type subjectRequestJSON struct {
	Kind            string            `json:"kind"`
	PAN             string            `json:"pan"`
	Email           string            `json:"email"`
	CardFingerprint string            `json:"card_fingerprint"`
	Customer        string            `json:"customer"`
	Reference       string            `json:"reference"`
	Corrections     map[string]string `json:"corrections"`
}

// subjectRequest is a validated request in normal form. Its JSON encoding
// (without the reference, which is the idempotency key) is what the
// request's digest covers, so the same request spelled differently (PAN
// with spaces, email in capitals) is a duplicate, not a conflict.
type subjectRequest struct {
	Kind            string            `json:"kind"`
	PAN             string            `json:"pan,omitempty"`   // digits only
	Email           string            `json:"email,omitempty"` // trimmed, lower case
	CardFingerprint string            `json:"card_fingerprint,omitempty"`
	Customer        string            `json:"customer,omitempty"`
	Corrections     map[string]string `json:"corrections,omitempty"`
	reference       string
}

// canonical returns the bytes the request's keyed digest covers.
func (r *subjectRequest) canonical() []byte {
	b, err := json.Marshal(r) // map keys are sorted: deterministic
	if err != nil {
		panic("api: subject request does not encode: " + err.Error())
	}
	return b
}

// parseSubjectRequest validates and normalizes a request body. Its errors
// never contain the card number, the email or a correction's value.
func parseSubjectRequest(in subjectRequestJSON) (*subjectRequest, error) {
	r := &subjectRequest{Kind: in.Kind}
	switch in.Kind {
	case subjectRequestCorrect, subjectRequestRestrict, subjectRequestUnrestrict, subjectRequestErase:
	default:
		return nil, badRequest("invalid_request", "kind must be correct, restrict, unrestrict or erase")
	}
	ref, err := parseReference(in.Reference)
	if err != nil {
		return nil, err
	}
	r.reference = ref
	if in.PAN == "" && in.Email == "" && in.CardFingerprint == "" && in.Customer == "" {
		return nil, badRequest("invalid_request", "give at least one of pan, email, card_fingerprint or customer")
	}
	if in.PAN != "" {
		if r.PAN, err = crypto.NormalizePAN(in.PAN); err != nil {
			return nil, fmt.Errorf("failed to parse subject request: %w", err)
		}
	}
	if in.Email != "" {
		if r.Email, err = normalizeEmail(in.Email); err != nil {
			return nil, err
		}
		r.Email = strings.ToLower(r.Email)
	}
	if r.CardFingerprint, err = processorID("card_fingerprint", in.CardFingerprint); err != nil {
		return nil, err
	}
	if r.Customer, err = processorID("customer", in.Customer); err != nil {
		return nil, err
	}
	if in.Kind != subjectRequestCorrect {
		if len(in.Corrections) > 0 {
			return nil, badRequest("invalid_request", "corrections are only allowed with kind correct")
		}
		return r, nil
	}
	if len(in.Corrections) == 0 {
		return nil, badRequest("invalid_correction", "a correct request needs at least one correction")
	}
	fields := make([]string, 0, len(in.Corrections))
	for f := range in.Corrections {
		fields = append(fields, f)
	}
	slices.Sort(fields) // report the same bad field every time
	r.Corrections = make(map[string]string, len(fields))
	for _, f := range fields {
		v, err := normalizeCorrection(f, in.Corrections[f])
		if err != nil {
			return nil, err
		}
		r.Corrections[f] = v
	}
	return r, nil
}

// processorID checks a processor's identifier (a card fingerprint, a
// customer id): empty, or 1 to 255 printable ASCII characters without
// spaces that are not a card number. The error names the field, never the
// value.
func processorID(field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if len(v) > maxProcessorID || hasPAN(v) {
		return "", badRequest("invalid_request", field+" must be 1 to 255 printable characters without spaces")
	}
	for _, c := range []byte(v) {
		if c <= ' ' || c >= 0x7f {
			return "", badRequest("invalid_request", field+" must be 1 to 255 printable characters without spaces")
		}
	}
	return v, nil
}

// parseReference checks a request reference: 1 to 200 printable
// characters.
func parseReference(ref string) (string, error) {
	n := utf8.RuneCountInString(ref)
	if n == 0 || n > maxSubjectReference || !printable(ref, false) || hasPAN(ref) {
		return "", badRequest("invalid_request", "reference is required: 1 to 200 printable characters, not a card number")
	}
	return ref, nil
}

// printable reports whether s is valid UTF-8 without control characters
// (but newlines and tabs when multiline is set).
func printable(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) && !(multiline && (c == '\n' || c == '\t' || c == '\r')) {
			return false
		}
	}
	return true
}

// normalizeEmail trims an email address and checks its shape: one '@'
// with text on both sides, no spaces or control characters, at most 254
// bytes (RFC 5321). It keeps the case.
func normalizeEmail(v string) (string, error) {
	v = strings.TrimSpace(v)
	at := strings.LastIndexByte(v, '@')
	if len(v) > 254 || at <= 0 || at == len(v)-1 || !printable(v, false) || strings.ContainsFunc(v, unicode.IsSpace) {
		return "", badRequest("invalid_email", "the email is not a valid address")
	}
	return v, nil
}

// correctableFields are the disclosure fields a correction may supersede,
// in the contract's order. Financial facts (amount, currency, merchant,
// status, ...) and card data (token, BIN, last 4) cannot be corrected.
var correctableFields = []string{fieldName, fieldEmail, fieldCountry, fieldAddress, fieldIP, fieldExpMonth, fieldExpYear}

// safeFieldName reports whether a client-supplied field name may be
// repeated in an error message: a short lowercase identifier with at most
// four digits (such as last4), which no card number or email address is.
func safeFieldName(f string) bool {
	if f == "" || len(f) > 64 || f[0] < 'a' || f[0] > 'z' {
		return false
	}
	digits := 0
	for _, c := range []byte(f) {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case (c < 'a' || c > 'z') && c != '_' && c != '.':
			return false
		}
	}
	return digits <= 4
}

// normalizeCorrection validates the new value of a personal field and
// returns it in the form ingestion stores. Errors name the field but never
// repeat its value, and repeat the field's name only when it looks like
// one (a client could put anything in a JSON key).
func normalizeCorrection(field, v string) (string, error) {
	invalid := func(rule string) error {
		return badRequest("invalid_correction", "the new value of "+field+" is not valid: "+rule)
	}
	switch field {
	case fieldName:
		v = strings.TrimSpace(v)
		if v == "" || utf8.RuneCountInString(v) > 200 || !printable(v, false) {
			return "", invalid("1 to 200 printable characters")
		}
	case fieldEmail:
		e, err := normalizeEmail(v)
		if err != nil {
			return "", invalid("an email address")
		}
		v = e
	case fieldCountry:
		v = strings.ToUpper(strings.TrimSpace(v))
		if len(v) != 2 || v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z' {
			return "", invalid("an ISO 3166-1 alpha-2 country code")
		}
	case fieldAddress:
		v = strings.TrimSpace(v)
		if v == "" || utf8.RuneCountInString(v) > 1000 || !printable(v, true) {
			return "", invalid("1 to 1000 printable characters")
		}
	case fieldIP:
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			return "", invalid("an IPv4 or IPv6 address")
		}
		v = a.String()
	case fieldExpMonth:
		m, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || m < 1 || m > 12 {
			return "", invalid("a month from 1 to 12")
		}
		v = strconv.Itoa(m)
	case fieldExpYear:
		s := strings.TrimSpace(v)
		y, err := strconv.Atoi(s)
		if err != nil || len(s) != 4 || y < 1000 {
			return "", invalid("a four-digit year")
		}
		v = strconv.Itoa(y)
	default:
		name := "a field that"
		if safeFieldName(field) {
			name = field
		}
		return "", badRequest("invalid_correction", name+" cannot be corrected: only "+strings.Join(correctableFields, ", ")+" can")
	}
	return v, nil
}

// subjectMatch is what a request acts on: the transactions of the caller's
// scope in which an event carries one of the request's identifiers.
type subjectMatch struct {
	// candidates are the subjects of the request's identifiers under every
	// enabled token and blind index key.
	candidates []string
	subjects   int               // how many of the identifiers have in-scope transactions
	txs        []*ledger.TxState // in transaction id order
	merchants  []string          // merchants of txs, sorted
}

func (m *subjectMatch) txIDs() []string {
	ids := make([]string, len(m.txs))
	for i, st := range m.txs {
		ids[i] = st.TransactionID
	}
	return ids
}

// candidateSubjects returns, for each of a request's identifiers, the
// subjects it may be indexed under: every enabled token or blind index key
// (a card seen before a key rotation has an older token).
func (s *Server) candidateSubjects(req *subjectRequest) ([][]string, error) {
	var out [][]string
	if req.PAN != "" {
		toks, err := s.keys.Tokens(req.PAN)
		if err != nil {
			return nil, fmt.Errorf("failed to tokenize card number: %w", err)
		}
		var subjects []string
		for _, t := range toks {
			subjects = append(subjects, subjectCard+t)
		}
		out = append(out, subjects)
	}
	for _, id := range []struct{ prefix, label, value string }{
		{subjectEmail, blindEmail, req.Email},
		{subjectFingerprint, blindFingerprint, req.CardFingerprint},
		{subjectCustomer, blindCustomer, req.Customer},
	} {
		if id.value == "" {
			continue
		}
		var subjects []string
		for _, bi := range s.keys.BlindIndexes(id.label, id.value) {
			subjects = append(subjects, id.prefix+bi)
		}
		out = append(out, subjects)
	}
	return out, nil
}

// findTransactions looks up the transactions of req's identifiers and keeps
// those in p's scope. Transactions outside it are not acted on, and their
// existence shows nowhere: not in the answer, not in the access entry.
func (s *Server) findTransactions(req *subjectRequest, p *auth.Principal) (*subjectMatch, error) {
	groups, err := s.candidateSubjects(req)
	if err != nil {
		return nil, err
	}
	m := &subjectMatch{candidates: slices.Concat(groups...)}
	seen := map[string]bool{} // in-scope transactions already found
	merchants := map[string]bool{}
	for _, group := range groups {
		if found, err := s.findInScope(group, p, m, seen, merchants); err != nil {
			return nil, err
		} else if found {
			m.subjects++
		}
	}
	slices.SortFunc(m.txs, func(a, b *ledger.TxState) int { return strings.Compare(a.TransactionID, b.TransactionID) })
	m.merchants = sortedKeys(merchants)
	return m, nil
}

// findInScope adds to m the in-scope transactions of one identifier's
// subjects and reports whether it has any.
func (s *Server) findInScope(subjects []string, p *auth.Principal, m *subjectMatch, seen, merchants map[string]bool) (bool, error) {
	inScope := false
	for _, subj := range subjects {
		ids, err := s.ledger.SubjectTransactions(subj)
		if err != nil {
			return false, fmt.Errorf("failed to read subject transactions: %w", err)
		}
		for _, id := range ids {
			if seen[id] {
				inScope = true
				continue
			}
			st, err := s.ledger.Transaction(id)
			if errors.Is(err, ledger.ErrNotFound) {
				continue // not yet durable
			}
			if err != nil {
				return false, fmt.Errorf("failed to read transaction state: %w", err)
			}
			if !p.AllMerchants() && !p.InScope(st.MerchantID) {
				continue
			}
			inScope, seen[id] = true, true
			m.txs = append(m.txs, st)
			merchants[st.MerchantID] = true
		}
	}
	return inScope, nil
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// scopeOf returns p's merchant scope as restriction scopes: "*" for every
// merchant, else its merchant ids, sorted.
func scopeOf(p *auth.Principal) []string {
	if p.AllMerchants() {
		return []string{"*"}
	}
	return slices.Sorted(slices.Values(p.Merchants))
}

// requestUniqueKey is a request's idempotency key: the reference within
// the caller's scope, so that a reference is private to the scope (the same
// reference used in another scope is another request, and reveals nothing).
func requestUniqueKey(scope []string, reference string) string {
	sum := sha256.Sum256([]byte(strings.Join(scope, "\x00")))
	return subjectRequestUniquePrefix + hex.EncodeToString(sum[:16]) + "/" + reference
}

// subjectRequestEntry is the body of a subject request entry: the ledger's
// SubjectRequestBody plus the number of identifiers acted on, which the
// answer to a repeated request needs after an erasure removed their rows.
type subjectRequestEntry struct {
	ledger.SubjectRequestBody
	Subjects int `json:"subjects"`
}

// subjectRequest handles POST /v1/subject-requests (role privacy). It
// answers 200 {"kind", "reference", "seq", "subjects", "transactions",
// "duplicate"} once the request's entry is durable and applied (for an
// erasure: once the keys are destroyed), and an access entry records the
// call. A reference seen before in the caller's scope answers the
// original result with "duplicate": true and applies nothing again (an
// erasure interrupted by a crash is completed); with a different request
// it is 409. Identifiers with no transaction in the caller's scope are 404,
// and only the denied access is recorded.
func (s *Server) subjectRequest(c *gin.Context) {
	var in subjectRequestJSON
	if err := decodeJSON(c, &in); err != nil {
		s.abort(c, err)
		return
	}
	req, err := parseSubjectRequest(in)
	if err != nil {
		s.abort(c, err)
		return
	}
	p := principal(c)
	scope := scopeOf(p)
	a := access{
		Action:        "subject_request." + req.Kind,
		Resource:      subjectRequestUniquePrefix + req.reference,
		Purpose:       purposeCardholder,
		Justification: req.Kind,
	}
	canon := req.canonical()
	unique := &ledger.Unique{Key: requestUniqueKey(scope, req.reference), Digest: s.keys.Digest(digestLabelSubjectRequests, canon)}

	// A repeated request is answered before looking for the transactions:
	// after an erasure there are none.
	if e, err := s.ledger.EntryByUnique(unique.Key); err == nil {
		s.repeatSubjectRequest(c, a, req, canon, e)
		return
	} else if !errors.Is(err, ledger.ErrNotFound) {
		s.abort(c, err)
		return
	}

	m, err := s.findTransactions(req, p)
	if err != nil {
		s.abort(c, err)
		return
	}
	if len(m.txs) == 0 {
		s.deny(c, a, errSubjectRequestUnknown)
		return
	}
	a.Merchants = m.merchants

	now := s.now()
	rec := ledger.Record{Kind: ledger.KindSubjectRequest, ID: ledger.NewRecordID(), Time: now, Policy: PolicyVersion, Unique: unique}
	body := subjectRequestEntry{
		SubjectRequestBody: ledger.SubjectRequestBody{
			ActorID: p.ID, ActorName: p.Name, Kind: req.Kind, Reference: req.reference, Scope: scope,
			Transactions: len(m.txs), OriginIP: c.ClientIP(),
		},
		Subjects: m.subjects,
	}
	switch req.Kind {
	case subjectRequestCorrect:
		if body.Corrections, err = s.sealCorrections(c, rec.ID, m.txs, req.Corrections); err != nil {
			s.abort(c, err)
			return
		}
		for _, sc := range body.Corrections {
			rec.State = append(rec.State, ledger.StateRow{Table: ledger.TableCorrections, Key: sc.TransactionID, AppendSeq: true})
		}
	case subjectRequestRestrict, subjectRequestUnrestrict:
		// Every candidate, not only those with rows: a later event
		// indexed under the primary key of an identifier is covered too.
		var v []byte // nil deletes: unrestrict
		scopes := scope
		if req.Kind == subjectRequestRestrict {
			v = []byte(req.reference)
		} else if p.AllMerchants() {
			// An officer of every merchant lifts the restrictions scoped
			// officers made too, for the merchants acted on.
			scopes = append(slices.Clone(scope), m.merchants...)
		}
		for _, subj := range m.candidates {
			for _, sc := range scopes {
				rec.State = append(rec.State, ledger.StateRow{Table: ledger.TableRestricted, Key: ledger.RestrictionKey(subj, sc), Value: v})
			}
		}
	case subjectRequestErase:
		rec.Erase = &ledger.Erasure{Transactions: m.txIDs()}
		body.ErasedAt = &now
	}
	rec.Body = body

	// An erasure's entry and key destruction are one step to a backup.
	unhold := func() {}
	if req.Kind == subjectRequestErase {
		s.snapshotMu.RLock()
		unhold = sync.OnceFunc(s.snapshotMu.RUnlock)
		defer unhold()
	}
	res, err := s.appender.Append(c, rec)
	if err != nil || res.Duplicate || res.Shred == nil {
		unhold()
	}
	if errors.Is(err, ledger.ErrConflict) || err == nil && res.Duplicate {
		// Another request took the reference in this scope, or the same
		// request raced this one and won, or was digested under a blind
		// key since rotated.
		e, eerr := s.ledger.Entry(res.Seq)
		if eerr != nil {
			s.abort(c, eerr)
			return
		}
		s.repeatSubjectRequest(c, a, req, canon, e)
		return
	}
	if err != nil {
		s.abort(c, err)
		return
	}
	if res.Shred != nil {
		err := s.shred(c.Request.Context(), *res.Shred)
		unhold()
		if err != nil {
			s.abort(c, err)
			return
		}
	}
	s.log.Info("subject request applied", "kind", req.Kind, "seq", res.Seq, "subjects", body.Subjects, "transactions", body.Transactions)
	s.answerSubjectRequest(c, a, res.Seq, body, false)
}

// sealCorrections seals the corrected fields for each transaction under
// one of its live data keys, so that erasing the transaction shreds its
// corrections with it.
func (s *Server) sealCorrections(ctx context.Context, entryID string, txs []*ledger.TxState, corrections map[string]string) ([]ledger.SealedCorrection, error) {
	fields := slices.Sorted(maps.Keys(corrections))
	var out []ledger.SealedCorrection
	for _, st := range txs {
		ids, err := s.ledger.TransactionDataKeys(st.TransactionID)
		if err != nil {
			return nil, err
		}
		var dk *crypto.DataKey
		for _, id := range ids {
			if dk, err = s.dataKeys.Get(ctx, id); err == nil {
				break
			} else if !errors.Is(err, crypto.ErrDataKeyDestroyed) {
				return nil, err
			}
		}
		if dk == nil {
			continue // nothing personal left to correct
		}
		sc := ledger.SealedCorrection{TransactionID: st.TransactionID, DataKey: dk.ID(), Sealed: make(map[string][]byte, len(fields))}
		for _, f := range fields {
			ct, err := dk.Seal(crypto.AD{Ledger: s.ledger.ID(), Entry: entryID, Field: correctionField(st.TransactionID, f)}, []byte(corrections[f]))
			if err != nil {
				return nil, err
			}
			sc.Sealed[f] = ct
		}
		out = append(out, sc)
	}
	return out, nil
}

// correctionField is the associated data field name of a correction: the
// transaction and the field, so a sealed value cannot be moved to another
// transaction of the same entry.
func correctionField(tx, field string) string { return "correction/" + tx + "/" + field }

// repeatSubjectRequest answers a request whose reference is already in the
// ledger, in the caller's scope, at entry e: the original result if it is
// the same request, 409 if not. A repeated erasure first completes the
// original's, which a crash may have interrupted.
func (s *Server) repeatSubjectRequest(c *gin.Context, a access, req *subjectRequest, canon []byte, e *ledger.Entry) {
	var body subjectRequestEntry
	if e.Kind != ledger.KindSubjectRequest || e.Unique == nil || !s.keys.MatchDigest(digestLabelSubjectRequests, canon, e.Unique.Digest) ||
		e.DecodeBody(&body) != nil || body.Kind != req.Kind {
		s.deny(c, a, errSubjectRequestReused)
		return
	}
	if body.Kind == subjectRequestErase {
		if err := s.FinishErasures(c.Request.Context()); err != nil {
			s.abort(c, err)
			return
		}
	}
	s.answerSubjectRequest(c, a, e.Seq, body, true)
}

// FinishErasures completes every erasure whose keys an interrupted run
// left undestroyed. serve calls it at start; a repeated erase request calls
// it before answering.
func (s *Server) FinishErasures(ctx context.Context) error {
	pending, err := s.ledger.PendingShreds()
	if err != nil {
		return err
	}
	for _, sh := range pending {
		s.snapshotMu.RLock()
		err := s.shred(ctx, sh)
		s.snapshotMu.RUnlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// shred destroys the data keys of an erasure, drops them from the cache
// and purges the deleted subject rows from the ledger's files. It runs to
// the end even if the client goes away: an erasure is not left half done
// for a closed connection.
func (s *Server) shred(ctx context.Context, sh ledger.Shred) error {
	ctx = context.WithoutCancel(ctx)
	if err := s.keyStore.Destroy(ctx, sh.DataKeys); err != nil {
		return fmt.Errorf("failed to destroy data keys: %w", err)
	}
	for _, id := range sh.DataKeys {
		s.dataKeys.Forget(id)
	}
	if err := s.ledger.FinishShred(ctx, sh); err != nil {
		return fmt.Errorf("failed to purge erased subject rows: %w", err)
	}
	return nil
}

// answerSubjectRequest records the access and answers 200.
func (s *Server) answerSubjectRequest(c *gin.Context, a access, seq uint64, body subjectRequestEntry, duplicate bool) {
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"kind":         body.Kind,
		"reference":    body.Reference,
		"seq":          seq,
		"subjects":     body.Subjects,
		"transactions": body.Transactions,
		"duplicate":    duplicate,
	})
}
