package main

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paytrail/paytrail/api"
)

func TestApplyOIDC(t *testing.T) {
	getenv := func(k string) string {
		if k == "OIDC_SECRET" {
			return "s3cret"
		}
		return ""
	}
	good := `
oidc:
  issuer: https://login.example.com/realms/p
  client_id: paytrail-console
  client_secret_env: OIDC_SECRET
  redirect_url: https://pt.example.com/console/oidc/callback
  roles:
    - {group: auditors, role: auditor, merchants: ["*"]}
console:
  idle_timeout: 10m
`
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"good", good, ""},
		{"none", "addr: 127.0.0.1:1\n", ""},
		{"secret unset", strings.Replace(good, "OIDC_SECRET", "NOPE", 1), "NOPE, which is unset"},
		{"no roles", strings.Replace(good, "    - {group: auditors, role: auditor, merchants: [\"*\"]}\n", "", 1), "roles"},
		{"bad role", strings.Replace(good, "role: auditor", "role: boss", 1), "unknown role"},
		{"http issuer", strings.Replace(good, "https://login", "http://login", 1), "https"},
		{"bad redirect", strings.Replace(good, "/console/oidc/callback", "/cb", 1), "redirect_url"},
		{"bad timeout", strings.Replace(good, "10m", "forever", 1), "idle_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f fileConfig
			if err := yaml.Unmarshal([]byte(tc.yaml), &f); err != nil {
				t.Fatal(err)
			}
			var cfg api.Config
			err := f.applyOIDC(env{getenv: getenv}, &cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "good" && (cfg.OIDC == nil || cfg.Console.IdleTimeout != 10*time.Minute || !cfg.Console.SecureCookies ||
					cfg.OIDC.Config().ClientSecret != "s3cret") {
					t.Errorf("config not applied: %+v", cfg.Console)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want one naming %q", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the secret")
			}
		})
	}
}
