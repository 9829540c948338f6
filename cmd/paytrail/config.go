package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paytrail/paytrail/api"
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
}

type sourceConfig struct {
	Name            string `yaml:"name"`
	Scheme          string `yaml:"scheme"`
	SecretsEnv      string `yaml:"secrets_env"`
	SecretsFile     string `yaml:"secrets_file"`
	Tolerance       string `yaml:"tolerance"`
	DefaultMerchant string `yaml:"default_merchant"`
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

// sources resolves the configured webhook sources and their secrets.
func (s *settings) sources(e env) ([]api.Source, error) {
	var out []api.Source
	for _, sc := range s.file.Sources {
		if sc.Name == "" || sc.Name == "dev" && s.devSource() {
			return nil, fmt.Errorf("config: source needs a name other than %q", sc.Name)
		}
		if sc.Scheme != webhook.SchemeStripe && sc.Scheme != webhook.SchemeStandard {
			return nil, fmt.Errorf("config: source %s: scheme must be stripe or standard", sc.Name)
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
				[]string{fmt.Sprintf("set %s to the endpoint secret(s), comma-separated, newest first", first(sc.SecretsEnv, "secrets_env"))}}
		}
		tol := 5 * time.Minute
		if sc.Tolerance != "" {
			d, err := time.ParseDuration(sc.Tolerance)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("config: source %s: bad tolerance %q", sc.Name, sc.Tolerance)
			}
			tol = d
		}
		out = append(out, api.Source{Name: sc.Name, Scheme: sc.Scheme, Secrets: secrets, Tolerance: tol, DefaultMerchant: sc.DefaultMerchant})
	}
	return out, nil
}

func (s *settings) devSource() bool { return s.file.DevSource == nil || *s.file.DevSource }

// explain turns well-known open errors into plain messages with hints.
func explain(err error, s *settings) error {
	switch {
	case errors.Is(err, ledger.ErrLocked):
		return hinted{fmt.Errorf("data dir %s is in use by another paytrail process (a running server?)", s.data),
			[]string{"stop the server first, or run this against a copy made from a backup"}}
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
