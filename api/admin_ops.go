package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/backup"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// backup streams an online backup of the data dir as a tar file (see
// package backup): the snapshots are taken, the admin entry naming what
// they hold is durably recorded, and only then is the first byte sent.
// Ingestion goes on meanwhile.
func (s *Server) backup(c *gin.Context) {
	ks, local := s.keyStore.(*keystore.Store)
	if s.cluster != nil || !local {
		s.abort(c, errClusterKeys)
		return
	}
	if s.cfg.DataDir == "" {
		s.abort(c, newError(http.StatusServiceUnavailable, "backup_unavailable", "this server was started without a data dir to back up"))
		return
	}
	snap, err := backup.Take(c, backup.Source{
		Dir: s.cfg.DataDir, Ledger: s.ledger, KeyStore: ks, Keys: s.keys, Hold: &s.snapshotMu,
		MaxRate: max(s.cfg.BackupMaxRate, 0),
	})
	if err != nil {
		s.log.Error("failed to take a backup", "err", err)
		s.abort(c, errUnavailable)
		return
	}
	defer snap.Close()
	m := snap.Manifest()
	size := snap.TarSize()
	if err := s.recordAdmin(c, "backup.create", m.LedgerID, map[string]string{
		"size": strconv.FormatUint(m.Size, 10), "root": m.Root, "checkpoint_size": strconv.FormatUint(m.CheckpointSize, 10),
		"files": strconv.Itoa(len(m.Files)), "bytes": strconv.FormatInt(size, 10),
	}); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Content-Type", "application/x-tar")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="paytrail-%s-%d.tar"`, m.LedgerID, m.Size))
	c.Header("Content-Length", strconv.FormatInt(size, 10))
	c.Status(http.StatusOK)
	if _, err := snap.WriteTo(c.Writer); err != nil {
		// Headers are sent: the client sees a short body, and its
		// check of the manifest's hashes refuses the file.
		s.log.Warn("backup stream ended early", "err", err)
	}
}

// errClusterKeys answers the key operations a cluster node cannot do on
// its own: its wrapped data keys and keysets live in the cluster's buckets,
// shared with every node.
var errClusterKeys = newError(http.StatusConflict, "cluster_keys",
	"this server is a node of a cluster, whose keysets and data keys live in the cluster's buckets: online backup and key rotation work on a single node only")

// recordAdmin durably appends an admin entry for the caller's action.
func (s *Server) recordAdmin(c *gin.Context, action, target string, details map[string]string) error {
	a := actorOf(c)
	_, err := s.appender.Append(c, ledger.Record{
		Kind: ledger.KindAdmin, ID: ledger.NewRecordID(), Time: s.now(), Policy: PolicyVersion,
		Body: ledger.AdminBody{ActorID: a.ID, ActorName: a.Name, Action: action, Target: target, Details: details, OriginIP: a.IP},
	})
	if err != nil {
		s.log.Error("failed to record an admin action; refusing it", "action", action, "err", err)
		return errUnavailable
	}
	return nil
}
