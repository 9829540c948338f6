package api

import (
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/witness"
)

// startWitnessing starts the witness submitter when witnesses are
// configured (Config.Witnesses): it runs in goroutines of its own and
// never delays an append (package witness).
func (s *Server) startWitnessing() error {
	if len(s.cfg.Witnesses) == 0 {
		return nil
	}
	q := s.cfg.WitnessQuorum
	if q == 0 {
		q = len(s.cfg.Witnesses)/2 + 1
	}
	sub, err := witness.NewSubmitter(witness.SubmitterConfig{
		Log: s.ledger, Witnesses: s.cfg.Witnesses, Quorum: q, Timing: s.cfg.WitnessTiming,
		Registry: s.cfg.Registry, Logger: s.log,
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	s.witnesses = sub
	sub.Start()
	return nil
}

// stopWitnessing stops the submitter, abandoning a request in flight.
func (s *Server) stopWitnessing() {
	if s.witnesses != nil {
		s.witnesses.Close()
	}
}

// witnessedSize is the size of the newest checkpoint a quorum of
// witnesses cosigned; none without witnesses.
func (s *Server) witnessedSize() (uint64, bool) {
	if s.witnesses == nil {
		return 0, false
	}
	return s.witnesses.Witnessed()
}

// addWitnessStatus adds witnessed_size and witnessed_lag to the readyz
// answer when witnesses are configured. Failing witnesses never make the
// server unready: the lag shows them.
func (s *Server) addWitnessStatus(body gin.H) {
	if s.witnesses == nil {
		return
	}
	size, _ := s.witnesses.Witnessed()
	body["witnessed_size"] = size
	body["witnessed_lag"] = s.witnesses.Lag()
}
