package api

import (
	"bytes"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/witness"
	"github.com/paytrail/paytrail/ledger/reconcile"
)

// The console's pages. Each calls the API route named in its comment
// (callAPI) and renders the answer; an API error is shown in the API's
// own words.

func (s *Server) consoleHome(c *gin.Context) {
	switch sessionOf(c).principal.Role {
	case auth.RolePrivacy:
		c.Redirect(http.StatusSeeOther, "/console/subject-requests")
	case auth.RoleAdmin:
		c.Redirect(http.StatusSeeOther, "/console/principals")
	default:
		c.Redirect(http.StatusSeeOther, "/console/transactions")
	}
}

// txListPage is the transactions page's data.
type txListPage struct {
	Filters  url.Values
	Items    []txView
	Next     template.URL // the next page, if any
	FirstURL template.URL // the first page with the same filters
	Search   bool         // the items are a card search's
	Truncate bool
	First    bool
}

// consoleTransactions: GET /v1/transactions. Filters are form fields on
// non-personal facts (merchant, status, type, dates); dates are taken as
// whole days in UTC.
func (s *Server) consoleTransactions(c *gin.Context) {
	q := url.Values{}
	f := url.Values{}
	for _, k := range []string{"merchant_id", "status", "type", "from", "to"} {
		if v := strings.TrimSpace(c.Query(k)); v != "" {
			f.Set(k, v)
			q.Set(k, v)
		}
	}
	for _, k := range []string{"from", "to"} {
		if v := q.Get(k); len(v) == len("2006-01-02") {
			if _, err := time.Parse("2006-01-02", v); err == nil {
				q.Set(k, v+"T00:00:00Z")
			}
		}
	}
	if cur := c.Query("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	res := s.callAPI(c, http.MethodGet, "/v1/transactions", q, nil, "")
	page := &txListPage{Filters: f, First: c.Query("cursor") == "", FirstURL: pageURL("/console/transactions", f, "")}
	if !res.ok() {
		s.render(c, res.status, "transactions", &pageData{Title: "Transactions", Nav: "transactions", Error: res.apiError(), Data: page})
		return
	}
	var body struct {
		Items      []txView `json:"items"`
		NextCursor string   `json:"next_cursor"`
	}
	if err := res.decode(&body); err != nil {
		s.renderError(c, "transactions", toError(err))
		return
	}
	page.Items = body.Items
	if body.NextCursor != "" {
		page.Next = pageURL("/console/transactions", f, body.NextCursor)
	}
	s.render(c, http.StatusOK, "transactions", &pageData{Title: "Transactions", Nav: "transactions", Data: page})
}

// consoleCardSearch: POST /v1/cards/search. The card number arrives in a
// POST body and leaves only as the API's JSON body: never in a URL, a
// redirect, a title or a log line. The result is this answer alone.
func (s *Server) consoleCardSearch(c *gin.Context) {
	req := map[string]string{}
	if v := strings.TrimSpace(c.PostForm("pan")); v != "" {
		req["pan"] = v
	}
	if v := strings.TrimSpace(c.PostForm("card_fingerprint")); v != "" {
		req["card_fingerprint"] = v
	}
	page := &txListPage{Filters: url.Values{}, Search: true, First: true}
	if len(req) == 0 {
		s.render(c, http.StatusBadRequest, "transactions", &pageData{Title: "Transactions", Nav: "transactions", Data: page,
			Error: badRequest("invalid_request", "enter a card number or a Stripe card fingerprint")})
		return
	}
	res := s.callAPI(c, http.MethodPost, "/v1/cards/search", nil, jsonBody(req), "application/json")
	if !res.ok() {
		s.render(c, res.status, "transactions", &pageData{Title: "Transactions", Nav: "transactions", Error: res.apiError(), Data: page})
		return
	}
	var body struct {
		Items     []txView `json:"items"`
		Truncated bool     `json:"truncated"`
	}
	if err := res.decode(&body); err != nil {
		s.renderError(c, "transactions", toError(err))
		return
	}
	page.Items, page.Truncate = body.Items, body.Truncated
	s.render(c, http.StatusOK, "transactions", &pageData{Title: "Card search", Nav: "transactions", Data: page})
}

// consoleTransaction: GET /v1/transactions/{id}.
func (s *Server) consoleTransaction(c *gin.Context) {
	res := s.callAPI(c, http.MethodGet, "/v1/transactions/"+url.PathEscape(c.Param("id")), nil, nil, "")
	if !res.ok() {
		s.renderError(c, "transactions", res.apiError())
		return
	}
	var v txView
	if err := res.decode(&v); err != nil {
		s.renderError(c, "transactions", toError(err))
		return
	}
	s.render(c, http.StatusOK, "transaction", &pageData{Title: "Transaction", Nav: "transactions", Data: &v})
}

// purposeChoice is a disclosure purpose offered to a role.
type purposeChoice struct{ Value, Label string }

func purposesFor(role auth.Role) []purposeChoice {
	var out []purposeChoice
	for _, p := range []purposeChoice{
		{purposeFraud, "Fraud investigation"},
		{purposeLegal, "Legal obligation"},
		{purposeCardholder, "Cardholder request"},
	} {
		if purposeAllowed(role, p.Value) {
			out = append(out, p)
		}
	}
	return out
}

type disclosePage struct {
	TransactionID string
	Purposes      []purposeChoice
	Purpose       string
	Justification string
	Result        *disclosureResult
}

type disclosureResult struct {
	Purpose   string             `json:"purpose"`
	Fields    map[string]*string `json:"fields"`
	Corrected []string           `json:"corrected"`
	AccessSeq uint64             `json:"access_seq"`
}

// consoleDiscloseForm shows the disclosure form: the purposes of the
// person's role and a required justification. Nothing is read yet.
func (s *Server) consoleDiscloseForm(c *gin.Context) {
	id := c.Param("id")
	if !auth.ValidID(id) {
		s.renderError(c, "transactions", errNotFound)
		return
	}
	p := sessionOf(c).principal
	page := &disclosePage{TransactionID: id, Purposes: purposesFor(p.Role)}
	if len(page.Purposes) == 0 {
		s.renderError(c, "transactions", errForbidden)
		return
	}
	s.render(c, http.StatusOK, "disclose", &pageData{Title: "Disclose personal data", Nav: "transactions", Data: page})
}

// consoleDisclose: POST /v1/transactions/{id}/disclose. The fields are in
// this answer only (no-store, never redirected to, never kept).
func (s *Server) consoleDisclose(c *gin.Context) {
	id := c.Param("id")
	p := sessionOf(c).principal
	page := &disclosePage{TransactionID: id, Purposes: purposesFor(p.Role),
		Purpose: c.PostForm("purpose"), Justification: c.PostForm("justification")}
	res := s.callAPI(c, http.MethodPost, "/v1/transactions/"+url.PathEscape(id)+"/disclose", nil,
		jsonBody(map[string]string{"purpose": page.Purpose, "justification": page.Justification}), "application/json")
	if !res.ok() {
		s.render(c, res.status, "disclose", &pageData{Title: "Disclose personal data", Nav: "transactions", Error: res.apiError(), Data: page})
		return
	}
	var r disclosureResult
	if err := res.decode(&r); err != nil {
		s.renderError(c, "transactions", toError(err))
		return
	}
	page.Result = &r
	s.render(c, http.StatusOK, "disclose", &pageData{Title: "Disclosed personal data", Nav: "transactions", Data: page})
}

// consoleReceipt: GET /v1/entries/{seq}/receipt, as a file to save. Until
// the API serves receipts (see console.receipts) this answers 404.
func (s *Server) consoleReceipt(c *gin.Context) {
	if !s.receiptsServed() {
		s.renderError(c, "transactions", newError(http.StatusNotFound, "not_found", "receipts are not available on this server yet"))
		return
	}
	seq := c.Param("seq")
	if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
		s.renderError(c, "transactions", errNotFound)
		return
	}
	res := s.callAPI(c, http.MethodGet, "/v1/entries/"+seq+"/receipt", nil, nil, "")
	if !res.ok() {
		s.renderError(c, "transactions", res.apiError())
		return
	}
	c.Header("Content-Disposition", `attachment; filename="paytrail-entry-`+seq+`.receipt"`)
	c.Data(http.StatusOK, "text/plain; charset=utf-8", res.body.Bytes())
}

