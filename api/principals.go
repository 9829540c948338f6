package api

import (
	"net/http"

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
	p, token, err := s.principals.Create(c, actorOf(c), req.Name, role, req.Merchants)
	if err != nil {
		s.abort(c, err)
		return
	}
	v := viewPrincipal(p)
	v.Token = token
	c.JSON(http.StatusCreated, v)
}

func (s *Server) listPrincipals(c *gin.Context) {
	ps, err := s.principals.List()
	if err != nil {
		s.abort(c, err)
		return
	}
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

func (s *Server) revokePrincipal(c *gin.Context) {
	p, err := s.principals.Revoke(c, actorOf(c), c.Param("id"))
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, viewPrincipal(p))
}
