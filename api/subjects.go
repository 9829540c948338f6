package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Cardholder requests (DESIGN.md policy item 5, "Cardholder requests"). A
// privacy officer acts for a cardholder, named by card number or email;
// history is never rewritten:
//
//   - correct appends an entry whose sealed fields supersede the named
//     personal fields in disclosures ([ledger.TableCorrections]);
//   - restrict and unrestrict set or clear a row per data key that blocks
//     disclosure except for legal obligation ([ledger.TableRestricted]);
//   - erase appends an entry, destroys the subject's data keys
//     (crypto-shredding) and deletes the subject rows that link the clear
//     card token or email blind index to them ([ledger.Ledger.EraseSubjects]).
//
// docs/privacy-requests.md is the operator's guide.

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
	// maxLinkEntries caps the payment entries an erasure decrypts to find
	// the subjects linked to the erased keys (the email seen with a card).
	maxLinkEntries = 100_000
)

var (
	errSubjectRequestUnknown = newError(http.StatusNotFound, "subject_not_found", "no cardholder data is held for this card number or email")
	errSubjectRequestErased  = newError(http.StatusGone, "subject_erased", "the cardholder's data was erased")
	errSubjectRequestReused  = newError(http.StatusConflict, "idempotency_conflict", "this reference was already used for a different request")
)

// subjectRequestJSON is the request body.
type subjectRequestJSON struct {
	Kind        string            `json:"kind"`
	PAN         string            `json:"pan"`
	Email       string            `json:"email"`
	Reference   string            `json:"reference"`
	Corrections map[string]string `json:"corrections"`
}