type accessLogPage struct {
	Filters  url.Values
	Items    []accessView
	Next     template.URL
	FirstURL template.URL
	First    bool
}

// consoleAccessLog: GET /v1/access-log.
func (s *Server) consoleAccessLog(c *gin.Context) {
	q, f := url.Values{}, url.Values{}
	for _, k := range []string{"actor", "from", "to"} {
		if v := strings.TrimSpace(c.Query(k)); v != "" {
			f.Set(k, v)
			q.Set(k, v)
		}
	}
	for _, k := range []string{"from", "to"} {
		if v := q.Get(k); len(v) == len("2006-01-02") {
			q.Set(k, v+"T00:00:00Z")
		}
	}
	if cur := c.Query("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	page := &accessLogPage{Filters: f, First: c.Query("cursor") == "", FirstURL: pageURL("/console/access-log", f, "")}
	res := s.callAPI(c, http.MethodGet, "/v1/access-log", q, nil, "")
	if !res.ok() {
		s.render(c, res.status, "accesslog", &pageData{Title: "Access log", Nav: "access", Error: res.apiError(), Data: page})
		return
	}
	var body struct {
		Items      []accessView `json:"items"`
		NextCursor string       `json:"next_cursor"`
	}
	if err := res.decode(&body); err != nil {
		s.renderError(c, "access", toError(err))
		return
	}
	page.Items = body.Items
	if body.NextCursor != "" {
		page.Next = pageURL("/console/access-log", f, body.NextCursor)
	}
	s.render(c, http.StatusOK, "accesslog", &pageData{Title: "Access log", Nav: "access", Data: page})
}

type ledgerPage struct {
	Size       uint64
	Checkpoint string
	PublicKey  string
	Origin     string
	URL        string
	// Witnesses are the configured witnesses (names and verifier keys,
	// never secrets), the quorum, the newest witnessed size and how many
	// entries no witnessed checkpoint covers yet.
	Witnesses     []witness.Endpoint
	Quorum        int
	WitnessedSize uint64
	Witnessed     bool
	WitnessedLag  uint64
}

// consoleLedger: GET /v1/ledger/checkpoint, and the verifier key.
func (s *Server) consoleLedger(c *gin.Context) {
	res := s.callAPI(c, http.MethodGet, "/v1/ledger/checkpoint", nil, nil, "")
	page := &ledgerPage{Size: s.ledger.Size(), PublicKey: s.verifiers[0], Origin: s.ledger.Origin()}
	if s.witnesses != nil {
		page.Witnesses = s.cfg.Witnesses
		page.Quorum = s.cfg.WitnessQuorum
		if page.Quorum == 0 {
			page.Quorum = len(s.cfg.Witnesses)/2 + 1
		}
		page.WitnessedSize, page.Witnessed = s.witnesses.Witnessed()
		page.WitnessedLag = s.witnesses.Lag()
	}
	scheme := "http"
	if c.Request.TLS != nil || s.cfg.Console.SecureCookies {
		scheme = "https"
	}
	page.URL = scheme + "://" + c.Request.Host
	var e *Error
	if res.ok() {
		page.Checkpoint = res.body.String()
	} else if res.status != http.StatusNotFound {
		e = res.apiError()
	}
	s.render(c, http.StatusOK, "ledger", &pageData{Title: "Ledger", Nav: "ledger", Error: e, Data: page})
}

type reconListPage struct {
	Items []runSummaryView
}

// consoleReconciliations: GET /v1/reconciliations, and the upload form.
func (s *Server) consoleReconciliations(c *gin.Context) {
	res := s.callAPI(c, http.MethodGet, "/v1/reconciliations", nil, nil, "")
	page := &reconListPage{}
	if !res.ok() {
		s.render(c, res.status, "reconciliations", &pageData{Title: "Reconciliation", Nav: "recon", Error: res.apiError(), Data: page})
		return
	}
	if err := res.decode(&struct {
		Items *[]runSummaryView `json:"items"`
	}{&page.Items}); err != nil {
		s.renderError(c, "recon", toError(err))
		return
	}
	s.render(c, http.StatusOK, "reconciliations", &pageData{Title: "Reconciliation", Nav: "recon", Data: page})
}

// consoleUpload: POST /v1/reconciliations. The form is multipart with the
// CSRF token and format before the file; it is read as a stream, part by
// part, and the file part is streamed to the API (no temporary file). The
// page's script sends the same form with a progress bar.
func (s *Server) consoleUpload(c *gin.Context) {
	ss := sessionOf(c)
	mt, _, err := mime.ParseMediaType(c.ContentType())
	if err != nil || mt != "multipart/form-data" {
		s.checkCSRF(c, "") // refuse: only the console's form is accepted
		return
	}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		s.renderError(c, "recon", badRequest("invalid_request", "the upload is not a valid form"))
		return
	}
	fields := map[string]string{}
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if err != nil || i > 8 { // the form has four fields
			s.renderError(c, "recon", badRequest("invalid_request", "choose a settlement report file to upload"))
			return
		}
		if part.FormName() != "report" {
			b, _ := io.ReadAll(io.LimitReader(part, 4096))
			fields[part.FormName()] = string(b)
			continue
		}
		c.Request.PostForm = url.Values{"csrf": {fields["csrf"]}}
		if !s.checkCSRF(c, ss.csrf) {
			return
		}
		// Accepted: give the report the upload's time to arrive.
		extendBodyDeadline(c, s.cfg.UploadReadTimeout)
		q := url.Values{"format": {fields["format"]}}
		if v := strings.TrimSpace(fields["default_merchant"]); v != "" {
			q.Set("default_merchant", v)
		}
		res := s.callAPI(c, http.MethodPost, "/v1/reconciliations", q, part, "text/csv")
		if !res.ok() {
			s.renderError(c, "recon", res.apiError())
			return
		}
		var run struct {
			ID string `json:"id"`
		}
		if err := res.decode(&run); err != nil || !validRunID(run.ID) {
			s.renderError(c, "recon", toError(err))
			return
		}
		c.Redirect(http.StatusSeeOther, "/console/reconciliations/"+run.ID)
		return
	}
}

