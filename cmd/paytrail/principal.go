package main

import (
	"context"
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
const principalUsage = `usage: paytrail principal <subcommand> [--data DIR] [flags]

subcommands:
  add      create a principal; its token is printed alone on the last line
  list     list principals (never tokens)
  revoke   revoke a principal: paytrail principal revoke [--data DIR] ID

these work on a stopped server's data dir; while a server runs, use the admin API
run 'paytrail principal <subcommand> --help' for its flags`

func cmdPrincipal(ctx context.Context, e env) error {
	sub, err := subcommand(e, "principal", "principal needs a subcommand: add, list or revoke", principalUsage)
	if err != nil {
		return err
	}
	synopsis := map[string]string{
		"add":    "[--data DIR] --name NAME --role auditor|finance|privacy|admin --merchants a,b|'*'",
		"list":   "[--data DIR]",
		"revoke": "[--data DIR] ID",
	}[sub]
	if synopsis == "" {
		return usageError{fmt.Sprintf("unknown principal subcommand %q", sub), "use add, list or revoke"}
	}
	fs := newFlags("principal "+sub, synopsis)
	df := addDataFlags(fs, false)
	var name, role, merchants *string
	if sub == "add" {
		name = fs.String("name", "", "principal name (required)")
		role = fs.String("role", "", "auditor, finance, privacy or admin (required)")
		merchants = fs.String("merchants", "", "comma-separated merchant ids, or '*' (required)")
	}
	args, err := parseFlags(e, fs, e.args[1:])
	if err != nil {
		return err
	}
	if sub != "revoke" && len(args) != 0 {
		return usageError{fmt.Sprintf("principal %s takes no arguments, got %q", sub, args[0]), ""}
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
		node, err := openNode(ctx, e, s, s.datadir(true, false))
		if err != nil {
			return err
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
		node, err := openNode(ctx, e, s, s.datadir(false, false))
		if err != nil {
			return err
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
		if len(args) != 1 {
			return usageError{"principal revoke needs exactly one principal id", "list ids with 'paytrail principal list'"}
		}
		node, err := openNode(ctx, e, s, s.datadir(false, false))
		if err != nil {
			return err
		}
		defer node.Close()
		p, err := principalStore(node).Revoke(ctx, auth.CLIActor, args[0])
		if err != nil {
			if err == auth.ErrNotFound {
				return fmt.Errorf("no principal %s", args[0])
			}
			return err
		}
		fmt.Fprintf(e.stdout, "revoked principal %s (%s)\n", p.ID, p.Name)
		return node.Close()
	}
	return nil
}