// subjectRequest is a validated request in normal form. Its JSON encoding
// (without the reference, which is the idempotency key) is what the
// request's digest covers, so the same request spelled differently (PAN
// with spaces, email in capitals) is a duplicate, not a conflict.
type subjectRequest struct {
	Kind        string            `json:"kind"`
	PAN         string            `json:"pan,omitempty"`   // digits only
	Email       string            `json:"email,omitempty"` // trimmed, lower case
	Corrections map[string]string `json:"corrections,omitempty"`
	reference   string
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
	switch {
	case (in.PAN == "") == (in.Email == ""):
		return nil, badRequest("invalid_request", "give exactly one of pan or email")
	case in.PAN != "":
		if r.PAN, err = crypto.NormalizePAN(in.PAN); err != nil {
			return nil, fmt.Errorf("failed to parse subject request: %w", err)
		}
	default:
		if r.Email, err = normalizeEmail(in.Email); err != nil {
			return nil, err
		}
		r.Email = strings.ToLower(r.Email)
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

// parseReference checks a request reference: 1 to 200 printable
// characters.
func parseReference(ref string) (string, error) {
	n := utf8.RuneCountInString(ref)
	if n == 0 || n > maxSubjectReference || !printable(ref, false) {
		return "", badRequest("invalid_request", "reference is required: 1 to 200 printable characters")
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

// subjectMatch is what a request acts on: the subjects it names that have
// rows, their data keys and their transactions.
type subjectMatch struct {
	subjects  []string          // "card:<token>" or "email:<blind index>"
	keyIDs    []string          // every data key id of the subjects, sorted
	live      []*crypto.DataKey // the keys not destroyed, in keyIDs order
	txIDs     []string          // transaction ids, sorted
	txs       []*ledger.TxState // their states (ids without one are skipped)
	merchants []string          // merchants of txs, sorted
}

func (m *subjectMatch) liveIDs() []string {
	ids := make([]string, len(m.live))
	for i, k := range m.live {
		ids[i] = k.ID()
	}
	return ids
}

// findSubjects looks up the subjects a request names, under every enabled
// token or blind index key (a card seen before a key rotation has an older
// token). No rows at all is a match with no subjects.
func (s *Server) findSubjects(ctx context.Context, req *subjectRequest) (*subjectMatch, error) {
	var candidates []string
	if req.PAN != "" {
		toks, err := s.keys.Tokens(req.PAN)
		if err != nil {
			return nil, fmt.Errorf("failed to tokenize card number: %w", err)
		}
		for _, t := range toks {
			candidates = append(candidates, subjectCard+t)
		}
	} else {
		for _, bi := range s.keys.BlindIndexes(fieldEmail, req.Email) {
			candidates = append(candidates, subjectEmail+bi)
		}
	}
	m := &subjectMatch{}
	keys, txs := map[string]bool{}, map[string]bool{}
	for _, subj := range candidates {
		ks, err := s.ledger.SubjectKeys(subj)
		if err != nil {
			return nil, fmt.Errorf("failed to read subject keys: %w", err)
		}
		ts, err := s.ledger.SubjectTransactions(subj)
		if err != nil {
			return nil, fmt.Errorf("failed to read subject transactions: %w", err)
		}
		if len(ks)+len(ts) == 0 {
			continue
		}
		m.subjects = append(m.subjects, subj)
		for _, k := range ks {
			keys[k] = true
		}
		for _, t := range ts {
			txs[t] = true
		}
	}
	m.keyIDs = sortedKeys(keys)
	m.txIDs = sortedKeys(txs)
	merchants := map[string]bool{}
	for _, id := range m.txIDs {
		st, err := s.ledger.Transaction(id)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read transaction state: %w", err)
		}
		m.txs = append(m.txs, st)
		merchants[st.MerchantID] = true
	}
	m.merchants = sortedKeys(merchants)
	for _, id := range m.keyIDs {
		dk, err := s.dataKeys.Get(ctx, id)
		if errors.Is(err, crypto.ErrDataKeyDestroyed) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to get data key: %w", err)
		}
		m.live = append(m.live, dk)
	}
	return m, nil
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// linkedSubjects finds the other subjects whose rows point at the live
// keys of m: ingestion seals all of an event's fields under one key and
// writes a row for each of its subjects, so the email (or Stripe card
// fingerprint) seen with an erased card is unlinked with it. It opens the
// card token, email and fingerprint of the subject's payment entries under
// those keys, which is why it runs only for erasure, before the keys are
// destroyed. Nothing it opens leaves this function but subject ids.
func (s *Server) linkedSubjects(ctx context.Context, m *subjectMatch, only []string) ([]string, error) {
	live := map[string]*crypto.DataKey{}
	for _, k := range m.live {
		if only == nil || slices.Contains(only, k.ID()) {
			live[k.ID()] = k
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	known := map[string]bool{}
	for _, subj := range m.subjects {
		known[subj] = true
	}
	rows := map[string][]string{} // candidate subject -> its data keys
	var linked []string
	scanned := 0
	for _, st := range m.txs {
		for _, seq := range st.Seqs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if scanned++; scanned > maxLinkEntries {
				s.log.Warn("erasure stopped looking for linked subjects", "entries", maxLinkEntries)
				return linked, nil
			}
			e, err := s.ledger.Entry(seq)
			if errors.Is(err, ledger.ErrNotFound) {
				continue // not yet durable
			}
			if err != nil {
				return nil, err
			}
			var pb ledger.PaymentBody
			if e.Kind != ledger.KindPayment || e.DecodeBody(&pb) != nil {
				continue
			}
			dk := live[pb.DataKey]
			if dk == nil {
				continue
			}
			for _, f := range []string{fieldCardToken, fieldEmail, fieldFingerprint} {
				ct, ok := pb.Sealed[f]
				if !ok {
					continue
				}
				v, err := dk.Open(crypto.AD{Ledger: s.ledger.ID(), Entry: e.ID, Field: f}, ct)
				if err != nil {
					// The erasure goes on: the key is destroyed either way.
					s.log.Warn("failed to open a subject field while erasing", "seq", seq, "field", f, "err", err)
					continue
				}
				for _, subj := range s.subjectsOf(f, string(v)) {
					if known[subj] {
						continue
					}
					ks, ok := rows[subj]
					if !ok {
						if ks, err = s.ledger.SubjectKeys(subj); err != nil {
							return nil, fmt.Errorf("failed to read subject keys: %w", err)
						}
						rows[subj] = ks
					}
					if slices.Contains(ks, pb.DataKey) {
						known[subj] = true
						linked = append(linked, subj)
					}
				}
			}
		}
	}
	return linked, nil
}

// subjectsOf returns the subject ids a sealed subject field's value may
// have been indexed under (every enabled blind index key).
func (s *Server) subjectsOf(field, v string) []string {
	switch field {
	case fieldCardToken:
		return []string{subjectCard + v}
	case fieldEmail, fieldFingerprint:
		prefix := subjectEmail
		if field == fieldFingerprint {
			prefix = subjectFingerprint
		}
		var out []string
		for _, bi := range s.keys.BlindIndexes(field, v) {
			out = append(out, prefix+bi)
		}
		return out
	}
	return nil
}

// subjectRequestEntry is the body of a subject request entry: the ledger's
// SubjectRequestBody plus the number of subjects acted on, which the answer
// to a repeated request needs after an erasure has removed their rows.
type subjectRequestEntry struct {
	ledger.SubjectRequestBody
	Subjects int `json:"subjects"`
}

// subjectRequest handles POST /v1/subject-requests (role privacy). It
// answers 200 {"kind", "reference", "seq", "subjects", "transactions",
// "duplicate"} once the request's entry is durable and applied, and an
// access entry records the call. A reference seen before answers the
// original result with "duplicate": true and applies nothing again (an
// erasure interrupted by a crash is completed); with a different request
// it is 409. An unknown subject, or one with transactions outside the
// caller's merchant scope, is 404 and only the denied access is recorded.
//
// A restriction or correction is part of its entry's batch. An erasure
// appends its entry first, then destroys the keys and deletes the subject
// rows; if that fails the answer is 500, and repeating the request (same
// reference) finishes it.
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
	a := access{
		Action:        "subject_request." + req.Kind,
		Resource:      subjectRequestUniquePrefix + req.reference,
		Purpose:       purposeCardholder,
		Justification: req.Kind,
	}
	canon := req.canonical()
	unique := &ledger.Unique{Key: subjectRequestUniquePrefix + req.reference, Digest: s.keys.Digest(digestLabelSubjectRequests, canon)}

	// A repeated request is answered before looking for the subject: after
	// an erasure there is none.
	if e, err := s.ledger.EntryByUnique(unique.Key); err == nil {
		s.repeatSubjectRequest(c, a, req, canon, e)
		return
	} else if !errors.Is(err, ledger.ErrNotFound) {
		s.abort(c, err)
		return
	}

	m, err := s.findSubjects(c, req)
	if err != nil {
		s.abort(c, err)
		return
	}
	p := principal(c)
	if len(m.subjects) == 0 || !p.AllMerchants() && slices.ContainsFunc(m.merchants, func(id string) bool { return !p.InScope(id) }) {
		s.deny(c, a, errSubjectRequestUnknown)
		return
	}
	a.Merchants = m.merchants
	if req.Kind != subjectRequestErase && len(m.live) == 0 {
		s.deny(c, a, errSubjectRequestErased)
		return
	}
	var linked []string
	if req.Kind == subjectRequestErase {
		if linked, err = s.linkedSubjects(c, m, nil); err != nil {
			s.abort(c, err)
			return
		}
	}

	now := s.now()
	rec := ledger.Record{Kind: ledger.KindSubjectRequest, ID: ledger.NewRecordID(), Time: now, Policy: PolicyVersion, Unique: unique}
	body := subjectRequestEntry{
		SubjectRequestBody: ledger.SubjectRequestBody{
			ActorID: p.ID, ActorName: p.Name, Kind: req.Kind, Reference: req.reference,
			DataKeys: m.liveIDs(), Transactions: len(m.txIDs), OriginIP: c.ClientIP(),
		},
		Subjects: len(m.subjects) + len(linked),
	}
	switch req.Kind {
	case subjectRequestCorrect:
		// Sealed under DataKeys[0], the first live key; every live key's
		// corrections row gets this entry's sequence number.
		body.Sealed = make(map[string][]byte, len(req.Corrections))
		for f, v := range req.Corrections {
			ct, err := m.live[0].Seal(crypto.AD{Ledger: s.ledger.ID(), Entry: rec.ID, Field: f}, []byte(v))
			if err != nil {
				s.abort(c, err)
				return
			}
			body.Sealed[f] = ct
		}
		for _, id := range body.DataKeys {
			rec.State = append(rec.State, ledger.StateRow{Table: ledger.TableCorrections, Key: id, AppendSeq: true})
		}
	case subjectRequestRestrict, subjectRequestUnrestrict:
		var v []byte // nil deletes: unrestrict
		if req.Kind == subjectRequestRestrict {
			v = []byte(req.reference)
		}
		for _, id := range body.DataKeys {
			rec.State = append(rec.State, ledger.StateRow{Table: ledger.TableRestricted, Key: id, Value: v})
		}
	case subjectRequestErase:
		body.DataKeys = m.keyIDs // destroyed ones too: their rows go as well
		body.ErasedAt = &now
	}
	rec.Body = body

	res, err := s.ledger.Append(c, rec)
	if errors.Is(err, ledger.ErrConflict) {
		e, eerr := s.ledger.Entry(res.Seq)
		if eerr != nil {
			s.abort(c, eerr)
			return
		}
		// Either another request took the reference, or the same request
		// was digested under a blind key since rotated.
		s.repeatSubjectRequest(c, a, req, canon, e)
		return
	}
	if err != nil {
		s.abort(c, err)
		return
	}
	if res.Duplicate {
		// The same request raced this one and won.
		e, err := s.ledger.Entry(res.Seq)
		if err != nil {
			s.abort(c, err)
			return
		}
		s.repeatSubjectRequest(c, a, req, canon, e)
		return
	}
	if req.Kind == subjectRequestErase {
		if err := s.shred(c.Request.Context(), append(slices.Clone(m.subjects), linked...), m.keyIDs); err != nil {
			s.abort(c, err)
			return
		}
	}
	s.log.Info("subject request applied", "kind", req.Kind, "seq", res.Seq, "subjects", body.Subjects, "transactions", body.Transactions)
	s.answerSubjectRequest(c, a, res.Seq, body, false)
}

// repeatSubjectRequest answers a request whose reference is already in the
// ledger at entry e: the original result if it is the same request, 409 if
// not. A repeated erasure first completes the original's, which a crash may
// have interrupted; for the original's keys only, so that data the card or
// email gained since (under a new key) is left alone.
func (s *Server) repeatSubjectRequest(c *gin.Context, a access, req *subjectRequest, canon []byte, e *ledger.Entry) {
	var body subjectRequestEntry
	if e.Kind != ledger.KindSubjectRequest || e.Unique == nil || !s.keys.MatchDigest(digestLabelSubjectRequests, canon, e.Unique.Digest) ||
		e.DecodeBody(&body) != nil || body.Kind != req.Kind {
		s.deny(c, a, errSubjectRequestReused)
		return
	}
	if body.Kind == subjectRequestErase && len(body.DataKeys) > 0 {
		m, err := s.findSubjects(c, req)
		if err != nil {
			s.abort(c, err)
			return
		}
		linked, err := s.linkedSubjects(c, m, body.DataKeys)
		if err != nil {
			s.abort(c, err)
			return
		}
		if err := s.shred(c.Request.Context(), append(m.subjects, linked...), body.DataKeys); err != nil {
			s.abort(c, err)
			return
		}
	}
	s.answerSubjectRequest(c, a, e.Seq, body, true)
}

// shred destroys the data keys keyIDs (those still in the key store), drops
// them from the cache and deletes the subject rows and state rows that
// name them. It runs to the end even if the client goes away: an erasure
// is not left half done for a closed connection.
func (s *Server) shred(ctx context.Context, subjects, keyIDs []string) error {
	ctx = context.WithoutCancel(ctx)
	var present []string
	for _, id := range keyIDs {
		_, ok, err := s.keyStore.Wrapped(ctx, id)
		if err != nil {
			return fmt.Errorf("failed to read data key: %w", err)
		}
		if ok {
			present = append(present, id)
		}
	}
	if err := s.keyStore.Destroy(ctx, present); err != nil {
		return fmt.Errorf("failed to destroy data keys: %w", err)
	}
	for _, id := range keyIDs {
		s.dataKeys.Forget(id)
	}
	if err := s.ledger.EraseSubjects(ctx, subjects, keyIDs); err != nil {
		return fmt.Errorf("failed to erase subject rows: %w", err)
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