// consoleReconciliation: GET /v1/reconciliations/{id}.
func (s *Server) consoleReconciliation(c *gin.Context) {
	res := s.callAPI(c, http.MethodGet, "/v1/reconciliations/"+url.PathEscape(c.Param("id")), nil, nil, "")
	if !res.ok() {
		s.renderError(c, "recon", res.apiError())
		return
	}
	var run reconcile.StoredRun
	if err := res.decode(&run); err != nil {
		s.renderError(c, "recon", toError(err))
		return
	}
	s.render(c, http.StatusOK, "reconciliation", &pageData{Title: "Reconciliation run", Nav: "recon", Data: &run})
}

// consoleExceptionsCSV: GET /v1/reconciliations/{id}/exceptions.csv.
func (s *Server) consoleExceptionsCSV(c *gin.Context) {
	res := s.callAPI(c, http.MethodGet, "/v1/reconciliations/"+url.PathEscape(c.Param("id"))+"/exceptions.csv", nil, nil, "")
	if !res.ok() {
		s.renderError(c, "recon", res.apiError())
		return
	}
	for _, h := range []string{"Content-Disposition", "Paytrail-Exceptions-Total", "Paytrail-Exceptions-Truncated"} {
		if v := res.header.Get(h); v != "" {
			c.Header(h, v)
		}
	}
	c.Data(http.StatusOK, "text/csv; charset=utf-8", res.body.Bytes())
}

