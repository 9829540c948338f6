package api

import (
	"encoding/binary"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/gin-gonic/gin"
)

// BaselineHandler is what paytrail's ingest is measured against: a bare
// Gin server that stores each webhook body in db with a synced write and
// answers its sequence number, with no signature, parsing, encryption,
// tree or index. BenchmarkIngestVsBaseline serves it in process;
// `paytrail bench baseline` serves it as a separate process for
// .ci/bench-ingest. Open db with the ledger's memtable size
// (BaselineMemTableSize), so that the comparison is of the work done per
// event rather than of flush frequency.
func BaselineHandler(db *pebble.DB) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	var seq atomic.Uint64
	e.POST("/v1/webhooks/:source", func(c *gin.Context) {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20))
		if err != nil {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		n := seq.Add(1) - 1
		if err := db.Set(binary.BigEndian.AppendUint64([]byte{'e'}, n), body, pebble.Sync); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.JSON(http.StatusOK, gin.H{"seq": n, "duplicate": false})
	})
	return e
}

// BaselineMemTableSize is the ledger store's memtable size, for the
// baseline's store.
const BaselineMemTableSize = 32 << 20
