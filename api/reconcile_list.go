package api

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/reconcile"
)

// runSummaryView is one past run in the list: what a clerk needs to pick
// it, without its exceptions.
type runSummaryView struct {
	ID              string           `json:"id"`
	Seq             uint64           `json:"seq"`
	Time            time.Time        `json:"time"`
	Format          string           `json:"format"`
	Rows            int              `json:"rows"`
	Counts          reconcile.Counts `json:"counts"`
	ExceptionsTotal int              `json:"exceptions_total"`
	Merchants       []string         `json:"merchants"`
	Operator        string           `json:"operator"`
}

// listReconciliations answers GET /v1/reconciliations: the runs the
// caller may see (the same rule as GET /v1/reconciliations/{id}), newest
// first, at most limit of them (default 50, at most 500). Reading the list
// is an access entry naming the runs returned.
func (s *Server) listReconciliations(c *gin.Context) {
	limit, err := parseLimit(c.Query("limit"))
	if err != nil {
		s.abort(c, err)
		return
	}
	if !s.ready(c) {
		return
	}
	var seqs []uint64
	if err := s.ledger.RunSeqs(func(_ string, seq uint64) error {
		seqs = append(seqs, seq)
		return nil
	}); err != nil {
		s.abort(c, err)
		return
	}
	slices.SortFunc(seqs, func(a, b uint64) int { return cmp.Compare(b, a) })
	p := principal(c)
	items := []runSummaryView{}
	var merchants []string
	for _, seq := range seqs {
		if len(items) >= limit {
			break
		}
		e, err := s.ledger.Entry(seq)
		if errors.Is(err, ledger.ErrNotFound) {
			continue // indexed but not yet durable
		}
		if err != nil {
			s.abort(c, err)
			return
		}
		if e.Kind != ledger.KindReconciliation {
			continue // subject requests share the index
		}
		var b reconcile.RunBody
		if err := e.DecodeBody(&b); err != nil {
			s.abort(c, err)
			return
		}
		if !b.VisibleTo(p.ID, p.AllMerchants(), p.InScope) {
			continue
		}
		items = append(items, runSummaryView{
			ID: e.ID, Seq: e.Seq, Time: e.Time, Format: b.Format, Rows: b.Rows, Counts: b.Counts,
			ExceptionsTotal: b.ExceptionsTotal, Merchants: b.Merchants, Operator: b.Operator.Name,
		})
		for _, m := range b.Merchants {
			if !slices.Contains(merchants, m) {
				merchants = append(merchants, m)
			}
		}
	}
	slices.Sort(merchants)
	a := access{Action: "reconciliation.list", Resource: "reconciliations", Returned: " returned " + strconv.Itoa(len(items)) + " runs", Merchants: merchants}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}