type subjectPage struct {
	Kind      string
	Reference string
	Confirm   string // pending erasure id
	Has       []string
	Result    *subjectResult
}

type subjectResult struct {
	Kind         string `json:"kind"`
	Reference    string `json:"reference"`
	Seq          uint64 `json:"seq"`
	Transactions int    `json:"transactions"`
	Duplicate    bool   `json:"duplicate"`
}

// consoleSubjectForm shows the cardholder request form.
func (s *Server) consoleSubjectForm(c *gin.Context) {
	if sessionOf(c).principal.Role != auth.RolePrivacy {
		s.renderError(c, "privacy", errForbidden)
		return
	}
	s.render(c, http.StatusOK, "subjects", &pageData{Title: "Cardholder requests", Nav: "privacy", Data: &subjectPage{Kind: "restrict"}})
}

// consoleSubjectRequest: POST /v1/subject-requests, except that an
// erasure first shows a confirmation page. The identifiers then wait in
// the session, on the server, under a random id the confirmation posts.
func (s *Server) consoleSubjectRequest(c *gin.Context) {
	body := subjectRequestJSON{
		Kind:            c.PostForm("kind"),
		PAN:             strings.TrimSpace(c.PostForm("pan")),
		Email:           strings.TrimSpace(c.PostForm("email")),
		CardFingerprint: strings.TrimSpace(c.PostForm("card_fingerprint")),
		Customer:        strings.TrimSpace(c.PostForm("customer")),
		Reference:       strings.TrimSpace(c.PostForm("reference")),
	}
	if body.Kind == subjectRequestCorrect {
		body.Corrections = map[string]string{}
		for _, f := range disclosureFields {
			if v := strings.TrimSpace(c.PostForm("correct_" + f)); v != "" {
				body.Corrections[f] = v
			}
		}
	}
	if body.Kind == subjectRequestErase {
		// Validate before asking to confirm, without acting: the same
		// parser the API uses.
		if _, err := parseSubjectRequest(body); err != nil {
			s.render(c, http.StatusBadRequest, "subjects", &pageData{Title: "Cardholder requests", Nav: "privacy",
				Error: toError(err), Data: &subjectPage{Kind: body.Kind, Reference: body.Reference}})
			return
		}
		id := s.console.sessions.addPending(sessionOf(c).key, body)
		s.render(c, http.StatusOK, "subjects", &pageData{Title: "Confirm erasure", Nav: "privacy",
			Data: &subjectPage{Kind: body.Kind, Reference: body.Reference, Confirm: id, Has: identifiersNamed(body)}})
		return
	}
	s.sendSubjectRequest(c, body)
}

