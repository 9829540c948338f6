package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger"
)

const principalKey = "paytrail.principal"

// principal returns the authenticated caller set by authorize.
func principal(c *gin.Context) *auth.Principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(*auth.Principal)
	return pr
}

// access describes one access for the access log.
type access struct {
	Action string
	// Resource names what was read or attempted. It may hold caller input
	// (path parameters, filters), so card numbers in it are redacted.
	Resource string
	// Returned, if set, is appended to Resource as written: server-made
	// text (counts, sequence numbers) that redaction would mistake for card
	// numbers. It must start with a space and a word, so that no digits of
	// Resource run into its own.
	Returned      string
	Merchants     []string
	Purpose       string
	Justification string
}

// recordAccess durably appends an access entry (PCI DSS 10.2.2: who, what
// kind, when, success or failure, origin, which data) and returns its
// sequence number. Handlers call it before sending data, and send nothing if
// it fails.
func (s *Server) recordAccess(c *gin.Context, a access, status int) (uint64, error) {
	p := principal(c)
	body := ledger.AccessBody{
		Action:    a.Action,
		Resource:  redactPANs(a.Resource) + a.Returned,
		Merchants: a.Merchants,
		Purpose:   a.Purpose,
		Reason:    redactPANs(a.Justification),
		Result:    "success",
		Status:    status,
		OriginIP:  c.ClientIP(),
	}
	if status >= 400 {
		body.Result = "failure"
	}
	if p != nil {
		body.ActorID, body.ActorName, body.Role = p.ID, p.Name, string(p.Role)
	} else {
		body.ActorID, body.ActorName = "anonymous", "unauthenticated caller"
	}
	res, err := s.ledger.Append(c, ledger.Record{
		Kind: ledger.KindAccess, ID: ledger.NewRecordID(), Time: s.now(), Policy: PolicyVersion, Body: body,
	})
	if err != nil {
		s.log.Error("failed to record access; refusing to answer", "action", a.Action, "err", err)
		return 0, errUnavailable
	}
	return res.Seq, nil
}

// deny records a denied attempt, then answers with err. If the denial
// cannot be recorded the caller still gets no data.
func (s *Server) deny(c *gin.Context, a access, err error) {
	e := toError(err)
	if _, rerr := s.recordAccess(c, a, e.Status); rerr != nil {
		s.abort(c, rerr)
		return
	}
	s.abort(c, e)
}

// authorize authenticates the caller and checks its role. Failures are
// access entries (401, 403) before the answer.
func (s *Server) authorize(action string, roles ...auth.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		a := access{Action: action, Resource: requestResource(c)}
		p, err := s.auth.Authenticate(c, c.Request)
		if err != nil {
			if toError(err).Status != http.StatusUnauthorized {
				s.abort(c, err)
				return
			}
			s.deny(c, a, errUnauthenticated)
			return
		}
		c.Set(principalKey, p)
		for _, r := range roles {
			if p.Role == r {
				c.Next()
				return
			}
		}
		s.deny(c, a, errForbidden)
	}
}

// scopeFilter returns the merchants a list query may read: the requested
// one if given and in scope, or the caller's scope. ok is false when the
// request names a merchant outside the scope (the answer is then an empty
// list, not an error).
func scopeFilter(p *auth.Principal, requested string) (merchants []string, all bool, ok bool) {
	if requested != "" {
		if !p.InScope(requested) {
			return nil, false, false
		}
		return []string{requested}, false, true
	}
	if p.AllMerchants() {
		return nil, true, true
	}
	return p.Merchants, false, true
}

// requestResource names the request for a denial: the route template with
// its parameters filled in (recordAccess redacts any card number a caller
// put there). Query strings are left out: they are the caller's to fill.
// The method is named from the fixed set of the metrics labels, never as
// sent.
func requestResource(c *gin.Context) string {
	method := methodLabel(c.Request.Method)
	path := c.FullPath()
	if path == "" {
		return method + " (unmatched route)"
	}
	for _, p := range c.Params {
		path = strings.Replace(path, ":"+p.Key, p.Value, 1)
	}
	return method + " " + path
}
