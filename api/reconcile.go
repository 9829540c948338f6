package api

import "github.com/gin-gonic/gin"

func (s *Server) createReconciliation(c *gin.Context)        { s.abort(c, errNotImplemented) }
func (s *Server) getReconciliation(c *gin.Context)           { s.abort(c, errNotImplemented) }
func (s *Server) getReconciliationExceptions(c *gin.Context) { s.abort(c, errNotImplemented) }
