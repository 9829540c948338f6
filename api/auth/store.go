package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// ErrNotFound is returned for an unknown principal id.
var ErrNotFound = errors.New("principal not found")

// Ledger is what the principal store needs from the ledger.
type Ledger interface {
	Append(ctx context.Context, rec ledger.Record) (ledger.Result, error)
	State(table, key string) ([]byte, bool, error)
	ScanState(table string, fn func(key string, v []byte) error) error
}

// Store keeps principals as mutable state rows in the ledger store; every
// change is written atomically with an admin entry that records it.
type Store struct {
	Ledger Ledger
	Policy int
	Now    func() time.Time
}

const (
	tablePrincipal = "principal"
	tableToken     = "token"
)

// Actor names who performs an admin action and from where.
type Actor struct {
	ID, Name, IP string
}

// CLIActor is the actor for offline commands run on the data dir.
var CLIActor = Actor{ID: "cli", Name: "local operator (paytrail CLI)"}

// Create adds a principal and returns it with its token, which is shown
// only here.
func (s *Store) Create(ctx context.Context, actor Actor, name string, role Role, merchants []string) (*Principal, string, error) {
	if err := checkName(name); err != nil {
		return nil, "", err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, "", err
	}
	merchants, err := ParseMerchants(merchants)
	if err != nil {
		return nil, "", err
	}
	token, hash, err := NewToken()
	if err != nil {
		return nil, "", err
	}
	p := &Principal{ID: NewID(), Name: name, Role: role, Merchants: merchants, Created: s.now(), TokenHash: hash}
	v, err := json.Marshal(p)
	if err != nil {
		return nil, "", err
	}
	rec := s.record(actor, "principal.create", p.ID, map[string]string{
		"name": name, "role": string(role), "merchants": strings.Join(merchants, ","),
		// The hash of a 256-bit random token reveals nothing usable, and
		// recording it lets an auditor tie the state row to this entry.
		"token_sha256": hash,
	})
	rec.State = []ledger.StateRow{
		{Table: tablePrincipal, Key: p.ID, Value: v},
		{Table: tableToken, Key: hash, Value: []byte(p.ID)},
	}
	if _, err := s.Ledger.Append(ctx, rec); err != nil {
		return nil, "", fmt.Errorf("failed to record principal: %w", err)
	}
	return p, token, nil
}

// checkName validates a principal's name. Names are kept in clear in
// admin and access entries, which outlive any erasure, so they must hold no
// card number however it is written, nor control characters that could
// forge lines in a log.
func checkName(name string) error {
	if name == "" || len(name) > 200 || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) }) {
		return ErrInvalidName
	}
	if crypto.ContainsPAN(name) {
		return ErrNameHasPAN
	}
	return nil
}

// Revoke revokes a principal; its token stops working on the next request.
func (s *Store) Revoke(ctx context.Context, actor Actor, id string) (*Principal, error) {
	p, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	if p.Revoked == nil {
		now := s.now()
		p.Revoked = &now
	}
	v, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	rec := s.record(actor, "principal.revoke", p.ID, nil)
	rec.State = []ledger.StateRow{
		{Table: tablePrincipal, Key: p.ID, Value: v},
		{Table: tableToken, Key: p.TokenHash, Value: nil},
	}
	if _, err := s.Ledger.Append(ctx, rec); err != nil {
		return nil, fmt.Errorf("failed to record revocation: %w", err)
	}
	return p, nil
}

// Get returns a principal by id.
func (s *Store) Get(id string) (*Principal, error) {
	v, ok, err := s.Ledger.State(tablePrincipal, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	var p Principal
	if err := json.Unmarshal(v, &p); err != nil {
		return nil, fmt.Errorf("failed to decode principal: %w", err)
	}
	return &p, nil
}

// List returns every principal, revoked ones included.
func (s *Store) List() ([]*Principal, error) {
	var out []*Principal
	err := s.Ledger.ScanState(tablePrincipal, func(_ string, v []byte) error {
		var p Principal
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("failed to decode principal: %w", err)
		}
		out = append(out, &p)
		return nil
	})
	return out, err
}

// PrincipalByTokenHash implements PrincipalLookup.
func (s *Store) PrincipalByTokenHash(ctx context.Context, hash string) (*Principal, bool, error) {
	id, ok, err := s.Ledger.State(tableToken, hash)
	if err != nil || !ok {
		return nil, false, err
	}
	p, err := s.Get(string(id))
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return p, true, nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Store) record(actor Actor, action, target string, details map[string]string) ledger.Record {
	return ledger.Record{
		Kind:   ledger.KindAdmin,
		ID:     ledger.NewRecordID(),
		Time:   s.now(),
		Policy: s.Policy,
		Body: ledger.AdminBody{
			ActorID: actor.ID, ActorName: actor.Name, Action: action, Target: target,
			Details: details, OriginIP: actor.IP,
		},
	}
}
