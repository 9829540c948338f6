// Package auth holds paytrail's principals (people and services that read
// the ledger), their bearer tokens, roles and merchant scopes, and the
// authorization rules that decide what each role may do.
//
// Tokens are 256-bit random values shown once; only their SHA-256 is stored
// (a fast hash is enough for a uniformly random secret of that size).
// Authentication sits behind the [Authenticator] interface so that an OIDC or
// JWT bearer (claims mapped to role and scope) can be added without touching
// handlers.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/paytrail/paytrail/crypto"
)

// Role is a principal's part in processing.
type Role string

// The roles (docs/openapi.yaml, "Roles").
const (
	RoleAuditor Role = "auditor"
	RoleFinance Role = "finance"
	RolePrivacy Role = "privacy"
	RoleAdmin   Role = "admin"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAuditor, RoleFinance, RolePrivacy, RoleAdmin:
		return r, nil
	}
	return "", ErrUnknownRole
}

var (
	// ErrUnauthenticated: no, malformed, unknown or revoked credentials (401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrInvalid: a malformed principal definition. Every error that wraps
	// it is one of the fixed errors below, which never repeat the input:
	// the HTTP API shows their text to the caller.
	ErrInvalid = errors.New("invalid principal")

	ErrInvalidName      = fmt.Errorf("%w: the name must be 1 to 200 printable characters", ErrInvalid)
	ErrNameHasPAN       = fmt.Errorf("%w: the name must not contain a card number", ErrInvalid)
	ErrUnknownRole      = fmt.Errorf("%w: unknown role (want auditor, finance, privacy or admin)", ErrInvalid)
	ErrInvalidMerchant  = fmt.Errorf("%w: bad merchant id", ErrInvalid)
	ErrNoMerchants      = fmt.Errorf("%w: at least one merchant id or '*' is required", ErrInvalid)
	ErrMerchantWildcard = fmt.Errorf("%w: '*' cannot be combined with merchant ids", ErrInvalid)
)

// Principal is an authenticated caller.
type Principal struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Merchants []string   `json:"merchants"` // merchant ids, or ["*"]
	Created   time.Time  `json:"created"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	// TokenHash is the SHA-256 of the bearer token, hex.
	TokenHash string `json:"token_hash,omitempty"`
}

// AllMerchants reports whether the principal's scope is "*".
func (p *Principal) AllMerchants() bool { return slices.Contains(p.Merchants, "*") }

// InScope reports whether merchant is within the principal's scope.
func (p *Principal) InScope(merchant string) bool {
	return p.AllMerchants() || slices.Contains(p.Merchants, merchant)
}

// Covers reports whether every merchant in merchants is within the
// principal's scope: an admin may create, list and revoke only principals
// it covers. Only a "*" scope covers "*", and an empty list is covered by
// none (it is no valid scope).
func (p *Principal) Covers(merchants []string) bool {
	for _, m := range merchants {
		if !p.InScope(m) {
			return false
		}
	}
	return len(merchants) > 0
}

// ParseMerchants parses a --merchants flag or API list: "*" or
// comma-separated ids.
func ParseMerchants(list []string) ([]string, error) {
	var out []string
	for _, m := range list {
		for _, id := range strings.Split(m, ",") {
			id = strings.TrimSpace(id)
			if id == "" {
				continue
			}
			if id != "*" && !ValidID(id) {
				return nil, ErrInvalidMerchant
			}
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	if len(out) == 0 {
		return nil, ErrNoMerchants
	}
	if slices.Contains(out, "*") && len(out) > 1 {
		return nil, ErrMerchantWildcard
	}
	return out, nil
}

// ValidID reports whether s is usable as an id: 1–255 printable ASCII
// characters without spaces.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// tokenPrefix marks paytrail tokens so secret scanners can find them.
const tokenPrefix = "ptk_"

// NewToken returns a fresh bearer token and its hash.
func NewToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken returns the stored form of a token.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// NewID returns a fresh principal id. Like record ids, it holds no run of
// digits the card number redactor could take for a PAN, so that paths
// naming it (/v1/principals/{id}/revoke) are recorded intact in access
// entries.
func NewID() string {
	for {
		var b [8]byte
		rand.Read(b[:])
		if id := "prn_" + hex.EncodeToString(b[:]); !crypto.ContainsPAN(id) {
			return id
		}
	}
}

// Authenticator turns a request's credentials into a principal.
type Authenticator interface {
	// Authenticate returns ErrUnauthenticated (wrapped) for missing, bad,
	// unknown or revoked credentials.
	Authenticate(ctx context.Context, r *http.Request) (*Principal, error)
}

// PrincipalLookup finds a principal by token hash; found is false when no
// live principal has it.
type PrincipalLookup interface {
	PrincipalByTokenHash(ctx context.Context, hash string) (p *Principal, found bool, err error)
}

// Bearer authenticates `Authorization: Bearer <token>` against stored token
// hashes. Revocation takes effect on the next request: nothing is cached.
type Bearer struct {
	Lookup PrincipalLookup
}

// Authenticate implements Authenticator.
func (b Bearer) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(token, tokenPrefix) || len(token) > 128 {
		return nil, ErrUnauthenticated
	}
	p, found, err := b.Lookup.PrincipalByTokenHash(ctx, HashToken(token))
	if err != nil {
		return nil, fmt.Errorf("failed to look up token: %w", err)
	}
	if !found || p.Revoked != nil {
		return nil, ErrUnauthenticated
	}
	return p, nil
}
