package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paytrail/paytrail/api"
	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// fileConfig is the YAML config file. Secrets are never in it, only
// referenced by environment variable or file.
type fileConfig struct {
	Data           string         `yaml:"data"`
	Addr           string         `yaml:"addr"`
	MasterKey      string         `yaml:"master_key"`
	DevSource      *bool          `yaml:"dev_source"`
	TrustedProxies []string       `yaml:"trusted_proxies"`
	Sources        []sourceConfig `yaml:"sources"`
	TLS            tlsConfig      `yaml:"tls"`
	// MaxBody and MaxUpload cap webhook bodies and settlement uploads:
	// bytes, or a number with KiB, MiB or GiB.
	MaxBody   string `yaml:"max_body"`
	MaxUpload string `yaml:"max_upload"`
	// BackupMaxRate caps an online backup's hashing and streaming, bytes
	// per second (a size like 64MiB, or "unlimited"); the default is 64MiB.
	BackupMaxRate string `yaml:"backup_max_rate"`
	// Limits bound what unauthenticated clients can cost (docs/operations.md,
	// "Limits for unauthenticated clients"); unset keys keep the defaults.
	Limits limitsConfig `yaml:"limits"`
	// OIDC and Console configure single sign-on and the web console
	// (oidc.go; docs/console.md).
	OIDC    *oidcConfig   `yaml:"oidc"`
	Console consoleConfig `yaml:"console"`
	// Cluster, if set, makes serve a node of a cluster (docs/cluster.md).
	Cluster *clusterConfig `yaml:"cluster"`
	// Witnesses cosign every new checkpoint (docs/operations.md,
	// "Witnesses"); WitnessQuorum of them make it "witnessed".
	Witnesses     []witnessConfig `yaml:"witnesses"`
	WitnessQuorum int             `yaml:"witness_quorum"`
}

// witnessConfig is one C2SP tlog-witness: a name for metrics, its
// submission URL and its cosignature verifier key.
type witnessConfig struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	Key  string `yaml:"key"`
}

type limitsConfig struct {
	HeaderReadTimeout       string `yaml:"header_read_timeout"`
	BodyReadTimeout         string `yaml:"body_read_timeout"`
	UploadReadTimeout       string `yaml:"upload_read_timeout"`
	MaxWebhookBuffer        string `yaml:"max_webhook_buffer"`
	MaxUnauthenticatedConns int    `yaml:"max_unauthenticated_conns"`
	DenialWindow            string `yaml:"denial_window"`
	DenialBurst             int    `yaml:"denial_burst"`
	MaxDenialOrigins        int    `yaml:"max_denial_origins"`
}

// apply sets the configured limits in cfg, refusing nonsense values.
func (l limitsConfig) apply(cfg *api.Config) error {
	for _, d := range []struct {
		key, v string
		to     *time.Duration
	}{
		{"header_read_timeout", l.HeaderReadTimeout, &cfg.HeaderReadTimeout},
		{"body_read_timeout", l.BodyReadTimeout, &cfg.BodyReadTimeout},
		{"upload_read_timeout", l.UploadReadTimeout, &cfg.UploadReadTimeout},
		{"denial_window", l.DenialWindow, &cfg.DenialWindow},
	} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 || v > 24*time.Hour {
			return fmt.Errorf("config: limits.%s must be a duration above 0 and at most 24h, like 10s", d.key)
		}
		*d.to = v
	}
	buf, err := parseSize("limits.max_webhook_buffer", l.MaxWebhookBuffer)
	if err != nil {
		return err
	}
	cfg.MaxWebhookBuffer = buf
	for _, n := range []struct {
		key string
		v   int
		to  *int
	}{
		{"max_unauthenticated_conns", l.MaxUnauthenticatedConns, &cfg.MaxUnauthenticatedConns},
		{"denial_burst", l.DenialBurst, &cfg.DenialBurst},
		{"max_denial_origins", l.MaxDenialOrigins, &cfg.MaxDenialOrigins},
	} {
		if n.v < 0 {
			return fmt.Errorf("config: limits.%s must be above 0", n.key)
		}
		*n.to = n.v
	}
	return nil
}

// tlsConfig names the server's certificate and key files (PEM) and, for
// mutual TLS, the CA that signs client certificates. With cert_file and
// key_file set, serve speaks HTTPS only.
type tlsConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

type sourceConfig struct {
	Name            string `yaml:"name"`
	Scheme          string `yaml:"scheme"`
	SecretsEnv      string `yaml:"secrets_env"`
	SecretsFile     string `yaml:"secrets_file"`
	Tolerance       string `yaml:"tolerance"`
	DefaultMerchant string `yaml:"default_merchant"`
	// Merchants the source may post for; "*" for any. The default is
	// default_merchant alone, or any merchant when there is none.
	Merchants []string `yaml:"merchants"`
}

// settings are the resolved options of a command that opens a data dir.
type settings struct {
	configPath string
	file       fileConfig
	data       string
	addr       string
	masterKey  string
	vaultToken string
}

