package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// Error is an error with the HTTP status and contract code it answers with.
// Its Message is shown to the client, so it must never contain cardholder
// data or internals.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// Errors handlers branch on or return.
var (
	errMerchantNotAllowed = newError(http.StatusForbidden, "merchant_not_allowed", "this webhook source may not post events for that merchant")
	errUnauthenticated    = newError(http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
	errForbidden          = newError(http.StatusForbidden, "forbidden", "your role may not do this")
	errNotFound           = newError(http.StatusNotFound, "not_found", "no such resource")
	errUnavailable        = newError(http.StatusServiceUnavailable, "unavailable", "the ledger cannot record this request right now; try again")
	errBodyTooLarge       = newError(http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds the size limit")
	// errBodyTimeout answers a body that did not arrive within
	// Config.BodyReadTimeout.
	errBodyTimeout = newError(http.StatusRequestTimeout, "body_timeout", "the request body was not received in time")
	// errOverloaded answers a webhook delivery that does not fit in
	// Config.MaxWebhookBuffer; it goes with a Retry-After header.
	errOverloaded = newError(http.StatusServiceUnavailable, "overloaded", "too many webhook deliveries are being received; retry later")
)

func badRequest(code, msg string) *Error { return newError(http.StatusBadRequest, code, msg) }

// toError maps an error to the answer, in one table. Unknown errors are 500
// and their text is logged, never sent.
func toError(err error) *Error {
	var e *Error
	var fe *webhook.FieldError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &fe):
		return badRequest("invalid_field", fe.Error())
	case errors.Is(err, webhook.ErrMalformed):
		return badRequest("malformed_event", "the event is not valid JSON of the expected shape")
	case errors.Is(err, webhook.ErrSignature):
		return newError(http.StatusUnauthorized, "invalid_signature", "the webhook signature is missing, invalid or stale")
	case errors.Is(err, crypto.ErrInvalidPAN):
		return badRequest("invalid_pan", "the card number is not valid")
	case errors.Is(err, auth.ErrNoRole):
		return errNoRole
	case errors.Is(err, auth.ErrAmbiguousRole):
		return errAmbiguousRole
	case errors.Is(err, auth.ErrUnauthenticated):
		return errUnauthenticated
	case errors.Is(err, auth.ErrInvalid):
		return badRequest("invalid_principal", principalReason(err))
	case errors.Is(err, auth.ErrNotFound), errors.Is(err, ledger.ErrNotFound):
		return errNotFound
	case errors.Is(err, ledger.ErrBadRange):
		return badRequest("invalid_range", "tree size or index out of range")
	case errors.Is(err, ledger.ErrSourceConflict):
		return newError(http.StatusConflict, "transaction_source_conflict", "this transaction id already belongs to another webhook source")
	case errors.Is(err, ledger.ErrMerchantConflict):
		return newError(http.StatusConflict, "transaction_merchant_conflict", "this transaction id already belongs to another merchant")
	case errors.Is(err, ledger.ErrConflict):
		return newError(http.StatusConflict, "idempotency_conflict", "this event id was already received with a different body")
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, ledger.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// ErrUnavailable: out of disk, or a failed commit. Nothing was
		// acknowledged; the client retries with the same event id.
		return errUnavailable
	}
	return newError(http.StatusInternalServerError, "internal", "internal error")
}

// principalReason says what is wrong with a principal definition, in text
// fixed here: an error's own text could one day quote the input.
func principalReason(err error) string {
	for _, e := range []error{
		auth.ErrInvalidName, auth.ErrNameHasPAN, auth.ErrUnknownRole,
		auth.ErrInvalidMerchant, auth.ErrNoMerchants, auth.ErrMerchantWildcard,
	} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), auth.ErrInvalid.Error()+": ")
		}
	}
	return "the name, role or merchants are not valid"
}

// abort answers c with err in the contract's JSON shape.
func (s *Server) abort(c *gin.Context, err error) {
	e := toError(err)
	switch {
	case e.Status == http.StatusServiceUnavailable:
		// Expected while the disk is full or the server is overloaded,
		// and then for every request: one line per route and code per
		// interval.
		if n, ok := s.logLimit.allow("503 "+c.FullPath()+" "+e.Code, time.Now()); ok {
			s.log.Warn("request answered 503", "route", c.FullPath(), "code", e.Code, "err", err, "suppressed_since_last", n)
		}
	case e.Status >= 500:
		s.log.Error("request failed", "route", c.FullPath(), "status", e.Status, "err", err)
	}
	c.AbortWithStatusJSON(e.Status, gin.H{"error": gin.H{"code": e.Code, "message": e.Message}})
}

// recovery turns a panic into a 500 with no internals.
func (s *Server) recovery() gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, rec any) {
		// Only the panic's type is logged: its value could hold request data.
		s.log.Error("panic in handler", "route", c.FullPath(), "panic_type", fmt.Sprintf("%T", rec))
		s.abort(c, errors.New("panic"))
	})
}
