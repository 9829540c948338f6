package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger"
)

const (
	auditor = auth.RoleAuditor
	finance = auth.RoleFinance
	privacy = auth.RolePrivacy
	admin   = auth.RoleAdmin
)

// routes registers every route with the roles allowed to call it
// (the HTTP contract). docs/openapi.yaml documents each one.
func (s *Server) routes(e *gin.Engine, metricsHandler http.Handler) {
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(metricsHandler))
	e.GET("/v1/ledger/public-key", s.publicKey)
	e.GET("/v1/ledger/public-keys", s.publicKeys)
	e.POST("/v1/webhooks/:source", s.webhookBody, s.ingest)

	v1 := e.Group("/v1", noStore)
	v1.GET("/ledger/checkpoint", s.authorize("checkpoint.read", auditor, finance, privacy, admin), s.checkpoint)
	v1.GET("/ledger/handovers", s.authorize("checkpoint.read", auditor, finance, privacy, admin), s.handovers)
	v1.GET("/ledger/checkpoints/:size", s.authorize("checkpoint.read", auditor, finance, privacy, admin), s.checkpointAt)
	v1.GET("/ledger/proofs/inclusion", s.authorize("proof.inclusion", auditor), s.inclusionProof)
	v1.GET("/ledger/proofs/consistency", s.authorize("proof.consistency", auditor), s.consistencyProof)
	v1.GET("/entries/:seq", s.authorize("entry.read", auditor), s.entry)
	v1.GET("/entries/:seq/receipt", s.authorize("entry.read", auditor), s.entryReceipt)

	v1.GET("/transactions", s.authorize("transactions.list", auditor, finance), s.listTransactions)
	v1.GET("/transactions/:id", s.authorize("transaction.read", auditor, finance), s.getTransaction)
	v1.POST("/transactions/:id/disclose", s.authorize("transaction.disclose", auditor, privacy), s.disclose)
	v1.GET("/transactions/:id/receipts", s.authorize("transaction.receipts", auditor), s.transactionReceipts)
	v1.POST("/cards/search", s.authorize("cards.search", auditor, finance), s.searchCard)
	v1.GET("/access-log", s.authorize("access_log.read", auditor, admin), s.accessLog)

	v1.POST("/reconciliations", s.authorize("reconciliation.create", finance), s.createReconciliation)
	v1.GET("/reconciliations", s.authorize("reconciliation.list", finance, auditor), s.listReconciliations)
	v1.GET("/reconciliations/:id", s.authorize("reconciliation.read", finance, auditor), s.getReconciliation)
	v1.GET("/reconciliations/:id/exceptions.csv", s.authorize("reconciliation.read", finance, auditor), s.getReconciliationExceptions)

	v1.POST("/subject-requests", s.authorize("subject_request.create", privacy), s.subjectRequest)

	v1.GET("/cluster", s.authorize("cluster.read", auditor, admin), s.clusterStatus)

	v1.POST("/principals", s.authorize("principal.create", admin), s.createPrincipal)
	v1.GET("/principals", s.authorize("principal.list", admin), s.listPrincipals)
	v1.DELETE("/principals/:id", s.authorize("principal.revoke", admin), s.revokePrincipal)

	v1.GET("/admin/backup", s.authorize("backup.create", admin), s.backup)
	v1.GET("/admin/keys", s.authorize("keys.read", admin), s.keysStatus)
	v1.POST("/admin/keys/:keyset/rotate", s.authorize("keys.rotate", admin), s.rotateKeys)

	s.consoleRoutes(e) // the web console, /console/ (console.go)
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 while the ledger and the key store are open and
// accepting writes; 503 while either is closed, failed, or waits for disk
// space (it answers 200 again by itself once space returns).
func (s *Server) readyz(c *gin.Context) {
	err := s.ledger.Healthy()
	if err == nil {
		err = s.keyStore.Healthy()
	}
	if errors.Is(err, ledger.ErrNoSpace) {
		s.abort(c, newError(http.StatusServiceUnavailable, "not_ready", "out of disk space: writes are refused until space is freed"))
		return
	}
	if err != nil {
		s.abort(c, newError(http.StatusServiceUnavailable, "not_ready", "the ledger is not accepting writes"))
		return
	}
	body := gin.H{"status": "ready", "entries": s.ledger.Size()}
	s.addWitnessStatus(body)
	if err := s.clusterReady(body); err != nil {
		e := toError(err)
		body["status"] = "not_ready"
		body["error"] = gin.H{"code": e.Code, "message": e.Message}
		c.AbortWithStatusJSON(e.Status, body)
		return
	}
	c.JSON(http.StatusOK, body)
}

// noStore keeps every /v1 answer out of shared and browser caches: most of
// them carry ledger or cardholder-linked data.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}
