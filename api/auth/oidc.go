package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDC single sign-on (docs/console.md). People signed in by the company's
// identity provider call the API with `Authorization: Bearer <JWT>` issued
// by it, and sign in to the console by the authorization code flow. Their
// role and merchant scope come from the groups the token names, mapped by
// the configuration; they have no stored principal, so nothing about them
// is kept in paytrail but the access entries naming them.
//
// # Trust
//
// A JWT is accepted only if it is signed, with one of [OIDCAlgorithms], by
// a key of the issuer's JWKS (fetched from its discovery document over
// HTTPS and cached; a token naming an unknown key id refetches it, which
// is how key rotation is followed), and names the configured issuer, the
// audience, and a validity period (exp, nbf) that holds now. Symmetric
// algorithms are never accepted, so a token "signed" with HS256 under the
// issuer's public key (key confusion) fails like "alg": "none".
//
// # The issuer being down
//
// Nothing is fetched at start: the discovery document is fetched on the
// first JWT (or console sign-in) and kept once fetched. While the issuer
// cannot be reached, JWTs answer 401 and discovery is retried at most once
// per [OIDCRetry]; paytrail tokens never touch the issuer and keep working.
// Once the JWKS is cached, tokens signed by known keys verify without the
// issuer.

// OIDCAlgorithms are the signature algorithms accepted: asymmetric only.
var OIDCAlgorithms = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// OIDCRetry is the least time between two discovery attempts after one
// failed.
const OIDCRetry = 10 * time.Second

// OIDCActorPrefix starts the actor id of people signed in by OIDC: the
// access log names them "oidc:<sub>".
const OIDCActorPrefix = "oidc:"

var (
	// ErrNoRole: the token is valid but names no group that maps to a
	// role (403 no_role).
	ErrNoRole = errors.New("no group of the token maps to a role")
	// ErrAmbiguousRole: the token names groups that map to two or more
	// roles; a person has one role (403 ambiguous_role).
	ErrAmbiguousRole = errors.New("the token's groups map to more than one role")
	// ErrIssuerUnavailable: the issuer's discovery document could not be
	// fetched; wraps ErrUnauthenticated for the API.
	ErrIssuerUnavailable = fmt.Errorf("%w: the identity provider cannot be reached", ErrUnauthenticated)
)

// RoleError is a valid token refused for its groups: it wraps ErrNoRole or
// ErrAmbiguousRole and names who was refused, for the access entry.
type RoleError struct {
	Err     error
	Subject string // actor id, oidc:<sub>
	Name    string
}

func (e *RoleError) Error() string { return e.Err.Error() }
func (e *RoleError) Unwrap() error { return e.Err }

// RoleMapping gives the members of an identity provider group a role and
// merchant scope.
type RoleMapping struct {
	Group     string
	Role      Role
	Merchants []string // ids, or ["*"]
}

// OIDCConfig configures single sign-on.
type OIDCConfig struct {
	// Issuer is the identity provider's issuer URL, exactly as its tokens
	// name it (https, except for loopback test providers).
	Issuer string
	// Audience is the aud API tokens must carry. The default is ClientID.
	Audience string
	// ClientID and ClientSecret are the console's OAuth client; ID tokens
	// of console sign-in must carry ClientID as aud.
	ClientID, ClientSecret string
	// RedirectURL is the console's callback as the provider knows it:
	// https://HOST/console/oidc/callback.
	RedirectURL string
	// GroupsClaim names the claim listing the person's groups. The
	// default value is "groups".
	GroupsClaim string
	// Roles map groups to roles and scopes.
	Roles []RoleMapping
	// Scopes are requested at console sign-in. The default value is
	// openid, profile and email; providers that send groups only when
	// asked (Okta, Keycloak) want "groups" too.
	Scopes []string
	// HTTPClient fetches discovery and JWKS. The default is
	// http.DefaultClient with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock tokens are checked against. The default is time.Now.
	Now func() time.Time
}

// OIDC verifies the issuer's JWTs and maps them to principals. It is an
// Authenticator for JWT bearers; see [Tokens] for combining it with
// paytrail tokens.
type OIDC struct {
	cfg OIDCConfig

	mu        sync.Mutex
	provider  *oidc.Provider
	verifiers map[string]*oidc.IDTokenVerifier // by audience
	lastTry   time.Time
	lastErr   error
}

