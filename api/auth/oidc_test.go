package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/paytrail/paytrail/api/auth"
)

const testAud = "paytrail-api"

// idp is an oidctest provider whose keys can be swapped (rotation).
type idp struct {
	mu  sync.Mutex
	srv *oidctest.Server
	url string
}

func (p *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	s := p.srv
	p.mu.Unlock()
	s.ServeHTTP(w, r)
}

func (p *idp) setKeys(keys ...oidctest.PublicKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &oidctest.Server{PublicKeys: keys, Algorithms: []string{oidc.RS256, oidc.ES256}}
	s.SetIssuer(p.url)
	p.srv = s
}

func newIDP(t *testing.T, keys ...oidctest.PublicKey) (*idp, *httptest.Server) {
	p := &idp{}
	hs := httptest.NewServer(p)
	t.Cleanup(hs.Close)
	p.url = hs.URL
	p.setKeys(keys...)
	return p, hs
}

func newOIDC(t *testing.T, issuer string) *auth.OIDC {
	t.Helper()
	o, err := auth.NewOIDC(auth.OIDCConfig{
		Issuer: issuer, Audience: testAud, ClientID: "console",
		Roles: []auth.RoleMapping{
			{Group: "pt-auditors", Role: auth.RoleAuditor, Merchants: []string{"*"}},
			{Group: "pt-finance-a", Role: auth.RoleFinance, Merchants: []string{"m_a"}},
			{Group: "pt-finance-b", Role: auth.RoleFinance, Merchants: []string{"m_b"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func claims(iss string, over map[string]any) string {
	c := map[string]any{
		"iss": iss, "aud": testAud, "sub": "u-123", "email": "clerk@example.com",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"groups": []string{"pt-finance-a"},
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/transactions", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestOIDCAcceptsAndMaps(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, hs := newIDP(t, oidctest.PublicKey{PublicKey: key.Public(), KeyID: "k1", Algorithm: oidc.RS256})
	o := newOIDC(t, hs.URL)
	ctx := context.Background()

	p, err := o.Authenticate(ctx, bearer(oidctest.SignIDToken(key, "k1", oidc.RS256, claims(hs.URL, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "oidc:u-123" || p.Name != "clerk@example.com" || p.Role != auth.RoleFinance || strings.Join(p.Merchants, ",") != "m_a" {
		t.Errorf("principal = %+v", p)
	}
	// Two groups of one role: the union of their scopes. No email: the
	// preferred username names the person.
	p, err = o.Authenticate(ctx, bearer(oidctest.SignIDToken(key, "k1", oidc.RS256, claims(hs.URL, map[string]any{
		"groups": []string{"pt-finance-b", "pt-finance-a", "unrelated"}, "email": nil, "preferred_username": "clerk"}))))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "clerk" || strings.Join(p.Merchants, ",") != "m_a,m_b" {
		t.Errorf("principal = %+v", p)
	}
}

// TestOIDCRefusals checks every way a token must be refused.
func TestOIDCRefusals(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, hs := newIDP(t, oidctest.PublicKey{PublicKey: key.Public(), KeyID: "k1", Algorithm: oidc.RS256})
	o := newOIDC(t, hs.URL)
	iss := hs.URL
	sign := func(c string) string { return oidctest.SignIDToken(key, "k1", oidc.RS256, c) }
	now := time.Now()

	// alg none: a header and claims with an empty signature.
	b64 := base64.RawURLEncoding.EncodeToString
	none := b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + b64([]byte(claims(iss, nil))) + "."
	// Key confusion: HS256 with the issuer's public key (as served in
	// the JWKS) as the HMAC secret.
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	hsSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	hsJWS, _ := hsSigner.Sign([]byte(claims(iss, nil)))
	confused, _ := hsJWS.CompactSerialize()

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"bad signature", oidctest.SignIDToken(other, "k1", oidc.RS256, claims(iss, nil)), auth.ErrUnauthenticated},
		{"tampered claims", func() string {
			parts := strings.Split(sign(claims(iss, nil)), ".")
			parts[1] = b64([]byte(claims(iss, map[string]any{"groups": []string{"pt-auditors"}})))
			return strings.Join(parts, ".")
		}(), auth.ErrUnauthenticated},
		{"wrong issuer", sign(claims("https://evil.example", nil)), auth.ErrUnauthenticated},
		{"wrong audience", sign(claims(iss, map[string]any{"aud": "someone-else"})), auth.ErrUnauthenticated},
		{"expired", sign(claims(iss, map[string]any{"exp": now.Add(-time.Minute).Unix()})), auth.ErrUnauthenticated},
		{"no exp", sign(claims(iss, map[string]any{"exp": nil})), auth.ErrUnauthenticated},
		{"nbf in the future", sign(claims(iss, map[string]any{"nbf": now.Add(time.Hour).Unix()})), auth.ErrUnauthenticated},
		{"alg none", none, auth.ErrUnauthenticated},
		{"HS256 key confusion", confused, auth.ErrUnauthenticated},
		{"no role", sign(claims(iss, map[string]any{"groups": []string{"engineering"}})), auth.ErrNoRole},
		{"no groups claim", sign(claims(iss, map[string]any{"groups": nil})), auth.ErrNoRole},
		{"ambiguous role", sign(claims(iss, map[string]any{"groups": []string{"pt-auditors", "pt-finance-a"}})), auth.ErrAmbiguousRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := o.Authenticate(context.Background(), bearer(tc.token))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Authenticate = %+v, %v; want %v", p, err, tc.want)
			}
			var re *auth.RoleError
			if errors.As(err, &re) && re.Subject != "oidc:u-123" {
				t.Errorf("RoleError names %q, want oidc:u-123", re.Subject)
			}
		})
	}
}

// TestOIDCKeyRotation: a token signed by a key the cached JWKS does not
// hold makes the verifier fetch the JWKS again; a retired key stops
// working once the JWKS no longer lists it... as soon as it is refetched.
func TestOIDCKeyRotation(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p, hs := newIDP(t, oidctest.PublicKey{PublicKey: k1.Public(), KeyID: "k1", Algorithm: oidc.RS256})
	o := newOIDC(t, hs.URL)
	ctx := context.Background()
	if _, err := o.Authenticate(ctx, bearer(oidctest.SignIDToken(k1, "k1", oidc.RS256, claims(hs.URL, nil)))); err != nil {
		t.Fatal(err)
	}
	p.setKeys(oidctest.PublicKey{PublicKey: k2.Public(), KeyID: "k2", Algorithm: oidc.ES256})
	// go-oidc coalesces JWKS fetches: a verification that starts while the
	// previous fetch is still being released shares that fetch's (old)
	// keys, and the next one fetches anew.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := o.Authenticate(ctx, bearer(oidctest.SignIDToken(k2, "k2", oidc.ES256, claims(hs.URL, nil))))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of the new key: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The retired key stops verifying once the refetched set is cached
	// (go-oidc stores it just after answering the fetch's waiters).
	for {
		_, err := o.Authenticate(ctx, bearer(oidctest.SignIDToken(k1, "k1", oidc.RS256, claims(hs.URL, nil))))
		if errors.Is(err, auth.ErrUnauthenticated) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of the retired key after the refetch: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOIDCIssuerDown: with the issuer unreachable, JWTs are refused and
// paytrail tokens are not affected; nothing is fetched at construction.
func TestOIDCIssuerDown(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close() // nothing listens there now
	o := newOIDC(t, url)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, err := o.Authenticate(context.Background(), bearer(oidctest.SignIDToken(key, "k1", oidc.RS256, claims(url, nil))))
	if !errors.Is(err, auth.ErrIssuerUnavailable) || !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("JWT with the issuer down: %v", err)
	}
	tok, hash, _ := auth.NewToken()
	tokens := auth.Tokens{Bearer: auth.Bearer{Lookup: lookupFunc(func(h string) (*auth.Principal, bool) {
		return &auth.Principal{ID: "prn_1", Role: auth.RoleAuditor, Merchants: []string{"*"}}, h == hash
	})}, OIDC: o}
	if p, err := tokens.Authenticate(context.Background(), bearer(tok)); err != nil || p.ID != "prn_1" {
		t.Fatalf("paytrail token with the issuer down: %v, %v", p, err)
	}
}

type lookupFunc func(hash string) (*auth.Principal, bool)

func (f lookupFunc) PrincipalByTokenHash(_ context.Context, h string) (*auth.Principal, bool, error) {
	p, ok := f(h)
	return p, ok, nil
}

func TestNewOIDCRefusesBadConfig(t *testing.T) {
	for _, cfg := range []auth.OIDCConfig{
		{Issuer: "http://idp.example", ClientID: "c", Roles: []auth.RoleMapping{{Group: "g", Role: auth.RoleAuditor, Merchants: []string{"*"}}}},
		{Issuer: "https://idp.example", Roles: []auth.RoleMapping{{Group: "g", Role: auth.RoleAuditor, Merchants: []string{"*"}}}},
		{Issuer: "https://idp.example", ClientID: "c"},
		{Issuer: "https://idp.example", ClientID: "c", Roles: []auth.RoleMapping{{Group: "g", Role: "boss", Merchants: []string{"*"}}}},
		{Issuer: "https://idp.example", ClientID: "c", Roles: []auth.RoleMapping{{Group: "g", Role: auth.RoleAuditor}}},
	} {
		if _, err := auth.NewOIDC(cfg); err == nil {
			t.Errorf("NewOIDC(%+v) accepted", cfg)
		}
	}
}