const (
	defaultData = "./paytrail-data"
	defaultAddr = "127.0.0.1:8080"
)

// dataFlags registers the flags every data-dir command shares.
type dataFlags struct {
	config, data, addr *string
}

func addDataFlags(fs *flag.FlagSet, withAddr bool) dataFlags {
	f := dataFlags{
		config: fs.String("config", "", "YAML config file (env PAYTRAIL_CONFIG)"),
		data:   fs.String("data", "", "data directory (env PAYTRAIL_DATA, default "+defaultData+")"),
	}
	if withAddr {
		f.addr = fs.String("addr", "", "listen address (env PAYTRAIL_ADDR, default "+defaultAddr+")")
	}
	return f
}

// resolve applies flags over env over config file over defaults.
func (f dataFlags) resolve(e env) (*settings, error) {
	s := &settings{configPath: first(*f.config, e.getenv("PAYTRAIL_CONFIG"))}
	if s.configPath != "" {
		b, err := os.ReadFile(s.configPath)
		if err != nil {
			return nil, fmt.Errorf("failed to read config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&s.file); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("failed to parse config %s: %w", s.configPath, err)
		}
	}
	addr := ""
	if f.addr != nil {
		addr = *f.addr
	}
	s.data = first(*f.data, e.getenv("PAYTRAIL_DATA"), s.file.Data, defaultData)
	s.addr = first(addr, e.getenv("PAYTRAIL_ADDR"), s.file.Addr, defaultAddr)
	s.masterKey = first(e.getenv("PAYTRAIL_MASTER_KEY"), s.file.MasterKey)
	s.vaultToken = e.getenv("VAULT_TOKEN")
	if s.masterKey != "" && strings.HasPrefix(s.masterKey, "file://") {
		p, data := realPath(strings.TrimPrefix(s.masterKey, "file://")), realPath(s.data)
		if strings.HasPrefix(p+"/", data+"/") {
			return nil, hinted{fmt.Errorf("PAYTRAIL_MASTER_KEY points inside the data dir"),
				[]string{"keep the production master key outside the data dir, so backups of the data never carry it"}}
		}
	}
	return s, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func (s *settings) datadir(create, readOnly bool) datadir.Config {
	return datadir.Config{Dir: s.data, MasterKey: s.masterKey, VaultToken: s.vaultToken, Create: create, ReadOnly: readOnly}
}

// maxTolerance caps a source's timestamp tolerance: a signed webhook stays
// replayable for the whole tolerance, and processors sign when they send,
// so more than an hour of clock skew is a misconfiguration.
const maxTolerance = time.Hour

// sources resolves the configured webhook sources and their secrets. It
// refuses, with a plain message, what could never work or would be unsafe:
// a name that is not one URL path segment, a duplicate name, both
// secrets_env and secrets_file, a tolerance outside (0, 1h], a default
// merchant id with spaces or control characters.
func (s *settings) sources(e env) ([]api.Source, error) {
	var out []api.Source
	seen := map[string]bool{}
	for i, sc := range s.file.Sources {
		if err := checkSourceName(sc.Name); err != nil {
			return nil, fmt.Errorf("config: source %d: %w", i+1, err)
		}
		if seen[sc.Name] || sc.Name == "dev" && s.devSource() {
			return nil, fmt.Errorf("config: source %d: name %q is used twice", i+1, sc.Name)
		}
		seen[sc.Name] = true
		if sc.Scheme != webhook.SchemeStripe && sc.Scheme != webhook.SchemeStandard {
			return nil, fmt.Errorf("config: source %s: scheme must be stripe or standard", sc.Name)
		}
		if sc.SecretsEnv != "" && sc.SecretsFile != "" {
			return nil, fmt.Errorf("config: source %s: set secrets_env or secrets_file, not both", sc.Name)
		}
		var raw string
		switch {
		case sc.SecretsEnv != "":
			raw = e.getenv(sc.SecretsEnv)
		case sc.SecretsFile != "":
			b, err := os.ReadFile(sc.SecretsFile)
			if err != nil {
				return nil, fmt.Errorf("config: source %s: failed to read secrets file: %w", sc.Name, err)
			}
			raw = string(b)
		}
		var secrets []string
		for _, sec := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == '\n' }) {
			if sec = strings.TrimSpace(sec); sec != "" {
				if err := webhook.ParseSecret(sc.Scheme, sec); err != nil {
					return nil, fmt.Errorf("config: source %s: a secret is not valid for scheme %s", sc.Name, sc.Scheme)
				}
				secrets = append(secrets, sec)
			}
		}
		if len(secrets) == 0 {
			return nil, hinted{fmt.Errorf("config: source %s has no secret", sc.Name),
				[]string{fmt.Sprintf("set %s to the endpoint secret(s), comma-separated, newest first", first(sc.SecretsEnv, sc.SecretsFile, "secrets_env"))}}
		}
		tol := 5 * time.Minute
		if sc.Tolerance != "" {
			d, err := time.ParseDuration(sc.Tolerance)
			if err != nil || d <= 0 || d > maxTolerance {
				return nil, fmt.Errorf("config: source %s: tolerance must be a duration above 0 and at most %s, like 5m", sc.Name, maxTolerance)
			}
			tol = d
		}
		if sc.DefaultMerchant != "" && !auth.ValidID(sc.DefaultMerchant) {
			return nil, fmt.Errorf("config: source %s: default_merchant must be 1 to 255 printable characters without spaces", sc.Name)
		}
		for _, m := range sc.Merchants {
			if m != "*" && !auth.ValidID(m) {
				return nil, fmt.Errorf("config: source %s: merchants must be \"*\" or ids of 1 to 255 printable characters without spaces", sc.Name)
			}
		}
		if sc.Merchants != nil && len(sc.Merchants) == 0 {
			return nil, fmt.Errorf("config: source %s: merchants is empty: the source could post for no merchant", sc.Name)
		}
		out = append(out, api.Source{Name: sc.Name, Scheme: sc.Scheme, Secrets: secrets, Tolerance: tol,
			DefaultMerchant: sc.DefaultMerchant, Merchants: sc.Merchants})
	}
	return out, nil
}

