package main

import (
	"fmt"

	"github.com/paytrail/paytrail/api/witness"
)

// witnesses resolves the configured witnesses and quorum, refusing a bad
// name, URL, key or quorum before anything is opened.
func (s *settings) witnesses() ([]witness.Endpoint, int, error) {
	var out []witness.Endpoint
	for _, w := range s.file.Witnesses {
		ep := witness.Endpoint{Name: w.Name, URL: w.URL, Key: w.Key}
		if err := ep.Check(); err != nil {
			return nil, 0, fmt.Errorf("config: %w", err)
		}
		out = append(out, ep)
	}
	q := s.file.WitnessQuorum
	switch {
	case q < 0 || q > len(out):
		return nil, 0, fmt.Errorf("config: witness_quorum must be between 1 and the number of witnesses (%d)", len(out))
	case q == 0 && len(out) > 0:
		q = len(out)/2 + 1
	}
	return out, q, nil
}
