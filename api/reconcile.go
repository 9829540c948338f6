package api

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/reconcile"
)

var (
	errReconTooLarge  = newError(http.StatusRequestEntityTooLarge, "body_too_large", "the report exceeds the upload size limit")
	errReconMediaType = newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"send the settlement report as the raw request body (Content-Type: text/csv), not as a form or JSON")
)

// createReconciliation reconciles the settlement CSV in the request body
// against the ledger, within the caller's merchant scope, stores the run as
// one ledger entry and answers 201 with it.
//
// Query parameters: format (generic or stripe, required); default_merchant
// (the merchant of rows that name none; a caller scoped to exactly one
// merchant defaults to it); from and to (RFC 3339, the optional explicit
// period for missing_in_report). A form (multipart/* or
// application/x-www-form-urlencoded, what curl -d and -F send) or JSON body
// is 415 with a hint to send the raw CSV. The body is streamed, never held whole,
// and capped at Config.MaxUpload (413). A malformed line answers 400
// malformed_report naming its line and column, and nothing is stored.
func (s *Server) createReconciliation(c *gin.Context) {
	p := principal(c)
	format := c.Query("format")
	if format != reconcile.FormatGeneric && format != reconcile.FormatStripe {
		s.abort(c, badRequest("invalid_parameter", "format must be generic or stripe"))
		return
	}
	from, err := reconQueryTime(c, "from")
	if err != nil {
		s.abort(c, err)
		return
	}
	to, err := reconQueryTime(c, "to")
	if err != nil {
		s.abort(c, err)
		return
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		s.abort(c, badRequest("invalid_parameter", "from must be before to"))
		return
	}
	defaultMerchant := c.Query("default_merchant")
	if defaultMerchant == "" && !p.AllMerchants() && len(p.Merchants) == 1 {
		defaultMerchant = p.Merchants[0]
	}
	if defaultMerchant != "" && !auth.ValidID(defaultMerchant) {
		s.abort(c, badRequest("invalid_parameter", "default_merchant is not a valid merchant id"))
		return
	}
	if ct := c.ContentType(); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || strings.HasPrefix(mt, "multipart/") || mt == "application/x-www-form-urlencoded" || mt == "application/json" {
			s.abort(c, errReconMediaType)
			return
		}
	}
	if c.Request.ContentLength > s.cfg.MaxUpload {
		s.abort(c, errReconTooLarge)
		return
	}
	// An authenticated, accepted upload of up to MaxUpload gets longer
	// than a webhook body to arrive.
	extendBodyDeadline(c, s.cfg.UploadReadTimeout)
	run, err := reconcile.RunAndStore(c, s.ledger, reconcile.RunConfig{
		Appender:        s.appender,
		Format:          format,
		Report:          http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxUpload),
		DefaultMerchant: defaultMerchant,
		From:            from,
		To:              to,
		InScope:         p.InScope,
		Scope:           p.Merchants,
		Operator:        reconcile.Operator{ID: p.ID, Name: p.Name, Role: string(p.Role), OriginIP: c.ClientIP()},
		Time:            s.now(),
		Policy:          PolicyVersion,
	})
	if err != nil {
		var le *reconcile.LineError
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &le):
			s.abort(c, badRequest("malformed_report", le.Error()))
		case errors.As(err, &tooBig):
			s.abort(c, errReconTooLarge)
		case isBodyTimeout(err):
			s.abort(c, errBodyTimeout)
		default:
			s.abort(c, err)
		}
		return
	}
	// The run read ledger data of run.Merchants: that read is an access.
	a := access{Action: "reconciliation.create", Resource: "reconciliation/" + run.ID, Merchants: run.Merchants}
	if _, err := s.recordAccess(c, a, http.StatusCreated); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Location", "/v1/reconciliations/"+run.ID)
	c.JSON(http.StatusCreated, run)
}

// getReconciliation answers a stored run, if the caller may see it.
func (s *Server) getReconciliation(c *gin.Context) {
	run, a, ok := s.visibleRun(c, "")
	if !ok {
		return
	}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, run)
}

// getReconciliationExceptions answers a stored run's exceptions as CSV (see
// reconcile.ExceptionWriter). The Paytrail-Exceptions-Total header gives
// the number found in all; Paytrail-Exceptions-Truncated is "true" when the
// run had more than were stored.
func (s *Server) getReconciliationExceptions(c *gin.Context) {
	run, a, ok := s.visibleRun(c, "/exceptions.csv")
	if !ok {
		return
	}
	var b bytes.Buffer
	if err := reconcile.WriteExceptionsCSV(&b, run.Exceptions); err != nil {
		s.abort(c, err)
		return
	}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="reconciliation-`+run.ID+`-exceptions.csv"`)
	c.Header("Paytrail-Exceptions-Total", strconv.Itoa(run.ExceptionsTotal))
	c.Header("Paytrail-Exceptions-Truncated", strconv.FormatBool(run.ExceptionsTruncated))
	c.Data(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
}

// visibleRun loads the run named by the id parameter. A run that does not
// exist, or that the caller may not see, is a recorded denial answering
// 404, the same for both. ok is false once an answer was sent.
func (s *Server) visibleRun(c *gin.Context, suffix string) (*reconcile.StoredRun, access, bool) {
	id := c.Param("id")
	a := access{Action: "reconciliation.read", Resource: "reconciliation/" + id + suffix}
	if !validRunID(id) {
		a.Resource = "reconciliation/(invalid id)" + suffix
		s.deny(c, a, errNotFound)
		return nil, a, false
	}
	run, err := reconcile.LoadRun(s.ledger, id)
	if errors.Is(err, ledger.ErrNotFound) {
		s.deny(c, a, errNotFound)
		return nil, a, false
	}
	if err != nil {
		s.abort(c, err)
		return nil, a, false
	}
	p := principal(c)
	if !run.VisibleTo(p.ID, p.AllMerchants(), p.InScope) {
		s.deny(c, a, errNotFound)
		return nil, a, false
	}
	a.Merchants = run.Merchants
	return run, a, true
}

// validRunID reports whether id has the shape of a record id
// (ledger.NewRecordID: 32 lower-case hex digits).
func validRunID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !('0' <= id[i] && id[i] <= '9' || 'a' <= id[i] && id[i] <= 'f') {
			return false
		}
	}
	return true
}

// reconQueryTime parses an optional RFC 3339 query parameter; absent is zero.
func reconQueryTime(c *gin.Context, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest("invalid_parameter", name+" must be an RFC 3339 time")
	}
	return t.UTC(), nil
}
