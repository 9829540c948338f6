package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// cmdVerify checks a local data dir (--data) or a remote server (--url).
// Exit 0: everything agrees; 1: a check failed; 2: usage or I/O error.
func cmdVerify(ctx context.Context, e env) error {
	fs := newFlags("verify", "[--data DIR] [--key VKEY]... | --url URL --checkpoint FILE --key VKEY [--witness WKEY]... [--quorum K] [--token T]")
	df := addDataFlags(fs, false)
	url := fs.String("url", "", "server base URL for a remote check")
	cpFile := fs.String("checkpoint", "", "remote: the trusted checkpoint file (written on first use, replaced on success)")
	var vkeys []string
	fs.Func("key", "the pinned verifier key, as served by /v1/ledger/public-key, or a file holding it; "+
		"remote: required, once; --data: check the checkpoints with it instead of the data dir's keys, "+
		"so that no master key is needed (repeat it for the keys of before a signer rotation)",
		func(k string) error { vkeys = append(vkeys, k); return nil })
	token := fs.String("token", "", "remote: bearer token of an auditor (env PAYTRAIL_TOKEN)")
	var wkeys []string
	fs.Func("witness", "remote: a witness's cosignature verifier key, or a file holding it; repeat for each witness you trust "+
		"(the check then uses the newest checkpoint the server says is witnessed)",
		func(k string) error { wkeys = append(wkeys, k); return nil })
	quorum := quorumFlag(fs, "remote: how many of the --witness keys must have cosigned the checkpoint (default: all of them)")
	via := fs.Uint64("via", 0, "remote: after a signer rotation, the size of the checkpoint signed by both the pinned and the new key "+
		"(announced by the operator): its new keys are pinned first")
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("verify takes no arguments, got %q", args[0]), "name the data dir with --data DIR"}
	}
	if *url != "" {
		if len(vkeys) > 1 {
			return usageError{"verify --url takes one --key", "pin the key the server signs its checkpoints with now"}
		}
		policy, ws, err := witnessPolicy(wkeys, *quorum)
		if err != nil {
			return err
		}
		return verifyRemote(ctx, e, remoteCheck{baseURL: *url, cpFile: *cpFile, vkey: first(vkeys...),
			token: first(*token, e.getenv("PAYTRAIL_TOKEN")), witnesses: ws, policy: policy, via: *via})
	}
	s, err := df.resolve(e)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.data, "ledger")); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(s.data); err != nil {
			return explain(err, s)
		}
		fmt.Fprintf(e.stdout, "OK: no ledger in %s yet (0 entries)\n", s.data)
		return nil
	}
	var (
		l         *ledger.Ledger
		verifiers note.Verifiers
	)
	if len(vkeys) > 0 {
		// The auditor's own keys: only the ledger is opened, not the keys.
		vs, err := loadVerifiers(vkeys)
		if err != nil {
			return err
		}
		if l, err = datadir.OpenLedger(ctx, s.data); err != nil {
			return verifyOpenFailed(e, err, s)
		}
		defer l.Close()
		for _, v := range vs {
			if v.Name() != l.Origin() {
				return usageError{fmt.Sprintf("--key is a key of %s, but %s holds %s", v.Name(), s.data, l.Origin()), ""}
			}
		}
		verifiers = note.VerifierList(vs...)
	} else {
		node, err := datadir.Open(ctx, s.datadir(false, true))
		if err != nil {
			return verifyOpenFailed(e, err, s)
		}
		defer node.Close()
		warnNode(e, node)
		if verifiers, _, err = node.Verifiers(); err != nil {
			return err
		}
		l = node.Ledger
	}
	start := time.Now()
	last := start
	rep, err := l.Verify(ctx, verifiers, func(done uint64) {
		if time.Since(last) > 2*time.Second {
			fmt.Fprintf(e.stderr, "paytrail: verified %d entries...\n", done)
			last = time.Now()
		}
	})
	if err != nil {
		var (
			te *ledger.TamperedError
			de *ledger.DamagedError
		)
		switch {
		case errors.As(err, &de):
			return verifyDamaged(e, de)
		case errors.As(err, &te) && te.Index:
			fmt.Fprintf(e.stdout, "FAIL: derived index rows disagree with the entries: %s\n", te.Reason)
			return exitError{exitFailure, errors.New("ledger index verification failed")}
		case errors.As(err, &te):
			fmt.Fprintf(e.stdout, "FAIL: first bad sequence number %d: %s\n", te.Seq, te.Reason)
			return exitError{exitFailure, fmt.Errorf("ledger verification failed at sequence number %d", te.Seq)}
		}
		return err
	}
	if len(vkeys) > 0 && rep.Covered < rep.Entries {
		// Only a checkpoint vouches for entries to the holder of the key:
		// without one, whoever can write the copy could have deleted the
		// checkpoints and rewritten the entries and hashes after them.
		fmt.Fprintf(e.stdout, "FAIL: first bad sequence number %d: no checkpoint signed by the given keys covers it (they cover %d of %d entries)\n",
			rep.Covered, rep.Covered, rep.Entries)
		return exitError{exitFailure, fmt.Errorf("ledger verification failed at sequence number %d", rep.Covered)}
	}
	fmt.Fprintf(e.stdout, "OK: %d entries, %d checkpoints, %d transactions, %d index rows agree (root %s, %s)\n",
		rep.Entries, rep.Checkpoints, rep.Transactions, rep.IndexRows, b64(rep.Root), time.Since(start).Round(time.Millisecond))
	return nil
}

// verifyOpenFailed reports a data dir that could not be opened: a store
// too damaged to open is a failed check (exit 1), anything else an error.
func verifyOpenFailed(e env, err error, s *settings) error {
	var de *ledger.DamagedError
	if errors.As(err, &de) {
		return verifyDamaged(e, de)
	}
	return explain(err, s)
}

// verifyDamaged reports a store Pebble cannot read: what was checked
// before the damage, and that nothing after it could be.
func verifyDamaged(e env, de *ledger.DamagedError) error {
	what := "nothing could be checked"
	if de.Checked > 0 {
		what = fmt.Sprintf("entries 0 to %d agree; sequence numbers from %d on could not be checked", de.Checked-1, de.Checked)
	}
	fmt.Fprintf(e.stdout, "FAIL: %s: %s\n", de, what)
	return exitError{exitFailure, errors.New("ledger verification failed: the store is damaged")}
}
