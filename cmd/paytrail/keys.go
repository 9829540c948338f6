package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"text/tabwriter"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// cmdKeys initializes, shows and rotates keysets. Status never prints key
// material.
const keysUsage = `usage: paytrail keys <subcommand> [--data DIR] [flags]

subcommands:
  init     create the keys of an empty data dir; or, with --master-key-out PATH,
           write a production master key file and exit
  status   list keysets: key ids, primaries, status, dates (never key material)
  rotate   add a new primary key to one keyset (--keyset signer|datakey|token|blind);
           a running server does this online: POST /v1/admin/keys/{keyset}/rotate
  rewrap   re-encrypt every keyset under a new master key (--new-master-key URI)
  retire   delete the old datakey keys once every data key is re-wrapped (--keyset datakey)

every subcommand refuses while a server holds the data dir
run 'paytrail keys <subcommand> --help' for its flags`

func cmdKeys(ctx context.Context, e env) error {
	sub, err := subcommand(e, "keys", "keys needs a subcommand: init, status, rotate, rewrap or retire", keysUsage)
	if err != nil {
		return err
	}
	synopsis := map[string]string{
		"init":   "[--data DIR] [--config FILE] | --master-key-out PATH",
		"status": "[--data DIR] [--config FILE] | --url URL --token T",
		"rotate": "[--data DIR] [--config FILE] [--keyset signer|datakey|token|blind]",
		"rewrap": "[--data DIR] [--config FILE] --new-master-key URI",
		"retire": "[--data DIR] [--config FILE] --keyset datakey",
	}[sub]
	if synopsis == "" {
		return usageError{fmt.Sprintf("unknown keys subcommand %q", sub), "use init, status, rotate, rewrap or retire"}
	}
	fs := newFlags("keys "+sub, synopsis)
	df := addDataFlags(fs, false)
	var keyset, masterOut, newMaster, statusURL, statusToken *string
	switch sub {
	case "status":
		statusURL = fs.String("url", "", "ask a running server instead of opening the data dir (GET /v1/admin/keys)")
		statusToken = fs.String("token", "", "an admin bearer token for --url (env PAYTRAIL_TOKEN)")
	case "retire":
		keyset = fs.String("keyset", "", "the keyset whose non-primary keys to delete: only datakey")
	case "rewrap":
		newMaster = fs.String("new-master-key", "", "the new master key: file:///abs/path (outside the data dir) or a KMS URI; the current one comes from PAYTRAIL_MASTER_KEY")
	case "rotate":
		keyset = fs.String("keyset", crypto.KeysetSigner, "keyset to rotate: signer, datakey, blind or token")
	case "init":
		masterOut = fs.String("master-key-out", "", "write a new production master key file here (mode 0600) and exit")
	}
	args, err := parseFlags(e, fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("keys %s takes no arguments, got %q", sub, args[0]), ""}
	}
	if masterOut != nil && *masterOut != "" {
		path, err := filepath.Abs(*masterOut)
		if err != nil {
			return fmt.Errorf("failed to resolve --master-key-out: %w", err)
		}
		if err := crypto.CreateMasterFile(path); err != nil {
			return err
		}
		uri := (&url.URL{Scheme: "file", Path: path}).String()
		fmt.Fprintf(e.stdout, "wrote master key %s (mode 0600)\n", path)
		fmt.Fprintf(e.stdout, "use it with PAYTRAIL_MASTER_KEY=%s; keep it outside the data dir and back it up offline\n", uri)
		return nil
	}
	if statusURL != nil && *statusURL != "" {
		return keysStatusRemote(ctx, e, *statusURL, first(*statusToken, e.getenv("PAYTRAIL_TOKEN")))
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	var n *datadir.Node
	switch sub {
	case "init":
		if n, err = openKeys(ctx, e, s, true); err != nil {
			return err
		}
		defer n.Close()
		if n.CreatedMaster {
			fmt.Fprintf(e.stderr, "paytrail: WARNING: created a DEVELOPMENT master key in %s; production must set PAYTRAIL_MASTER_KEY\n", datadir.MasterKeyPath(n.Dir))
		}
		fmt.Fprintf(e.stdout, "keysets ready in %s\n", datadir.KeysetsDir(n.Dir))
		return printStatus(e, n.Keys)
	case "status":
		if n, err = openKeys(ctx, e, s, false); err != nil {
			return err
		}
		defer n.Close()
		fmt.Fprintf(e.stdout, "master key: %s\n", n.Master)
		if err := printStatus(e, n.Keys); err != nil {
			return err
		}
		return printRewrap(e, n.Dir)
	case "rotate":
		if n, err = openKeys(ctx, e, s, false); err != nil {
			return err
		}
		defer n.Close()
		if l, err := datadir.OpenLedger(ctx, n.Dir); err == nil {
			applied := l.Applied()
			l.Close()
			if applied > 0 {
				return hinted{ledger.ErrClusterNode, []string{"a cluster's keysets live in its keysets bucket: a key rotated in one data dir would part that node from the others (docs/cluster.md)"}}
			}
		}
		if *keyset == crypto.KeysetToken || *keyset == crypto.KeysetBlind {
			fmt.Fprintf(e.stderr, "paytrail: WARNING: rotating %s changes the tokens or blind indexes of new events; searches look under every key\n", *keyset)
		}
		if err := n.Keys.Rotate(ctx, *keyset); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "rotated %s: new writes use the new primary; old keys still decrypt and verify\n", *keyset)
		if *keyset == crypto.KeysetSigner {
			fmt.Fprintln(e.stdout, "the next server start co-signs the last checkpoint with it; publish the new verifier key (GET /v1/ledger/public-keys lists old and new)")
		}
		return printStatus(e, n.Keys)
	case "rewrap":
		return keysRewrap(ctx, e, s, *newMaster)
	case "retire":
		return keysRetire(ctx, e, s, *keyset)
	}
	return nil
}

// openKeys opens the master key and keysets of the data dir, holding its
// lock, and shows the open's warnings.
func openKeys(ctx context.Context, e env, s *settings, create bool) (*datadir.Node, error) {
	n, err := datadir.OpenKeys(ctx, s.datadir(create, false))
	if err != nil {
		return nil, explain(err, s)
	}
	warnNode(e, n)
	return n, nil
}

func printStatus(e env, k *crypto.Keysets) error { return printKeysets(e, k.Status()) }

func printKeysets(e env, status []crypto.KeysetStatus) error {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEYSET\tKEY ID\tPRIMARY\tSTATUS\tTYPE\tCREATED")
	for _, ks := range status {
		for _, key := range ks.Keys {
			primary := ""
			if key.Primary {
				primary = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ks.Name, key.ID, primary, key.Status, key.Type, key.Created.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	return tw.Flush()
}
