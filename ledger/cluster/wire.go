package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/paytrail/paytrail/ledger"
)

// Sealer seals and opens the parts of a record that link it to a person
// (card tokens, blind indexes, restriction keys) under a data key, bound
// to the record and the part's name. The stream carries those parts only
// sealed; every node's applier opens them with the data key (from the
// key bucket) to derive its search rows, so that once an erasure has
// destroyed the key, no node, not even one rebuilt from the stream
// afterwards, can derive them again.
type Sealer interface {
	Seal(ctx context.Context, keyID, recordID, part string, plaintext []byte) ([]byte, error)
	// Open fails with an error wrapping ErrKeyGone when the key was
	// destroyed.
	Open(ctx context.Context, keyID, recordID, part string, ciphertext []byte) ([]byte, error)
	// SealNew seals under a fresh, durably stored data key, for a record
	// that has none of its own (a cardholder request), and returns the
	// key's id.
	SealNew(ctx context.Context, recordID, part string, plaintext []byte) (keyID string, ciphertext []byte, err error)
}

// errMalformed marks a stream record no node can apply: every node skips
// it alike (applying nothing at its position) rather than halt.
var errMalformed = errors.New("malformed stream record")

// ErrKeyGone is the error a [Sealer] wraps when a data key was destroyed.
var ErrKeyGone = errors.New("data key destroyed")

// wireVersion is the version of the JSON record encoding on the stream,
// which nodes still read (streams written before [wireBinary]) and tests
// use as the reference the binary encoding is pinned to. A node refuses
// records of a version it does not know rather than misapply them.
const wireVersion = 1

// The names of the sealed parts (bound into their associated data).
const (
	partSubjects = "cluster/subjects"
	// A binary record's subjects are sealed in the binary encoding (a
	// list of strings), under a part name of their own.
	partSubjectsBinary = "cluster/subjects/v2"
	partState          = "cluster/state"
)

