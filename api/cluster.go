package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/ledger"
)

// Appender orders and applies writes. The single node's is its ledger
// (the appender's queue is the order); a cluster node's is its
// cluster.Node, which publishes each record to the cluster's stream and
// answers once this node applied it. Every write of the server goes
// through it.
type Appender interface {
	Append(ctx context.Context, rec ledger.Record) (ledger.Result, error)
}

// KeyStore is where wrapped data keys live: the local key store
// (keystore.Store), or a cluster's key bucket (cluster.KeyStore).
type KeyStore interface {
	PutWrapped(ctx context.Context, keys []ledger.WrappedKey) error
	Wrapped(ctx context.Context, id string) ([]byte, bool, error)
	Destroy(ctx context.Context, ids []string) error
	Healthy() error
}

// sequencedLedger is the ledger with its appends made through the
// server's appender, for the stores that read and write state rows
// (principals).
type sequencedLedger struct {
	*ledger.Ledger
	appender Appender
}

func (l sequencedLedger) Append(ctx context.Context, rec ledger.Record) (ledger.Result, error) {
	return l.appender.Append(ctx, rec)
}

// clusterReady adds a cluster node's position to /readyz's answer, or
// says why the node is not ready: it halted on a root disagreement, or it
// has more of the stream left to apply than max_lag.
func (s *Server) clusterReady(body gin.H) error {
	if s.cluster == nil {
		return nil
	}
	lag := s.cluster.Lag()
	body["applied"] = s.ledger.Applied()
	body["lag"] = lag
	body["node"] = s.cluster.Name()
	if err := s.cluster.Halted(); err != nil {
		body["halted"] = true
		return newError(http.StatusServiceUnavailable, "not_ready", "this node halted: its ledger disagrees with the cluster's; see its log")
	}
	if lag > s.cluster.MaxLag() {
		return newError(http.StatusServiceUnavailable, "not_ready", "this node is catching up with the cluster's stream")
	}
	return nil
}

// clusterStatus lists the nodes of the cluster with their applied
// positions and roots, as their heartbeats show them.
func (s *Server) clusterStatus(c *gin.Context) {
	if s.cluster == nil {
		s.abort(c, newError(http.StatusNotFound, "not_clustered", "this server is a single node, not part of a cluster"))
		return
	}
	nodes, err := s.cluster.Nodes(c)
	if err != nil {
		s.log.Warn("failed to list the cluster's nodes", "err", err)
		s.abort(c, errUnavailable)
		return
	}
	c.JSON(http.StatusOK, gin.H{"node": s.cluster.Name(), "nodes": nodes})
}
