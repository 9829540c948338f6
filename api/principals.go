package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
)

type principalView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      auth.Role `json:"role"`
	Merchants []string  `json:"merchants"`
	Created   string    `json:"created"`
	Revoked   string    `json:"revoked,omitempty"`
	Token     string    `json:"token,omitempty"`
}

func viewPrincipal(p *auth.Principal) principalView {
	v := principalView{ID: p.ID, Name: p.Name, Role: p.Role, Merchants: p.Merchants, Created: p.Created.Format(timeFormat)}
	if p.Revoked != nil {
		v.Revoked = p.Revoked.Format(timeFormat)
	}
	return v
}

const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"

func actorOf(c *gin.Context) auth.Actor {
	p := principal(c)
	return auth.Actor{ID: p.ID, Name: p.Name, IP: c.ClientIP()}
}

// errPrincipalScope answers an admin asking for a principal beyond its own
// merchant scope.
var errPrincipalScope = newError(http.StatusForbidden, "forbidden", "your merchant scope does not cover the merchants asked for")

// Scope binds admins too (docs/openapi.yaml): an admin creates,
// lists and revokes only principals whose merchants are all within its own
// scope, so an admin of one merchant can neither mint a "*" auditor nor see
// or revoke the principals of another merchant. A principal outside the
// scope is, to the admin, one that does not exist: revoking it answers 404.

// createPrincipal adds a principal; the token is in this answer only.
func (s *Server) createPrincipal(c *gin.Context) {
	var req struct {
		Name      string   `json:"name"`
		Role      string   `json:"role"`
		Merchants []string `json:"merchants"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		s.abort(c, err)
		return
	}
	merchants, err := auth.ParseMerchants(req.Merchants)
	if err != nil {
		s.abort(c, err)
		return
	}
	if !principal(c).Covers(merchants) {
		// The merchants asked for go in the resource, which is redacted,
		// not in Merchants, which is kept as given.
		a := access{Action: "principal.create", Resource: "principals: new, for merchants " + strings.Join(merchants, ",")}
		s.deny(c, a, errPrincipalScope)
		return
	}
	p, token, err := s.principals.Create(c, actorOf(c), req.Name, role, merchants)
	if err != nil {
		s.abort(c, err)
		return
	}
	v := viewPrincipal(p)
	v.Token = token
	c.JSON(http.StatusCreated, v)
}

// listPrincipals answers the principals the caller's scope covers.
func (s *Server) listPrincipals(c *gin.Context) {
	ps, err := s.principals.List()
	if err != nil {
		s.abort(c, err)
		return
	}
	caller := principal(c)
	ps = slices.DeleteFunc(ps, func(p *auth.Principal) bool { return !caller.Covers(p.Merchants) })
	// Admin reads are access entries too (PCI DSS 10.2.1.2).
	if _, err := s.recordAccess(c, access{Action: "principal.list", Resource: "principals"}, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	items := make([]principalView, 0, len(ps))
	for _, p := range ps {
		items = append(items, viewPrincipal(p))
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// revokePrincipal revokes a principal the caller's scope covers. Unknown
// and out-of-scope ids answer the same 404, and both are recorded as denied
// attempts.
func (s *Server) revokePrincipal(c *gin.Context) {
	id := c.Param("id")
	a := access{Action: "principal.revoke", Resource: "principal/(invalid id)"}
	if auth.ValidID(id) {
		a.Resource = "principal/" + id
	}
	target, err := s.principals.Get(id)
	if errors.Is(err, auth.ErrNotFound) || err == nil && !principal(c).Covers(target.Merchants) {
		s.deny(c, a, errNotFound)
		return
	}
	if err != nil {
		s.abort(c, err)
		return
	}
	p, err := s.principals.Revoke(c, actorOf(c), id)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, viewPrincipal(p))
}
