package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/paytrail/paytrail/api"
	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

func cmdServe(ctx context.Context, e env) error {
	fs := newFlags("serve", "[--config FILE] [--data DIR] [--addr HOST:PORT] [--tls-cert FILE --tls-key FILE]")
	df := addDataFlags(fs, true)
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; re-read on SIGHUP (config tls.cert_file)")
	tlsKey := fs.String("tls-key", "", "the PEM private key of --tls-cert (config tls.key_file)")
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", args[0]), "flags go before or after: paytrail serve --data DIR --addr HOST:PORT"}
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// Everything that can be checked without touching the data dir is
	// checked first, and the address is bound before the data dir is
	// opened: a bad config or a busy port creates no data dir, keys or
	// credentials.
	maxBody, err := parseSize("max_body", s.file.MaxBody)
	if err != nil {
		return err
	}
	maxUpload, err := parseSize("max_upload", s.file.MaxUpload)
	if err != nil {
		return err
	}
	apiCfg := api.Config{TrustedProxies: s.file.TrustedProxies, MaxBody: maxBody, MaxUpload: maxUpload}
	if apiCfg.BackupMaxRate, err = parseBackupRate(s.file.BackupMaxRate); err != nil {
		return err
	}
	if err := s.file.Limits.apply(&apiCfg); err != nil {
		return err
	}
	if err := s.file.applyOIDC(e, &apiCfg); err != nil {
		return err
	}
	sources, err := s.sources(e)
	if err != nil {
		return err
	}
	if apiCfg.Witnesses, apiCfg.WitnessQuorum, err = s.witnesses(); err != nil {
		return err
	}
	tc := s.file.TLS
	if *tlsCert != "" || *tlsKey != "" {
		tc.CertFile, tc.KeyFile = *tlsCert, *tlsKey
	}
	tlsConf, certs, err := newServerTLS(tc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return hinted{fmt.Errorf("failed to listen on %s: %w", s.addr, err), []string{"pick another address with --addr"}}
	}
	defer ln.Close()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	} else if !isLoopbackAddr(ln.Addr()) {
		fmt.Fprintf(e.stderr, "paytrail: WARNING: serving plain HTTP on %s, which is not a loopback address: bearer tokens, webhook bodies and disclosed data cross the network in clear\n", ln.Addr())
		fmt.Fprintln(e.stderr, "paytrail: hint: configure tls (cert_file, key_file) or --tls-cert/--tls-key, or put a TLS-terminating proxy in front and listen on 127.0.0.1")
	}

	cc, err := s.cluster(e, logger)
	if err != nil {
		return err
	}
	cfg := s.datadir(true, false)
	cfg.Logger = logger
	var node *datadir.Node
	var cn *clusterNode
	if cc != nil {
		node, cn, err = openClusterNode(ctx, e, s, cc, cfg)
	} else {
		node, err = openNode(ctx, e, s, cfg)
	}
	if err != nil {
		return err
	}
	defer node.Close()
	if cn != nil {
		// Before the data dir closes: the node applies into its ledger.
		defer cn.close()
	}
	if node.DevMaster {
		warnDevMaster(e, node)
	}
	if s.devSource() {
		dev, err := devSource(ctx, e, node)
		if err != nil {
			return err
		}
		sources = append(sources, dev)
	}
	apiCfg.Ledger, apiCfg.Keys, apiCfg.DataKeys, apiCfg.KeyStore = node.Ledger, node.Keys, node.DataKeys, node.KeyStore
	var appender api.Appender = node.Ledger
	if cn != nil {
		apiCfg.DataKeys, apiCfg.KeyStore, apiCfg.Cluster = cn.dataKeys, cn.keyStore, cn.node
		appender = cn.node
	}
	apiCfg.Sources, apiCfg.Logger = sources, logger
	apiCfg.DataDir = node.Dir
	srv, err := api.New(apiCfg)
	if err != nil {
		return err
	}
	if cn != nil && cn.founded {
		if err := bootstrapClusterAdmin(ctx, e.stdout, srv.Principals()); err != nil {
			return err
		}
	}
	if err := recordStart(ctx, node, appender); err != nil {
		return err
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		go reloadOnSignal(ctx, e.reload, certs, logger)
	}
	logger.Info("paytrail serving", "addr", ln.Addr().String(), "tls", tlsConf != nil, "mtls", tlsConf != nil && tlsConf.ClientCAs != nil,
		"data", node.Dir, "ledger", node.Ledger.Origin(), "entries", node.Ledger.Size())
	for _, src := range sources {
		// Names and schemes only: never a secret.
		fmt.Fprintf(e.stdout, "webhook source %s (%s): POST /v1/webhooks/%s\n", src.Name, src.Scheme, src.Name)
	}
	if len(sources) == 0 {
		fmt.Fprintln(e.stdout, "no webhook sources configured")
	}
	fmt.Fprintf(e.stdout, "listening on %s://%s\n", scheme, ln.Addr())
	if err := srv.Serve(ctx, ln, 30*time.Second); err != nil {
		return err
	}
	logger.Info("paytrail stopping: requests drained, closing the ledger")
	if cn != nil {
		cn.close()
	}
	if err := node.Close(); err != nil {
		return err
	}
	logger.Info("paytrail stopped", "entries", node.Ledger.Size())
	return nil
}

