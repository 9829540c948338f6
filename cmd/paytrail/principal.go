package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/paytrail/paytrail/api"
	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger/datadir"
)

func principalStore(node *datadir.Node) *auth.Store {
	return &auth.Store{Ledger: node.Ledger, Policy: api.PolicyVersion}
}

// cmdPrincipal manages principals offline, on the data dir (the server must
// not be running; use the admin API then).
func cmdPrincipal(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		return usageError{"principal needs a subcommand: add, list or revoke", ""}
	}
	sub := e.args[0]
	fs := flag.NewFlagSet("principal "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	df := addDataFlags(fs, false)
	var name, role, merchants *string
	if sub == "add" {
		name = fs.String("name", "", "principal name (required)")
		role = fs.String("role", "", "auditor, finance, privacy or admin (required)")
		merchants = fs.String("merchants", "", "comma-separated merchant ids, or '*' (required)")
	}
	if err := parseFlags(fs, e.args[1:]); err != nil {
		return err
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		if *name == "" || *role == "" || *merchants == "" {
			return usageError{"principal add needs --name, --role and --merchants", "example: paytrail principal add --data DIR --name alice --role auditor --merchants '*'"}
		}
		r, err := auth.ParseRole(*role)
		if err != nil {
			return usageError{err.Error(), ""}
		}
		node, err := datadir.Open(ctx, s.datadir(true, false))
		if err != nil {
			return explain(err, s)
		}
		defer node.Close()
		p, token, err := principalStore(node).Create(ctx, auth.CLIActor, *name, r, []string{*merchants})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created principal %s (%s, role %s, merchants %s)\n", p.ID, p.Name, p.Role, strings.Join(p.Merchants, ","))
		fmt.Fprintln(e.stdout, "the token below is shown once; it is stored only as a hash")
		fmt.Fprintln(e.stdout, token)
		return node.Close()
	case "list":
		node, err := datadir.Open(ctx, s.datadir(false, false))
		if err != nil {
			return explain(err, s)
		}
		defer node.Close()
		ps, err := principalStore(node).List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tMERCHANTS\tCREATED\tREVOKED")
		for _, p := range ps {
			revoked := "-"
			if p.Revoked != nil {
				revoked = p.Revoked.Format("2006-01-02T15:04:05Z")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.Role, strings.Join(p.Merchants, ","), p.Created.Format("2006-01-02T15:04:05Z"), revoked)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usageError{"principal revoke needs exactly one principal id", "list ids with 'paytrail principal list'"}
		}
		node, err := datadir.Open(ctx, s.datadir(false, false))
		if err != nil {
			return explain(err, s)
		}
		defer node.Close()
		p, err := principalStore(node).Revoke(ctx, auth.CLIActor, fs.Arg(0))
		if err != nil {
			if err == auth.ErrNotFound {
				return fmt.Errorf("no principal %s", fs.Arg(0))
			}
			return err
		}
		fmt.Fprintf(e.stdout, "revoked principal %s (%s)\n", p.ID, p.Name)
		return node.Close()
	}
	return usageError{fmt.Sprintf("unknown principal subcommand %q", sub), "use add, list or revoke"}
}
