// Command paytrail runs and operates the paytrail audit ledger.
//
//	paytrail serve      [--config FILE] [--data DIR] [--addr HOST:PORT]
//	paytrail principal  add|list|revoke --data DIR ...
//	paytrail keys       init|status|rotate --data DIR ...
//	paytrail verify     --data DIR [--key VKEY]... | --url URL --checkpoint FILE --key VKEY [--token T]
//	paytrail reconcile  --data DIR --format generic|stripe FILE
//	paytrail bench      ingest --url URL --source NAME --secret S --events N --concurrency C
//
// Flags override the environment (PAYTRAIL_CONFIG, PAYTRAIL_DATA,
// PAYTRAIL_ADDR, PAYTRAIL_MASTER_KEY), which overrides the config file,
// which overrides the defaults. Messages follow age's rules: a "paytrail:"
// prefix, lower case, no final period, optional "hint:" lines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // the check ran and failed (verify, reconcile exceptions)
	exitUsage   = 2 // usage, I/O or configuration error
)

// env is the process environment as main sees it: commands read flags and
// environment only through it, so tests can run them in-process.
type env struct {
	args   []string
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, env{args: os.Args[1:], getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}))
}

const usage = `usage: paytrail <command> [flags]

commands:
  serve       run the HTTP service
  principal   add, list or revoke API principals
  keys        init, status or rotate keysets
  verify      check the ledger (local data dir or a remote server)
  reconcile   match a settlement report against the ledger
  bench       load-test a running server

run 'paytrail <command> -h' for a command's flags`

func run(ctx context.Context, e env) int {
	if len(e.args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return exitUsage
	}
	cmd, rest := e.args[0], e.args[1:]
	e.args = rest
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, e)
	case "principal":
		err = cmdPrincipal(ctx, e)
	case "keys":
		err = cmdKeys(ctx, e)
	case "verify":
		err = cmdVerify(ctx, e)
	case "reconcile":
		err = cmdReconcile(ctx, e)
	case "bench":
		err = cmdBench(ctx, e)
	case "help", "-h", "--help":
		fmt.Fprintln(e.stdout, usage)
		return exitOK
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd), "run 'paytrail help' for the list of commands"}
	}
	return report(e, err)
}

// usageError is a bad invocation (exit 2).
type usageError struct{ msg, hint string }

func (u usageError) Error() string { return u.msg }

// exitError carries a specific exit code with a message.
type exitError struct {
	code int
	err  error
}

func (x exitError) Error() string { return x.err.Error() }
func (x exitError) Unwrap() error { return x.err }

// hinted is an error with hint lines for the user.
type hinted struct {
	err   error
	hints []string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

func report(e env, err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "paytrail: %s\n", ue.msg)
		if ue.hint != "" {
			fmt.Fprintf(e.stderr, "paytrail: hint: %s\n", ue.hint)
		}
		return exitUsage
	}
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if errors.Is(err, errSilent) {
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "paytrail: %s\n", err)
	var h hinted
	if errors.As(err, &h) {
		for _, l := range h.hints {
			fmt.Fprintf(e.stderr, "paytrail: hint: %s\n", l)
		}
	}
	var x exitError
	if errors.As(err, &x) {
		return x.code
	}
	return exitUsage
}

// parseFlags parses a command's flags. -h prints the flags and ends the
// command successfully (errHelp); any other parse error is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error(), ""}
	}
	return nil
}

// errHelp ends a command that printed its help: exit 0.
var errHelp = errors.New("help requested")

// errSilent ends a command with exit 1 after it printed its own findings.
var errSilent = errors.New("failed")
