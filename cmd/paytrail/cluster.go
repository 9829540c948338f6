package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/cluster"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// clusterConfig is the config file's `cluster:` block (docs/cluster.md).
// With it, serve runs the data dir as a node of a cluster fed from one
// NATS JetStream stream.
type clusterConfig struct {
	NATSURL   string `yaml:"nats_url"`
	Name      string `yaml:"name"`
	Replicas  int    `yaml:"replicas"`
	Node      string `yaml:"node"`
	CredsFile string `yaml:"creds_file"`
	CAFile    string `yaml:"ca_file"`
	MaxLag    uint64 `yaml:"max_lag"`
}

// cluster returns the cluster settings, or nil for a single node.
// PAYTRAIL_NATS_URL overrides nats_url.
func (s *settings) cluster(e env, logger *slog.Logger) (*cluster.Config, error) {
	c := s.file.Cluster
	if c == nil {
		return nil, nil
	}
	cfg := &cluster.Config{
		URLs: first(e.getenv("PAYTRAIL_NATS_URL"), c.NATSURL), Name: c.Name, Replicas: c.Replicas,
		Node: c.Node, CredsFile: c.CredsFile, CAFile: c.CAFile, MaxLag: c.MaxLag, Logger: logger,
	}
	if cfg.URLs == "" {
		return nil, hinted{errors.New("config: cluster.nats_url is required"),
			[]string{"name the NATS servers, comma-separated (or set PAYTRAIL_NATS_URL)"}}
	}
	if s.masterKey == "" {
		return nil, hinted{errors.New("cluster mode needs a master key shared by every node"),
			[]string{"set PAYTRAIL_MASTER_KEY (or master_key) to the same file:// path or KMS URI on every node; the development key inside a data dir is that node's alone"}}
	}
	if s.file.DevSource != nil && *s.file.DevSource {
		return nil, errors.New("config: dev_source cannot be used in cluster mode: its secret is one data dir's; configure sources, shared by every node")
	}
	return cfg, nil
}

// clusterNode is a data dir opened as a node of a cluster.
type clusterNode struct {
	conn     *cluster.Conn
	node     *cluster.Node
	dataKeys *crypto.DataKeys
	keyStore *cluster.KeyStore
	// founded is true when this node started the cluster: it creates the
	// bootstrap admin.
	founded bool

	closeOnce sync.Once
}

// openClusterNode connects to the cluster, opens the data dir with the
// cluster's ledger id and keysets (created once per cluster, in its
// buckets), and starts applying the cluster's stream.
func openClusterNode(ctx context.Context, e env, s *settings, cc *cluster.Config, cfg datadir.Config) (*datadir.Node, *clusterNode, error) {
	conn, err := cluster.Connect(ctx, *cc)
	if err != nil {
		return nil, nil, hinted{err, []string{"check cluster.nats_url, and that the NATS servers run with JetStream enabled (docs/cluster.md)"}}
	}
	cn := &clusterNode{conn: conn}
	id, founded, err := conn.LedgerID(ctx, "")
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	cn.founded = founded
	cfg.LedgerID, cfg.Sequenced, cfg.Agree, cfg.SyncKeysets = id, true, conn.Agree, conn.SyncKeysets
	node, err := openNode(ctx, e, s, cfg)
	if err != nil {
		conn.Close()
		if errors.Is(err, ledger.ErrWrongLedger) || errors.Is(err, datadir.ErrKeysetsDiffer) {
			return nil, nil, hinted{err, []string{"this data dir belongs to another cluster or to a single node: give the node an empty data dir, or seed a new cluster from it with 'paytrail cluster seed'"}}
		}
		return nil, nil, err
	}
	cn.keyStore = conn.KeyStore()
	cn.dataKeys = crypto.NewDataKeys(node.Keys, cn.keyStore, cfg.DataKeyCache)
	cn.node, err = cluster.NewNode(conn, cluster.NodeOptions{
		Ledger: node.Ledger, Forget: cn.dataKeys.Forget,
		Sealer: &cluster.DataKeySealer{LedgerID: id, DataKeys: cn.dataKeys, Store: cn.keyStore},
	})
	if err == nil {
		err = cn.node.Start(ctx)
	}
	if err != nil {
		node.Close()
		conn.Close()
		return nil, nil, err
	}
	return node, cn, nil
}