// NewOIDC checks cfg; it fetches nothing (see the package doc, "The issuer
// being down").
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || (!strings.HasPrefix(cfg.Issuer, "https://") && !strings.HasPrefix(cfg.Issuer, "http://127.0.0.1") && !strings.HasPrefix(cfg.Issuer, "http://localhost")) {
		return nil, errors.New("oidc: issuer must be an https:// URL")
	}
	if cfg.ClientID == "" && cfg.Audience == "" {
		return nil, errors.New("oidc: client_id or audience is required")
	}
	if cfg.Audience == "" {
		cfg.Audience = cfg.ClientID
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if len(cfg.Roles) == 0 {
		return nil, errors.New("oidc: roles must map at least one group to a role")
	}
	cfg.Roles = slices.Clone(cfg.Roles)
	for i, m := range cfg.Roles {
		if m.Group == "" {
			return nil, fmt.Errorf("oidc: roles[%d]: group is required", i)
		}
		if _, err := ParseRole(string(m.Role)); err != nil {
			return nil, fmt.Errorf("oidc: roles[%d]: %w", i, err)
		}
		ms, err := ParseMerchants(m.Merchants)
		if err != nil {
			return nil, fmt.Errorf("oidc: roles[%d]: %w", i, err)
		}
		cfg.Roles[i].Merchants = ms
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	return &OIDC{cfg: cfg}, nil
}

// Config returns the configuration in force (defaults applied).
func (o *OIDC) Config() OIDCConfig { return o.cfg }

// Provider returns the discovered provider, fetching its discovery
// document if it has not been fetched yet (at most once per OIDCRetry
// after a failure).
func (o *OIDC) Provider(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	if o.lastErr != nil && time.Since(o.lastTry) < OIDCRetry {
		return nil, o.lastErr
	}
	o.lastTry = time.Now()
	// The provider keeps this context for its later JWKS fetches: it
	// carries the HTTP client, never the request's cancellation.
	pctx := oidc.ClientContext(context.Background(), o.cfg.HTTPClient)
	dctx, cancel := context.WithTimeout(pctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
	if err != nil {
		o.lastErr = fmt.Errorf("%w: %v", ErrIssuerUnavailable, err)
		return nil, o.lastErr
	}
	// NewProvider keeps the client of dctx, not its deadline: its key
	// set fetches with a background context and that client.
	o.provider, o.lastErr = p, nil
	return p, nil
}

// verifier returns the verifier for tokens with audience aud, pinned to
// OIDCAlgorithms whatever the discovery document advertises. Verifiers
// share the provider's one key set, so the JWKS is fetched once and again
// only for a key id it does not hold (rotation), not per token.
func (o *OIDC) verifier(ctx context.Context, aud string) (*oidc.IDTokenVerifier, error) {
	p, err := o.Provider(ctx)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if v, ok := o.verifiers[aud]; ok {
		return v, nil
	}
	v := p.Verifier(&oidc.Config{ClientID: aud, SupportedSigningAlgs: OIDCAlgorithms, Now: o.cfg.Now})
	if o.verifiers == nil {
		o.verifiers = map[string]*oidc.IDTokenVerifier{}
	}
	o.verifiers[aud] = v
	return v, nil
}

// LooksLikeJWT reports whether a bearer credential has a JWT's shape
// (three base64url parts); paytrail tokens never do.
func LooksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && !strings.HasPrefix(s, tokenPrefix) && len(s) <= 16<<10
}

// Authenticate implements Authenticator for `Authorization: Bearer <JWT>`.
func (o *OIDC) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !LooksLikeJWT(token) {
		return nil, ErrUnauthenticated
	}
	return o.VerifyToken(ctx, token, o.cfg.Audience, "")
}

// VerifyToken verifies a raw JWT for audience aud (and, if nonce is not
// empty, its nonce claim) and maps it to a principal. Failures of the
// token itself wrap ErrUnauthenticated; a valid token whose groups map to
// no role or to two is a *RoleError.
func (o *OIDC) VerifyToken(ctx context.Context, raw, aud, nonce string) (*Principal, error) {
	p, _, err := o.verify(ctx, raw, aud, nonce)
	return p, err
}

// VerifyIDToken verifies a console sign-in's ID token (audience client_id,
// the nonce sent) and returns its principal and expiry.
func (o *OIDC) VerifyIDToken(ctx context.Context, raw, nonce string) (*Principal, time.Time, error) {
	if nonce == "" {
		return nil, time.Time{}, fmt.Errorf("%w: no nonce", ErrUnauthenticated)
	}
	return o.verify(ctx, raw, o.cfg.ClientID, nonce)
}

