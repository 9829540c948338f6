package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/paytrail/paytrail/api"
	"github.com/paytrail/paytrail/api/auth"
)

// oidcConfig is the config file's oidc block (docs/console.md): single
// sign-on for the API and the console. The client secret is never in the
// file, only the name of the environment variable holding it.
type oidcConfig struct {
	Issuer          string            `yaml:"issuer"`
	Audience        string            `yaml:"audience"`
	ClientID        string            `yaml:"client_id"`
	ClientSecretEnv string            `yaml:"client_secret_env"`
	RedirectURL     string            `yaml:"redirect_url"`
	GroupsClaim     string            `yaml:"groups_claim"`
	Scopes          []string          `yaml:"scopes"`
	Roles           []oidcRoleMapping `yaml:"roles"`
}

type oidcRoleMapping struct {
	Group     string   `yaml:"group"`
	Role      string   `yaml:"role"`
	Merchants []string `yaml:"merchants"`
}

// consoleConfig is the config file's console block.
type consoleConfig struct {
	IdleTimeout   string `yaml:"idle_timeout"`
	MaxAge        string `yaml:"max_age"`
	SecureCookies bool   `yaml:"secure_cookies"`
}

// applyOIDC sets single sign-on and the console's session limits in cfg.
// It contacts nothing: the issuer is discovered on first use, so an
// issuer that is down at start delays only SSO users (auth.OIDC).
func (f *fileConfig) applyOIDC(e env, cfg *api.Config) error {
	for _, d := range []struct {
		key, v string
		to     *time.Duration
	}{
		{"idle_timeout", f.Console.IdleTimeout, &cfg.Console.IdleTimeout},
		{"max_age", f.Console.MaxAge, &cfg.Console.MaxAge},
	} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 || v > 7*24*time.Hour {
			return fmt.Errorf("config: console.%s must be a duration above 0 and at most 168h, like 30m", d.key)
		}
		*d.to = v
	}
	cfg.Console.SecureCookies = f.Console.SecureCookies
	o := f.OIDC
	if o == nil {
		return nil
	}
	oc := auth.OIDCConfig{
		Issuer: o.Issuer, Audience: o.Audience, ClientID: o.ClientID, RedirectURL: o.RedirectURL,
		GroupsClaim: o.GroupsClaim, Scopes: o.Scopes,
	}
	if o.ClientSecretEnv != "" {
		oc.ClientSecret = strings.TrimSpace(e.getenv(o.ClientSecretEnv))
		if oc.ClientSecret == "" {
			return hinted{fmt.Errorf("config: oidc.client_secret_env names %s, which is unset or empty", o.ClientSecretEnv),
				[]string{"set it to the console's OAuth client secret, or remove client_secret_env for a public client"}}
		}
	}
	if o.ClientID != "" && !strings.HasSuffix(o.RedirectURL, "/console/oidc/callback") {
		return hinted{fmt.Errorf("config: oidc.redirect_url must be this server's https://HOST/console/oidc/callback"),
			[]string{"register the same URL as a redirect URI of the client at the identity provider"}}
	}
	for _, m := range o.Roles {
		oc.Roles = append(oc.Roles, auth.RoleMapping{Group: m.Group, Role: auth.Role(m.Role), Merchants: m.Merchants})
	}
	v, err := auth.NewOIDC(oc)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cfg.OIDC = v
	if strings.HasPrefix(o.RedirectURL, "https://") {
		cfg.Console.SecureCookies = true
	}
	return nil
}