// close stops applying and disconnects; the caller closes the data dir.
func (cn *clusterNode) close() {
	cn.closeOnce.Do(func() {
		cn.node.Close()
		cn.conn.Close()
	})
}

const clusterUsage = `usage: paytrail cluster <subcommand> [flags]

subcommands:
  seed     publish a single node's ledger into a new, empty cluster

run 'paytrail cluster <subcommand> -h' for its flags`

func cmdCluster(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		return usageError{"cluster needs a subcommand", "run 'paytrail cluster -h'"}
	}
	sub := e.args[0]
	e.args = e.args[1:]
	switch sub {
	case "seed":
		return cmdClusterSeed(ctx, e)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stdout, clusterUsage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown cluster subcommand %q", sub), "run 'paytrail cluster -h'"}
}

// cmdClusterSeed publishes the ledger of a single node's data dir (its
// server stopped) into the empty cluster the config file names.
func cmdClusterSeed(ctx context.Context, e env) error {
	fs := newFlags("cluster seed", "--data DIR --config FILE")
	df := addDataFlags(fs, false)
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("cluster seed takes no arguments, got %q", args[0]), "paytrail cluster seed --data DIR --config FILE"}
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cc, err := s.cluster(e, logger)
	if err != nil {
		return err
	}
	if cc == nil {
		return usageError{"the config file has no cluster: block", "name the cluster to seed in --config (docs/cluster.md)"}
	}
	cfg := s.datadir(false, false)
	cfg.Logger = logger
	node, err := openNode(ctx, e, s, cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	conn, err := cluster.Connect(ctx, *cc)
	if err != nil {
		return err
	}
	defer conn.Close()
	files, err := crypto.ReadKeysetFiles(datadir.KeysetsDir(node.Dir))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "seeding cluster %s from %s (%d entries)\n", cc.Name, filepath.Clean(node.Dir), node.Ledger.Size())
	res, err := cluster.Seed(ctx, conn, cluster.SeedSource{
		Ledger: node.Ledger, Keysets: files, EachKey: node.KeyStore.Each,
		Sealer: &cluster.DataKeySealer{LedgerID: node.Ledger.ID(), DataKeys: node.DataKeys, Store: conn.KeyStore()},
		Progress: func(done, total uint64) {
			fmt.Fprintf(e.stderr, "  %d of %d entries published\n", done, total)
		},
	})
	if err != nil {
		if errors.Is(err, cluster.ErrNotEmpty) {
			return hinted{err, []string{"seed only a new cluster: a fresh cluster name, or delete its stream and buckets first (docs/cluster.md)"}}
		}
		return err
	}
	root, err := node.Ledger.Root(node.Ledger.Size())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "seeded ledger %s: %d entries, %d checkpoints, %d state rows, %d data keys in %d records; root %x\n",
		node.Ledger.Origin(), res.Entries, res.Checkpoints, res.StateRows, res.DataKeys, res.Records, root)
	fmt.Fprintln(e.stdout, "start the cluster's nodes with empty data dirs; they reach this root and serve these checkpoints")
	return nil
}

// bootstrapClusterAdmin creates the first admin of a new cluster, through
// the cluster's stream, and prints its token once.
func bootstrapClusterAdmin(ctx context.Context, out io.Writer, store *auth.Store) error {
	p, token, err := store.Create(ctx, auth.CLIActor, "bootstrap admin", auth.RoleAdmin, []string{"*"})
	if err != nil {
		return fmt.Errorf("failed to create the cluster's bootstrap admin: %w", err)
	}
	fmt.Fprintf(out, "new cluster: created the bootstrap admin (shown once, not stored in clear)\n  admin token (principal %s): %s\n", p.ID, token)
	return nil
}
