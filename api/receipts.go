package api

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/transparency-dev/formats/proof"

	"github.com/paytrail/paytrail/ledger"
)

// errNotYetCheckpointed answers a receipt for an entry no checkpoint (or
// no witnessed one) covers yet; it goes with Retry-After.
var errNotYetCheckpointed = newError(http.StatusConflict, "not_yet_checkpointed", "no checkpoint covers this entry yet; retry shortly")

// errNotWitnessed answers ?witnessed=1 when no checkpoint carries a
// quorum of witness cosignatures.
var errNotWitnessed = newError(http.StatusNotFound, "not_witnessed", "no checkpoint has been cosigned by a quorum of witnesses yet")

// receiptRetryAfter is the Retry-After of not_yet_checkpointed, in
// seconds: a checkpoint follows any append within one checkpoint interval
// (one second by default).
const receiptRetryAfter = "1"

// receiptTarget is the checkpoint a receipt proves inclusion in.
type receiptTarget struct {
	size       uint64
	checkpoint []byte // with its cosignatures
}

// target picks the checkpoint of a receipt request: the one of size
// tree_size if given (404 if none was issued), else the newest witnessed
// one with witnessed=1, else the newest one.
func (s *Server) target(c *gin.Context) (*receiptTarget, error) {
	witnessed, err := parseWitnessed(c)
	if err != nil {
		return nil, err
	}
	if v, ok := c.GetQuery("tree_size"); ok {
		if witnessed {
			return nil, badRequest("invalid_parameter", "give tree_size or witnessed=1, not both")
		}
		size, err := parseUint(v, "tree_size")
		if err != nil {
			return nil, err
		}
		cp, err := s.ledger.CosignedCheckpoint(size)
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, newError(http.StatusNotFound, "not_found", "no checkpoint of that tree size was issued")
		}
		if err != nil {
			return nil, err
		}
		return &receiptTarget{size, cp}, nil
	}
	if witnessed {
		size, ok := s.witnessedSize()
		if !ok {
			return nil, errNotWitnessed
		}
		cp, err := s.ledger.CosignedCheckpoint(size)
		if err != nil {
			return nil, err
		}
		return &receiptTarget{size, cp}, nil
	}
	cp, size, err := s.ledger.LatestCosignedCheckpoint()
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, errNotYetCheckpointed
	}
	if err != nil {
		return nil, err
	}
	return &receiptTarget{size, cp}, nil
}

// parseWitnessed reads the witnessed query parameter: 1 (or true), 0 (or
// false), or absent.
func parseWitnessed(c *gin.Context) (bool, error) {
	switch v, _ := c.GetQuery("witnessed"); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, badRequest("invalid_parameter", "witnessed must be 1 or 0")
}

// receipt builds the C2SP tlog-proof of entry e in the tree of t: the
// entry's stored bytes as extra data, its index, the inclusion path from
// stored hashes, and the checkpoint with its cosignatures.
func (s *Server) receipt(e *ledger.Entry, t *receiptTarget) ([]byte, error) {
	hashes, err := s.ledger.InclusionProof(e.Seq, t.size)
	if err != nil {
		return nil, err
	}
	p := proof.TLogProof{Index: e.Seq, Checkpoint: t.checkpoint, ExtraData: e.Bytes(),
		Hashes: make([][sha256.Size]byte, len(hashes))}
	for i, h := range hashes {
		if len(h) != sha256.Size {
			return nil, ledger.ErrTampered
		}
		p.Hashes[i] = [sha256.Size]byte(h)
	}
	return p.Marshal(), nil
}

// entryReceipt answers GET /v1/entries/:seq/receipt: the entry's tlog-proof
// receipt. Scope and access logging are those of GET /v1/entries/:seq (it
// is an entry read: the receipt carries the entry's bytes).
func (s *Server) entryReceipt(c *gin.Context) {
	e, a, ok := s.scopedEntry(c)
	if !ok {
		return
	}
	t, err := s.target(c)
	if err == nil && e.Seq >= t.size {
		if _, given := c.GetQuery("tree_size"); given {
			err = badRequest("invalid_range", "the entry is not in the tree of that size")
		} else {
			err = errNotYetCheckpointed
		}
	}
	if err != nil {
		if errors.Is(err, errNotYetCheckpointed) {
			c.Header("Retry-After", receiptRetryAfter)
		}
		s.deny(c, a, err)
		return
	}
	r, err := s.receipt(e, t)
	if err != nil {
		s.abort(c, err)
		return
	}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", r)
}

// transactionReceipts answers GET /v1/transactions/:id/receipts: a receipt
// for every payment entry of the transaction, all against the same
// checkpoint (a dispute bundle). It follows the transaction's merchant
// scope; if any entry is not checkpointed yet the whole answer is 409.
func (s *Server) transactionReceipts(c *gin.Context) {
	a := access{Action: "transaction.receipts", Resource: txResource(c.Param("id"))}
	if !s.ready(c) {
		return
	}
	st, ok := s.visibleTransaction(c, a)
	if !ok {
		return
	}
	a.Resource, a.Merchants = "transaction/"+st.TransactionID, []string{st.MerchantID}
	t, err := s.target(c)
	if err == nil && len(st.Seqs) > 0 && st.Seqs[len(st.Seqs)-1] >= t.size {
		if _, given := c.GetQuery("tree_size"); given {
			err = badRequest("invalid_range", "an entry of the transaction is not in the tree of that size")
		} else {
			err = errNotYetCheckpointed
		}
	}
	if err != nil {
		if errors.Is(err, errNotYetCheckpointed) {
			c.Header("Retry-After", receiptRetryAfter)
		}
		s.deny(c, a, err)
		return
	}
	type item struct {
		Seq     uint64 `json:"seq"`
		Receipt string `json:"receipt"`
	}
	items := make([]item, 0, len(st.Seqs))
	seqs := make([]string, 0, len(st.Seqs))
	for _, seq := range st.Seqs {
		e, err := s.ledger.Entry(seq)
		if err != nil {
			s.abort(c, err)
			return
		}
		r, err := s.receipt(e, t)
		if err != nil {
			s.abort(c, err)
			return
		}
		items = append(items, item{seq, string(r)})
		seqs = append(seqs, strconv.FormatUint(seq, 10))
	}
	a.Returned = " entries " + strings.Join(seqs, ",")
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"transaction_id": st.TransactionID, "tree_size": t.size, "receipts": items})
}
