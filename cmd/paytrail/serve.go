package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
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
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	df := addDataFlags(fs, true)
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sources, err := s.sources(e)
	if err != nil {
		return err
	}
	cfg := s.datadir(true, false)
	cfg.Logger = logger
	node, err := datadir.Open(ctx, cfg)
	if err != nil {
		return explain(err, s)
	}
	defer node.Close()
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
	srv, err := api.New(api.Config{
		Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore,
		Sources: sources, Logger: logger, TrustedProxies: s.file.TrustedProxies,
	})
	if err != nil {
		return err
	}
	if err := recordStart(ctx, node); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return hinted{fmt.Errorf("failed to listen on %s: %w", s.addr, err), []string{"pick another address with --addr"}}
	}
	logger.Info("paytrail serving", "addr", ln.Addr().String(), "data", node.Dir, "ledger", node.Ledger.Origin(), "entries", node.Ledger.Size())
	fmt.Fprintf(e.stdout, "listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ctx, ln, 30*time.Second); err != nil {
		return err
	}
	logger.Info("paytrail stopping: requests drained, closing the ledger")
	if err := node.Close(); err != nil {
		return err
	}
	logger.Info("paytrail stopped", "entries", node.Ledger.Size())
	return nil
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
func recordStart(ctx context.Context, node *datadir.Node) error {
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
	_, err := node.Ledger.Append(ctx, ledger.Record{
		Kind: ledger.KindAdmin, ID: ledger.NewRecordID(), Time: time.Now().UTC(), Policy: api.PolicyVersion,
		Body: ledger.AdminBody{ActorID: "system", ActorName: "paytrail serve", Action: "service.start", Details: details},
	})
	if err != nil {
		return fmt.Errorf("failed to record service start: %w", err)
	}
	return nil
}