// checkSourceName accepts names that are exactly one URL path segment of
// /v1/webhooks/{source}, as every HTTP client sends it: printable ASCII
// without '/', '\', '%', '?', '#' or spaces, and not "." or "..", which
// clients resolve away. The message never quotes a rejected name, which
// may hold control characters.
func checkSourceName(name string) error {
	switch {
	case name == "":
		return errors.New("name is required")
	case name == "." || name == "..":
		return errors.New("name cannot be . or ..")
	case len(name) > 64:
		return errors.New("name is longer than 64 characters")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || strings.IndexByte("/\\%?#", c) >= 0 {
			return errors.New("name must be printable ASCII without spaces, '/', '\\', '%', '?' or '#', so that it is one URL path segment")
		}
	}
	return nil
}

// devSource reports whether serve adds the development source "dev": only
// while the config defines no sources, unless dev_source says otherwise.
func (s *settings) devSource() bool {
	if s.file.Cluster != nil {
		return false
	}
	if s.file.DevSource != nil {
		return *s.file.DevSource
	}
	return len(s.file.Sources) == 0
}

// openNode opens the whole data dir, holding its lock, and shows the
// open's warnings.
func openNode(ctx context.Context, e env, s *settings, cfg datadir.Config) (*datadir.Node, error) {
	n, err := datadir.Open(ctx, cfg)
	if err != nil {
		return nil, explain(err, s)
	}
	warnNode(e, n)
	return n, nil
}

func warnNode(e env, n *datadir.Node) {
	for _, w := range n.Warnings {
		fmt.Fprintf(e.stderr, "paytrail: warning: %s\n", w)
	}
}

// explain turns well-known open errors into plain messages with hints.
func explain(err error, s *settings) error {
	var missing *datadir.MissingKeysError
	switch {
	case errors.Is(err, ledger.ErrLocked):
		return hinted{fmt.Errorf("data dir %s is in use by another paytrail process (a running server?)", s.data),
			[]string{"stop the server first, or run this against a copy made from a backup"}}
	case errors.As(err, &missing):
		return hinted{err, []string{
			"restore " + datadir.KeysetsDir(missing.Dir) + " from a backup; paytrail creates keys only in an empty data dir",
			"(a new signer key would not verify the checkpoints issued, a new token key would find no earlier card)"}}
	case errors.Is(err, datadir.ErrNoMasterKey):
		return hinted{fmt.Errorf("no master key configured for %s: PAYTRAIL_MASTER_KEY is unset and the data dir has no master.key", s.data),
			[]string{"set PAYTRAIL_MASTER_KEY to the master key this data dir's keysets were written with; a new one would not decrypt them"}}
	case errors.Is(err, datadir.ErrNotInitialized):
		return hinted{fmt.Errorf("no paytrail keys in %s", s.data),
			[]string{"run 'paytrail keys init --data " + s.data + "' or 'paytrail serve' first, or set PAYTRAIL_MASTER_KEY"}}
	case errors.Is(err, fs.ErrNotExist):
		return hinted{err, []string{"check --data (or PAYTRAIL_DATA)"}}
	}
	return err
}

// realPath makes p absolute and resolves symbolic links as far as the path
// exists, so two spellings of one place compare equal.
func realPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	dir, base := filepath.Split(abs)
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return filepath.Join(r, base)
	}
	return abs
}

// parseSize reads a size in bytes: a plain number, or one with a KiB, MiB
// or GiB suffix. Empty is 0 (the server's default).
func parseSize(key, v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("config: %s must be a size above 0, in bytes or with KiB, MiB or GiB, like 256MiB", key)
	}
	return n * mult, nil
}