// isLoopbackAddr reports whether a listener's address is on the loopback
// interface; an unspecified address (":8080") listens on every interface.
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func warnDevMaster(e env, node *datadir.Node) {
	fmt.Fprintf(e.stderr, `
paytrail: WARNING: using the DEVELOPMENT master key %s
paytrail: WARNING: it sits next to the data it protects: anyone with a copy of the data dir can decrypt it.
paytrail: hint: in production set PAYTRAIL_MASTER_KEY to a file:// path outside the data dir or a KMS URI
paytrail: hint: (see docs/operations.md)

`, datadir.MasterKeyPath(node.Dir))
}

// devSource returns the development webhook source "dev" (scheme
// standard). On first run it creates its secret (sealed by the master key)
// and a bootstrap admin principal, and prints both once.
func devSource(ctx context.Context, e env, node *datadir.Node) (api.Source, error) {
	path := datadir.DevSecretPath(node.Dir)
	secret, err := crypto.ReadSecretFile(ctx, node.Master, path, "dev webhook secret")
	if errors.Is(err, fs.ErrNotExist) {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return api.Source{}, err
		}
		secret = []byte("whsec_" + base64.StdEncoding.EncodeToString(b[:]))
		if err := webhook.ParseSecret(webhook.SchemeStandard, string(secret)); err != nil {
			return api.Source{}, err
		}
		p, token, err := principalStore(node).Create(ctx, auth.CLIActor, "bootstrap admin", auth.RoleAdmin, []string{"*"})
		if err != nil {
			return api.Source{}, err
		}
		if err := crypto.WriteSecretFile(ctx, node.Master, path, "dev webhook secret", secret); err != nil {
			return api.Source{}, err
		}
		fmt.Fprintf(e.stdout, `first run: created development credentials (shown once, not stored in clear)
  admin token (principal %s):       %s
  webhook source "dev" (standard), secret: %s
  post events to /v1/webhooks/dev signed with Standard Webhooks headers
`, p.ID, token, secret)
	} else if err != nil {
		return api.Source{}, err
	}
	return api.Source{Name: "dev", Scheme: webhook.SchemeStandard, Secrets: []string{string(secret)}, Tolerance: 5 * time.Minute}, nil
}

// recordStart appends an admin entry naming the keys in force (ids and
// primaries, never material), so every key rotation, made offline with
// `paytrail keys rotate`, is on the ledger from the next start on.
func recordStart(ctx context.Context, node *datadir.Node, appender api.Appender) error {
	details := map[string]string{"master_key": node.Master.String()}
	for _, ks := range node.Keys.Status() {
		var ids []string
		for _, k := range ks.Keys {
			id := k.ID
			if k.Primary {
				id += "(primary)"
			}
			ids = append(ids, id)
		}
		details["keyset_"+ks.Name] = strings.Join(ids, ",")
	}
	_, err := appender.Append(ctx, ledger.Record{
		Kind: ledger.KindAdmin, ID: ledger.NewRecordID(), Time: time.Now().UTC(), Policy: api.PolicyVersion,
		Body: ledger.AdminBody{ActorID: "system", ActorName: "paytrail serve", Action: "service.start", Details: details},
	})
	if err != nil {
		return fmt.Errorf("failed to record service start: %w", err)
	}
	return nil
}