// consoleSubjectConfirm performs a confirmed erasure.
func (s *Server) consoleSubjectConfirm(c *gin.Context) {
	body, ok := s.console.sessions.takePending(sessionOf(c).key, c.PostForm("pending"))
	if !ok {
		s.render(c, http.StatusBadRequest, "subjects", &pageData{Title: "Cardholder requests", Nav: "privacy",
			Error: badRequest("expired", "this confirmation expired or was already used; enter the request again"), Data: &subjectPage{Kind: "erase"}})
		return
	}
	s.sendSubjectRequest(c, body)
}

func (s *Server) sendSubjectRequest(c *gin.Context, body subjectRequestJSON) {
	res := s.callAPI(c, http.MethodPost, "/v1/subject-requests", nil, jsonBody(body), "application/json")
	page := &subjectPage{Kind: body.Kind, Reference: body.Reference}
	if !res.ok() {
		s.render(c, res.status, "subjects", &pageData{Title: "Cardholder requests", Nav: "privacy", Error: res.apiError(), Data: page})
		return
	}
	var r subjectResult
	if err := res.decode(&r); err != nil {
		s.renderError(c, "privacy", toError(err))
		return
	}
	page.Result = &r
	s.render(c, http.StatusOK, "subjects", &pageData{Title: "Cardholder requests", Nav: "privacy", Data: page})
}

