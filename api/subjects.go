package api

import "github.com/gin-gonic/gin"

func (s *Server) subjectRequest(c *gin.Context) { s.abort(c, errNotImplemented) }
