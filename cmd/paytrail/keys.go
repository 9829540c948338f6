package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// cmdKeys initializes, shows and rotates keysets. Status never prints key
// material.
func cmdKeys(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		return usageError{"keys needs a subcommand: init, status or rotate", ""}
	}
	sub := e.args[0]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	df := addDataFlags(fs, false)
	var keyset, masterOut *string
	switch sub {
	case "rotate":
		keyset = fs.String("keyset", crypto.KeysetSigner, "keyset to rotate: signer, datakey, blind or token")
	case "init":
		masterOut = fs.String("master-key-out", "", "write a new production master key file here (mode 0600) and exit")
	}
	if err := parseFlags(fs, e.args[1:]); err != nil {
		return err
	}
	if masterOut != nil && *masterOut != "" {
		if err := crypto.CreateMasterFile(*masterOut); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote master key %s (mode 0600)\n", *masterOut)
		fmt.Fprintf(e.stdout, "use it with PAYTRAIL_MASTER_KEY=file://%s; keep it outside the data dir and back it up offline\n", *masterOut)
		return nil
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	switch sub {
	case "init":
		n, err := datadir.OpenKeys(ctx, s.datadir(true, false))
		if err != nil {
			return explain(err, s)
		}
		if n.CreatedMaster {
			fmt.Fprintf(e.stderr, "paytrail: WARNING: created a DEVELOPMENT master key in %s; production must set PAYTRAIL_MASTER_KEY\n", datadir.MasterKeyPath(n.Dir))
		}
		fmt.Fprintf(e.stdout, "keysets ready in %s\n", datadir.KeysetsDir(n.Dir))
		return printStatus(e, n.Keys)
	case "status":
		n, err := datadir.OpenKeys(ctx, s.datadir(false, false))
		if err != nil {
			return explain(err, s)
		}
		fmt.Fprintf(e.stdout, "master key: %s\n", n.Master)
		return printStatus(e, n.Keys)
	case "rotate":
		n, err := datadir.OpenKeys(ctx, s.datadir(false, false))
		if err != nil {
			return explain(err, s)
		}
		if *keyset == crypto.KeysetToken || *keyset == crypto.KeysetBlind {
			fmt.Fprintf(e.stderr, "paytrail: WARNING: rotating %s changes the tokens or blind indexes of new events; searches look under every key\n", *keyset)
		}
		if err := n.Keys.Rotate(ctx, *keyset); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "rotated %s: new writes use the new primary; old keys still decrypt and verify\n", *keyset)
		if *keyset == crypto.KeysetSigner {
			fmt.Fprintln(e.stdout, "restart the server; publish the new verifier key (GET /v1/ledger/public-keys lists old and new)")
		}
		return printStatus(e, n.Keys)
	}
	return usageError{fmt.Sprintf("unknown keys subcommand %q", sub), "use init, status or rotate"}
}

func printStatus(e env, k *crypto.Keysets) error {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEYSET\tKEY ID\tPRIMARY\tSTATUS\tTYPE\tCREATED")
	for _, ks := range k.Status() {
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
