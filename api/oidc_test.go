package api

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"

	"github.com/paytrail/paytrail/api/auth"
)

// TestAPIAcceptsOIDCJWTs: a JWT of the configured issuer reads the API
// with the role and scope of its groups, and the access entries name the
// person oidc:<sub>; groups mapping to no role or two roles answer 403
// no_role and ambiguous_role, recorded; paytrail tokens keep working.
func TestAPIAcceptsOIDCJWTs(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	idp := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "k1", Algorithm: oidc.RS256}}}
	is := httptest.NewServer(idp)
	defer is.Close()
	idp.SetIssuer(is.URL)
	o, err := auth.NewOIDC(auth.OIDCConfig{Issuer: is.URL, Audience: "paytrail-api", ClientID: "console", Roles: []auth.RoleMapping{
		{Group: "fin-books", Role: auth.RoleFinance, Merchants: []string{"m_bookshop"}},
		{Group: "auditors", Role: auth.RoleAuditor, Merchants: []string{"*"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := newConfiguredHarness(t, func(c *Config) { c.OIDC = o })
	seedConsole(t, h)
	jwt := func(sub string, groups ...string) string {
		c, _ := json.Marshal(map[string]any{"iss": is.URL, "aud": "paytrail-api", "sub": sub, "email": sub + "@example.com",
			"exp": time.Now().Add(time.Hour).Unix(), "groups": groups})
		return oidctest.SignIDToken(key, "k1", oidc.RS256, string(c))
	}

	r := h.do(jwt("ada", "fin-books"), "GET", "/v1/transactions", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("JWT read: %d %s", r.Status, r.Body)
	}
	for _, it := range r.json(t)["items"].([]any) {
		if m := it.(map[string]any)["merchant_id"]; m != "m_bookshop" {
			t.Errorf("JWT of m_bookshop finance sees %v", m)
		}
	}
	if r := h.do(jwt("ada", "fin-books"), "GET", "/v1/transactions/pay_b1", nil); r.Status != http.StatusNotFound {
		t.Errorf("out of scope: %d", r.Status)
	}
	if r := h.do(jwt("eve", "engineering"), "GET", "/v1/transactions", nil); r.Status != http.StatusForbidden || r.errorCode(t) != "no_role" {
		t.Errorf("no role: %d %s", r.Status, r.Body)
	}
	if r := h.do(jwt("mal", "fin-books", "auditors"), "GET", "/v1/transactions", nil); r.Status != http.StatusForbidden || r.errorCode(t) != "ambiguous_role" {
		t.Errorf("ambiguous: %d %s", r.Status, r.Body)
	}
	if r := h.do(jwt("ada", "fin-books")+"x", "GET", "/v1/transactions", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("bad signature: %d", r.Status)
	}

	is.Close() // the issuer goes down: the cached JWKS still verifies, tokens still work
	if r := h.do(jwt("ada", "fin-books"), "GET", "/v1/transactions", nil); r.Status != http.StatusOK {
		t.Errorf("JWT with the issuer down and keys cached: %d", r.Status)
	}
	if r := h.do("auditor", "GET", "/v1/access-log", nil); r.Status != http.StatusOK {
		t.Fatalf("paytrail token: %d", r.Status)
	}
	seen := map[string]bool{}
	for _, it := range h.do("auditor", "GET", "/v1/access-log", nil).json(t)["items"].([]any) {
		e := it.(map[string]any)
		seen[fmt.Sprint(e["actor_id"], " ", e["actor_name"], " ", e["action"], " ", e["status"])] = true
	}
	for _, want := range []string{
		"oidc:ada ada@example.com transactions.list 200",
		"oidc:ada ada@example.com transaction.read 404",
		"oidc:eve eve@example.com transactions.list 403",
		"oidc:mal mal@example.com transactions.list 403",
		"anonymous unauthenticated caller transactions.list 401",
	} {
		if !seen[want] {
			t.Errorf("no access entry %q in %v", want, seen)
		}
	}
}