// identifiersNamed says which kinds of identifier a request names, never
// their values.
func identifiersNamed(b subjectRequestJSON) []string {
	var out []string
	if b.PAN != "" {
		out = append(out, "a card number")
	}
	if b.Email != "" {
		out = append(out, "an email address")
	}
	if b.CardFingerprint != "" {
		out = append(out, "a Stripe card fingerprint")
	}
	if b.Customer != "" {
		out = append(out, "a Stripe customer id")
	}
	return out
}

type principalsPage struct {
	Items   []principalView
	Created *principalView
}

// consolePrincipals: GET /v1/principals.
func (s *Server) consolePrincipals(c *gin.Context) {
	s.renderPrincipals(c, nil, nil)
}

func (s *Server) renderPrincipals(c *gin.Context, created *principalView, e *Error) {
	res := s.callAPI(c, http.MethodGet, "/v1/principals", nil, nil, "")
	page := &principalsPage{Created: created}
	if !res.ok() {
		s.render(c, res.status, "principals", &pageData{Title: "Principals", Nav: "principals", Error: res.apiError(), Data: page})
		return
	}
	if err := res.decode(&struct {
		Items *[]principalView `json:"items"`
	}{&page.Items}); err != nil {
		s.renderError(c, "principals", toError(err))
		return
	}
	status := http.StatusOK
	if e != nil {
		status = e.Status
	}
	s.render(c, status, "principals", &pageData{Title: "Principals", Nav: "principals", Error: e, Data: page})
}

// consoleCreatePrincipal: POST /v1/principals. The token is in this page
// only.
func (s *Server) consoleCreatePrincipal(c *gin.Context) {
	merchants := []string{}
	for _, m := range strings.Split(c.PostForm("merchants"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			merchants = append(merchants, m)
		}
	}
	req := map[string]any{"name": strings.TrimSpace(c.PostForm("name")), "role": c.PostForm("role"), "merchants": merchants}
	res := s.callAPI(c, http.MethodPost, "/v1/principals", nil, jsonBody(req), "application/json")
	if !res.ok() {
		s.renderPrincipals(c, nil, res.apiError())
		return
	}
	var v principalView
	if err := res.decode(&v); err != nil {
		s.renderError(c, "principals", toError(err))
		return
	}
	s.renderPrincipals(c, &v, nil)
}

// consoleRevokePrincipal: DELETE /v1/principals/{id}.
func (s *Server) consoleRevokePrincipal(c *gin.Context) {
	res := s.callAPI(c, http.MethodDelete, "/v1/principals/"+url.PathEscape(c.Param("id")), nil, nil, "")
	if !res.ok() {
		s.renderPrincipals(c, nil, res.apiError())
		return
	}
	c.Redirect(http.StatusSeeOther, "/console/principals")
}

// pageURL is a list page's URL with its filters and, if not empty, a
// cursor. Filters hold no cardholder data (card searches are POSTs).
func pageURL(path string, filters url.Values, cursor string) template.URL {
	q := url.Values{}
	for k, v := range filters {
		q[k] = v
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return template.URL(path)
	}
	return template.URL(path + "?" + q.Encode())
}

// jsonBody encodes v as an API request body.
func jsonBody(v any) io.Reader {
	var b bytes.Buffer
	if err := jsonEncode(&b, v); err != nil {
		panic("api: console request does not encode: " + err.Error())
	}
	return &b
}
