package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

func (s *Server) listTransactions(c *gin.Context) { s.abort(c, errNotImplemented) }
func (s *Server) getTransaction(c *gin.Context)   { s.abort(c, errNotImplemented) }
func (s *Server) disclose(c *gin.Context)         { s.abort(c, errNotImplemented) }
func (s *Server) searchCard(c *gin.Context)       { s.abort(c, errNotImplemented) }

var errNotImplemented = newError(http.StatusNotImplemented, "not_implemented", "not implemented yet")
