package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/ledger"
)

// publicKey serves the primary checkpoint verifier key, in signed-note
// verifier-key format, to anyone.
func (s *Server) publicKey(c *gin.Context) {
	c.String(http.StatusOK, "%s\n", s.verifierKeys()[0])
}

// publicKeys serves every checkpoint verifier key, primary first, so
// checkpoints signed before a key rotation stay verifiable.
func (s *Server) publicKeys(c *gin.Context) {
	c.String(http.StatusOK, "%s\n", strings.Join(s.verifierKeys(), "\n"))
}

// handovers lists the sizes of the handover checkpoints (signed by a
// signer key and the key that replaced it), oldest first: a verifier
// pinned to an old key fetches one and pins the new key.
func (s *Server) handovers(c *gin.Context) {
	sizes, err := s.ledger.Handovers()
	if err != nil {
		s.abort(c, err)
		return
	}
	if sizes == nil {
		sizes = []uint64{}
	}
	c.JSON(http.StatusOK, gin.H{"sizes": sizes})
}

// verifierKeys returns the checkpoint verifier keys in force, primary
// first: after an online signer rotation, the new key's.
func (s *Server) verifierKeys() []string {
	vkeys, err := s.keys.NoteVerifierKeys(s.ledger.Origin())
	if err != nil {
		// Checked at New for the same origin and keys.
		return s.verifiers
	}
	return vkeys
}

// checkpoint serves the newest checkpoint with its witness cosignatures,
// or with witnessed=1 the newest one a quorum of witnesses cosigned.
func (s *Server) checkpoint(c *gin.Context) {
	witnessed, err := parseWitnessed(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	var cp []byte
	if witnessed {
		size, ok := s.witnessedSize()
		if !ok {
			s.abort(c, errNotWitnessed)
			return
		}
		cp, err = s.ledger.CosignedCheckpoint(size)
	} else {
		cp, _, err = s.ledger.LatestCosignedCheckpoint()
	}
	if err != nil {
		s.abort(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", cp)
}

func (s *Server) checkpointAt(c *gin.Context) {
	size, err := parseUint(c.Param("size"), "size")
	if err != nil {
		s.abort(c, err)
		return
	}
	cp, err := s.ledger.CosignedCheckpoint(size)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", cp)
}

func parseUint(v, name string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("invalid_parameter", name+" must be a non-negative integer")
	}
	return n, nil
}

func (s *Server) inclusionProof(c *gin.Context) {
	seq, err := parseUint(c.Query("seq"), "seq")
	if err != nil {
		s.abort(c, err)
		return
	}
	size, err := parseUint(c.Query("tree_size"), "tree_size")
	if err != nil {
		s.abort(c, err)
		return
	}
	hashes, err := s.ledger.InclusionProof(seq, size)
	if err != nil {
		s.abort(c, err)
		return
	}
	leaf, err := s.ledger.LeafHash(seq)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"leaf_index": seq, "tree_size": size, "leaf_hash": leaf, "hashes": nonNil(hashes)})
}

func (s *Server) consistencyProof(c *gin.Context) {
	from, err := parseUint(c.Query("from"), "from")
	if err != nil {
		s.abort(c, err)
		return
	}
	to, err := parseUint(c.Query("to"), "to")
	if err != nil {
		s.abort(c, err)
		return
	}
	hashes, err := s.ledger.ConsistencyProof(from, to)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "hashes": nonNil(hashes)})
}

func nonNil(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}

// entry serves the exact stored bytes of an entry and their decoded form.
func (s *Server) entry(c *gin.Context) {
	e, a, ok := s.scopedEntry(c)
	if !ok {
		return
	}
	if _, err := s.recordAccess(c, a, http.StatusOK); err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"seq":       e.Seq,
		"leaf_hash": e.LeafHash(),
		"entry":     e.Bytes(),
		"decoded":   json.RawMessage(e.Bytes()),
	})
}

// scopedEntry reads the entry named by the seq parameter for an entry
// read (GET /v1/entries/:seq and its receipt). It follows merchant scope:
// payment entries of other merchants answer 404, and access, admin and
// other non-payment entries need scope "*"; those denials are recorded.
// It returns the access to record once the answer is ready; ok is false
// once an answer was sent.
func (s *Server) scopedEntry(c *gin.Context) (*ledger.Entry, access, bool) {
	seq, err := parseUint(c.Param("seq"), "seq")
	if err != nil {
		s.abort(c, err)
		return nil, access{}, false
	}
	// Name only sequence numbers that exist: an out-of-range number could
	// be anything, a card number included.
	a := access{Action: "entry.read", Resource: "entry/(out of range)"}
	if seq < s.ledger.Size() {
		a.Resource = "entry/" + strconv.FormatUint(seq, 10)
	}
	e, err := s.ledger.Entry(seq)
	if err != nil {
		if err == ledger.ErrNotFound {
			s.deny(c, a, errNotFound)
			return nil, a, false
		}
		s.abort(c, err)
		return nil, a, false
	}
	p := principal(c)
	merchant := ""
	if e.Kind == ledger.KindPayment {
		var pb ledger.PaymentBody
		if err := e.DecodeBody(&pb); err != nil {
			s.abort(c, err)
			return nil, a, false
		}
		merchant = pb.MerchantID
	}
	if (merchant == "" && !p.AllMerchants()) || (merchant != "" && !p.InScope(merchant)) {
		s.deny(c, a, errNotFound)
		return nil, a, false
	}
	if merchant != "" {
		a.Merchants = []string{merchant}
	}
	return e, a, true
}
