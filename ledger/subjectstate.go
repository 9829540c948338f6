package ledger

import (
	"encoding/binary"
	"time"
)

// State tables that carry a cardholder's requests, keyed by data key id (the
// DataKey of payment bodies): a restriction or correction of a subject
// applies to every data key recorded for it (SubjectKeys), and so to the
// subject's later transactions, which reuse those keys.
const (
	// TableRestricted: data key id -> reference of the restricting request.
	// Absent when not restricted.
	TableRestricted = "restricted"
	// TableCorrections: data key id -> sequence numbers (8 bytes each, in
	// order) of subject_request entries whose Sealed fields supersede the
	// personal fields sealed under that key.
	TableCorrections = "corrections"
)

// SubjectRequestBody is the body of a [KindSubjectRequest] entry. It never
// holds a clear PAN or email: subjects appear only as ciphertext under the
// subject's own key (so erasure unlinks them too), and the request is
// identified by its reference.
type SubjectRequestBody struct {
	ActorID   string `json:"actor_id"`
	ActorName string `json:"actor_name"`
	Kind      string `json:"kind"` // correct, restrict, unrestrict, erase
	Reference string `json:"reference"`
	// DataKeys are the subject's data key ids the request applies to.
	DataKeys []string `json:"data_keys"`
	// Transactions is how many transactions the subject had.
	Transactions int `json:"transactions"`
	// Sealed holds corrected personal fields, sealed under DataKeys[0] with
	// this entry's id as associated data.
	Sealed   map[string][]byte `json:"sealed,omitempty"`
	OriginIP string            `json:"origin_ip,omitempty"`
	// ErasedAt is set on erase requests.
	ErasedAt *time.Time `json:"erased_at,omitempty"`
}

// Restricted reports whether the subject owning data key id is restricted.
func (l *Ledger) Restricted(dataKey string) (bool, error) {
	_, ok, err := l.State(TableRestricted, dataKey)
	return ok, err
}

// Corrections returns the sequence numbers of the correction entries for
// data key id, oldest first.
func (l *Ledger) Corrections(dataKey string) ([]uint64, error) {
	v, ok, err := l.State(TableCorrections, dataKey)
	if err != nil || !ok {
		return nil, err
	}
	out := make([]uint64, 0, len(v)/8)
	for len(v) >= 8 {
		out = append(out, binary.BigEndian.Uint64(v))
		v = v[8:]
	}
	return out, nil
}
