package api

import "github.com/gin-gonic/gin"

func (s *Server) accessLog(c *gin.Context) { s.abort(c, errNotImplemented) }