// wireRecord is a [ledger.Record] as published on the stream, in the
// binary encoding (wirebin.go) or, from earlier builds, as this struct's
// JSON.
type wireRecord struct {
	V      int             `json:"v"`
	Kind   ledger.Kind     `json:"kind,omitempty"`
	ID     string          `json:"id,omitempty"`
	Time   time.Time       `json:"time,omitzero"`
	Policy int             `json:"policy,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
	// payment is the body of a payment record, decoded (the binary
	// encoding carries it so, the JSON one in Body).
	payment *ledger.PaymentBody
	Unique  *ledger.Unique `json:"unique,omitempty"`
	// Link is the record's SubjectLink with its subjects sealed.
	Link *wireLink `json:"link,omitempty"`
	// Erase is in clear: transaction ids link to no person.
	Erase *ledger.Erasure `json:"erase,omitempty"`
	// State rows in clear (principals, corrections index, ...), or sealed
	// when the record is a cardholder request (its restriction rows are
	// keyed by the cardholder's blind indexes).
	State       []ledger.StateRow `json:"state,omitempty"`
	SealedState *sealedPart       `json:"sealed_state,omitempty"`

	Entry      []byte `json:"entry,omitempty"`
	Cut        bool   `json:"cut,omitempty"`
	Checkpoint []byte `json:"checkpoint,omitempty"`
}

type wireLink struct {
	TransactionID string `json:"tx"`
	DataKey       string `json:"data_key,omitempty"`
	Subjects      []byte `json:"subjects,omitempty"` // sealed JSON array
}

type sealedPart struct {
	Key string `json:"key"`
	Box []byte `json:"box"`
}

// encodeRecord makes the stream form of rec, sealing what links it to a
// person. rec must already be complete: every random value decided.
func encodeRecord(ctx context.Context, s Sealer, rec ledger.Record) ([]byte, error) {
	w, err := sealRecord(ctx, s, rec, true)
	if err != nil {
		return nil, err
	}
	return w.appendBinary(make([]byte, 0, 1024)), nil
}

// encodeRecordJSON is encodeRecord in the JSON encoding of [wireVersion]:
// the plain reference the binary encoding is tested against.
func encodeRecordJSON(ctx context.Context, s Sealer, rec ledger.Record) ([]byte, error) {
	w, err := sealRecord(ctx, s, rec, false)
	if err != nil {
		return nil, err
	}
	if w.payment != nil {
		if w.Body, err = json.Marshal(w.payment); err != nil {
			return nil, fmt.Errorf("failed to encode record body: %w", err)
		}
	}
	w.V = wireVersion
	return json.Marshal(w)
}

// sealRecord makes the wire form of rec, sealing what links it to a
// person, the subjects in the binary encoding or in JSON.
func sealRecord(ctx context.Context, s Sealer, rec ledger.Record, binary bool) (*wireRecord, error) {
	w := &wireRecord{
		Kind: rec.Kind, ID: rec.ID, Time: rec.Time.UTC(), Policy: rec.Policy,
		Unique: rec.Unique, Erase: rec.Erase,
		Entry: rec.Entry, Cut: rec.Cut, Checkpoint: rec.Checkpoint,
	}
	switch b := rec.Body.(type) {
	case nil:
	case *ledger.PaymentBody:
		w.payment = b
	case ledger.PaymentBody:
		w.payment = &b
	default:
		enc, err := json.Marshal(rec.Body)
		if err != nil {
			return nil, fmt.Errorf("failed to encode record body: %w", err)
		}
		w.Body = enc
	}
	if w.payment != nil && rec.Kind != ledger.KindPayment {
		// Only payment bodies travel decoded; any other kind's travels as
		// the JSON it is encoded to anyway.
		enc, err := json.Marshal(w.payment)
		if err != nil {
			return nil, fmt.Errorf("failed to encode record body: %w", err)
		}
		w.Body, w.payment = enc, nil
	}
	if l := rec.Link; l != nil {
		w.Link = &wireLink{TransactionID: l.TransactionID, DataKey: l.DataKey}
		if len(l.Subjects) > 0 {
			if l.DataKey == "" {
				return nil, errors.New("cluster: a record's subjects need its data key to be sealed")
			}
			part, plain, err := encodeSubjects(l.Subjects, binary)
			if err != nil {
				return nil, err
			}
			if w.Link.Subjects, err = s.Seal(ctx, l.DataKey, sealedRecordID(rec), part, plain); err != nil {
				return nil, fmt.Errorf("failed to seal record subjects: %w", err)
			}
		}
	}
	if len(rec.State) > 0 {
		if rec.Kind != ledger.KindSubjectRequest && !linksPerson(rec.State) {
			w.State = rec.State
		} else {
			plain, err := json.Marshal(rec.State)
			if err != nil {
				return nil, err
			}
			keyID, box, err := s.SealNew(ctx, sealedRecordID(rec), partState, plain)
			if err != nil {
				return nil, fmt.Errorf("failed to seal state rows: %w", err)
			}
			w.SealedState = &sealedPart{Key: keyID, Box: box}
		}
	}
	return w, nil
}

// encodeSubjects returns the plaintext of a record's sealed subjects and
// the part name it is sealed under: a list of strings in the binary
// encoding, or a JSON array for a JSON record.
func encodeSubjects(list []string, binary bool) (part string, plain []byte, err error) {
	if binary {
		return subjectsPart(binary), appendStrs(nil, list), nil
	}
	plain, err = json.Marshal(list)
	return subjectsPart(binary), plain, err
}

func subjectsPart(binary bool) string {
	if binary {
		return partSubjectsBinary
	}
	return partSubjects
}

// decodeSubjects is encodeSubjects' inverse.
func decodeSubjects(plain []byte, binary bool) ([]string, error) {
	if !binary {
		var list []string
		err := json.Unmarshal(plain, &list)
		return list, err
	}
	r := &wireReader{b: plain}
	list := r.strs()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the subjects", len(r.b))
	}
	return list, r.err
}

// linksPerson reports whether state rows are keyed by a cardholder's
// identifiers (restrictions), which the stream must not carry in clear.
func linksPerson(rows []ledger.StateRow) bool {
	for _, r := range rows {
		if r.Table == ledger.TableRestricted {
			return true
		}
	}
	return false
}

// sealedRecordID is the record name sealed parts are bound to. A seeded
// entry's id is inside its bytes; a record with neither has none, and
// then carries nothing sealed.
func sealedRecordID(rec ledger.Record) string {
	if rec.ID != "" {
		return rec.ID
	}
	if rec.Entry != nil {
		var e struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(rec.Entry, &e) == nil && e.ID != "" {
			return e.ID
		}
	}
	return "record"
}

// decodeRecord is encodeRecord's inverse (of either encoding), opening
// the sealed parts. A part whose data key was destroyed (an erased
// cardholder's) is left out: the applier then derives no search row from
// it.
func decodeRecord(ctx context.Context, s Sealer, b []byte) (ledger.Record, error) {
	var w wireRecord
	switch {
	case len(b) > 0 && b[0] == wireBinary:
		if err := w.decodeBinary(b); err != nil {
			return ledger.Record{}, fmt.Errorf("%w: %w", errMalformed, err)
		}
	case len(b) > 0 && b[0] == '{':
		if err := w.decodeJSON(b); err != nil {
			return ledger.Record{}, err
		}
	case len(b) > 0:
		// A newer node's encoding: wait for an upgrade rather than skip
		// the record (which would part this node from the others).
		return ledger.Record{}, fmt.Errorf("stream record in an encoding this node does not know (first byte %#x): upgrade it", b[0])
	default:
		return ledger.Record{}, fmt.Errorf("%w: empty stream record", errMalformed)
	}
	rec := ledger.Record{
		Kind: w.Kind, ID: w.ID, Time: w.Time, Policy: w.Policy, Unique: w.Unique, Erase: w.Erase,
		State: w.State, Entry: w.Entry, Cut: w.Cut, Checkpoint: w.Checkpoint,
	}
	switch {
	case w.payment != nil:
		rec.Body = w.payment
	case len(w.Body) > 0:
		rec.Body = w.Body
	}
	if l := w.Link; l != nil {
		rec.Link = &ledger.SubjectLink{TransactionID: l.TransactionID, DataKey: l.DataKey}
		if len(l.Subjects) > 0 {
			binary := w.V == wireBinary
			plain, err := s.Open(ctx, l.DataKey, sealedRecordID(rec), subjectsPart(binary), l.Subjects)
			switch {
			case errors.Is(err, ErrKeyGone):
			case err != nil:
				return ledger.Record{}, fmt.Errorf("failed to open record subjects: %w", err)
			default:
				if rec.Link.Subjects, err = decodeSubjects(plain, binary); err != nil {
					return ledger.Record{}, fmt.Errorf("%w: record subjects: %w", errMalformed, err)
				}
			}
		}
	}
	if p := w.SealedState; p != nil {
		plain, err := s.Open(ctx, p.Key, sealedRecordID(rec), partState, p.Box)
		switch {
		case errors.Is(err, ErrKeyGone):
		case err != nil:
			return ledger.Record{}, fmt.Errorf("failed to open state rows: %w", err)
		default:
			if err := json.Unmarshal(plain, &rec.State); err != nil {
				return ledger.Record{}, fmt.Errorf("%w: state rows: %w", errMalformed, err)
			}
		}
	}
	return rec, nil
}

// decodeJSON parses the JSON encoding of [wireVersion].
func (w *wireRecord) decodeJSON(b []byte) error {
	if err := json.Unmarshal(b, w); err != nil {
		return fmt.Errorf("%w: %w", errMalformed, err)
	}
	if w.V != wireVersion {
		return fmt.Errorf("stream record of version %d: this node knows %d and %d only (upgrade it)", w.V, wireVersion, wireBinary)
	}
	return w.decodePaymentJSON()
}

// decodePaymentJSON decodes a payment record's body given as JSON.
func (w *wireRecord) decodePaymentJSON() error {
	if len(w.Body) > 0 && w.Kind == ledger.KindPayment {
		// The appender indexes and folds payment bodies.
		var p ledger.PaymentBody
		if err := json.Unmarshal(w.Body, &p); err != nil {
			return fmt.Errorf("%w: payment body: %w", errMalformed, err)
		}
		w.payment, w.Body = &p, nil
	}
	return nil
}