func (o *OIDC) verify(ctx context.Context, raw, aud, nonce string) (*Principal, time.Time, error) {
	p, tok, err := o.verifyToken(ctx, raw, aud, nonce)
	if err != nil {
		return nil, time.Time{}, err
	}
	return p, tok.Expiry, nil
}

func (o *OIDC) verifyToken(ctx context.Context, raw, aud, nonce string) (*Principal, *oidc.IDToken, error) {
	v, err := o.verifier(ctx, aud)
	if err != nil {
		return nil, nil, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		// go-oidc's message names the check that failed (signature,
		// issuer, audience, expiry); it holds no secret, but the token's
		// claims may name a person, so it is not shown to callers.
		return nil, nil, fmt.Errorf("%w: %s", ErrUnauthenticated, verifyReason(err))
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return nil, nil, fmt.Errorf("%w: nonce mismatch", ErrUnauthenticated)
	}
	if tok.Subject == "" {
		return nil, nil, fmt.Errorf("%w: token has no sub", ErrUnauthenticated)
	}
	p, err := o.principalOf(tok)
	return p, tok, err
}

// verifyReason names the check a token failed, in fixed words.
func verifyReason(err error) string {
	var exp *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return "token expired"
	case strings.Contains(msg, "nbf"):
		return "token not yet valid"
	case strings.Contains(msg, "different provider"):
		return "wrong issuer"
	case strings.Contains(msg, "audience"):
		return "wrong audience"
	case strings.Contains(msg, "malformed"):
		return "malformed token or algorithm not allowed"
	case strings.Contains(msg, "signature"), strings.Contains(msg, "fetching keys"):
		return "bad signature"
	}
	return "invalid token"
}

// principalOf maps a verified token's groups to one role and the union of
// the merchant scopes of the groups mapping to it.
func (o *OIDC) principalOf(tok *oidc.IDToken) (*Principal, error) {
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: claims do not decode", ErrUnauthenticated)
	}
	name := claimString(claims, "email")
	if name == "" {
		name = claimString(claims, "preferred_username")
	}
	if name == "" {
		name = tok.Subject
	}
	name = cleanName(name)
	id := OIDCActorPrefix + cleanName(tok.Subject)
	groups := claimStrings(claims, o.cfg.GroupsClaim)
	var role Role
	var merchants []string
	for _, m := range o.cfg.Roles {
		if !slices.Contains(groups, m.Group) {
			continue
		}
		if role != "" && role != m.Role {
			return nil, &RoleError{Err: ErrAmbiguousRole, Subject: id, Name: name}
		}
		role = m.Role
		merchants = append(merchants, m.Merchants...)
	}
	if role == "" {
		return nil, &RoleError{Err: ErrNoRole, Subject: id, Name: name}
	}
	if slices.Contains(merchants, "*") {
		merchants = []string{"*"}
	} else {
		slices.Sort(merchants)
		merchants = slices.Compact(merchants)
	}
	return &Principal{ID: id, Name: name, Role: role, Merchants: merchants, Created: tok.IssuedAt}, nil
}

// cleanName keeps a claim fit for access entries: printable, at most 200
// bytes, with no card number (names are kept in clear forever).
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	if checkName(s) == ErrNameHasPAN {
		return "(name withheld: looks like a card number)"
	}
	return s
}

func claimString(claims map[string]any, k string) string {
	s, _ := claims[k].(string)
	return s
}

// claimStrings reads a claim that is a list of strings or one string.
func claimStrings(claims map[string]any, k string) []string {
	switch v := claims[k].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// OAuth2 returns the console's authorization code flow configuration.
func (o *OIDC) OAuth2(ctx context.Context) (*oauth2.Config, error) {
	p, err := o.Provider(ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{
		ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: o.cfg.Scopes,
	}, nil
}

// HTTPContext returns ctx carrying the HTTP client for token exchange.
func (o *OIDC) HTTPContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, o.cfg.HTTPClient)
}

// Tokens authenticates paytrail tokens with Bearer and, when OIDC is set,
// JWTs with it. The two never meet: a paytrail token is looked up without
// contacting the issuer, so the issuer being down stops only JWTs.
type Tokens struct {
	Bearer Bearer
	OIDC   *OIDC // nil: no single sign-on
}

// Authenticate implements Authenticator.
func (t Tokens) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	if t.OIDC != nil {
		if _, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && LooksLikeJWT(token) {
			return t.OIDC.Authenticate(ctx, r)
		}
	}
	return t.Bearer.Authenticate(ctx, r)
}
