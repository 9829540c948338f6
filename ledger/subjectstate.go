package ledger

import (
	"encoding/binary"
	"time"
)

// State tables that carry a cardholder's requests.
const (
	// TableRestricted: RestrictionKey(subject, scope) -> reference of the
	// restricting request. A transaction is restricted when one of its
	// subjects ([Ledger.TransactionSubjects]) has a row for the
	// transaction's merchant or for "*", whichever data keys its events
	// use, so transactions and events that arrive later are covered too.
	TableRestricted = "restricted"
	// TableCorrections: transaction id -> sequence numbers (8 bytes each,
	// in order) of subject_request entries whose sealed fields for that
	// transaction supersede its personal fields.
	TableCorrections = "corrections"
	// TableTxSource: transaction id -> the webhook source that first
	// posted it ([ErrSourceConflict]).
	TableTxSource = "txsource"
)

// RestrictionKey is the [TableRestricted] key of subject's restriction for
// scope: a merchant id, or "*" for a restriction made by a privacy officer
// of every merchant.
func RestrictionKey(subject, scope string) string { return subject + " " + scope }

// SubjectRequestBody is the body of a [KindSubjectRequest] entry. It never
// holds a clear PAN, email or other identifier, nor a token or blind index
// of one: the request is identified by its reference, and what it acted on
// by transaction count.
type SubjectRequestBody struct {
	ActorID   string `json:"actor_id"`
	ActorName string `json:"actor_name"`
	Kind      string `json:"kind"` // correct, restrict, unrestrict, erase
	Reference string `json:"reference"`
	// Scope is the merchant scope the request acted in ("*" or ids).
	Scope []string `json:"scope,omitempty"`
	// Transactions is how many transactions the request acted on.
	Transactions int `json:"transactions"`
	// Corrections hold the corrected personal fields of each transaction,
	// sealed under the data key of its latest event with this entry's id
	// as associated data, so that erasing the transaction shreds them.
	Corrections []SealedCorrection `json:"corrections,omitempty"`
	OriginIP    string             `json:"origin_ip,omitempty"`
	// ErasedAt is set on erase requests.
	ErasedAt *time.Time `json:"erased_at,omitempty"`
}

// SealedCorrection is one transaction's corrected fields.
type SealedCorrection struct {
	TransactionID string            `json:"transaction_id"`
	DataKey       string            `json:"data_key"`
	Sealed        map[string][]byte `json:"sealed"`
}

// Restricted reports whether one of subjects is restricted for merchant.
func (l *Ledger) Restricted(subjects []string, merchant string) (bool, error) {
	for _, s := range subjects {
		for _, scope := range []string{merchant, "*"} {
			_, ok, err := l.State(TableRestricted, RestrictionKey(s, scope))
			if err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
}

// Corrections returns the sequence numbers of the correction entries for
// transaction tx, oldest first.
func (l *Ledger) Corrections(tx string) ([]uint64, error) {
	v, ok, err := l.State(TableCorrections, tx)
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
