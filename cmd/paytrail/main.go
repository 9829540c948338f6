// Command paytrail runs and operates the paytrail audit ledger.
//
//	paytrail serve      [--config FILE] [--data DIR] [--addr HOST:PORT]
//	paytrail principal  add|list|revoke --data DIR ...
//	paytrail keys       init|status|rotate|rewrap|retire --data DIR ...
//	paytrail backup     --url URL --token T --out FILE
//	paytrail restore    --in FILE --data DIR
//	paytrail verify     --data DIR [--key VKEY]... | --url URL --checkpoint FILE --key VKEY [--witness WKEY]... [--quorum K] [--token T]
//	paytrail reconcile  --data DIR --format generic|stripe FILE
//	paytrail bench      ingest --url URL --source NAME --secret S --events N --concurrency C
//	paytrail bench      query --url URL --token ADMIN-TOKEN --requests N --concurrency C
//	paytrail receipt    verify --key VKEY [--witness WKEY]... [--quorum K] FILE
//	paytrail witness    key|serve ...
//	paytrail version
//
// Every command and subcommand takes -h or --help. Flags may come before or
// after positional arguments; after "--" everything is positional.
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
	"runtime"
	"runtime/debug"
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
	// reload receives a value for each SIGHUP: serve then re-reads its TLS
	// certificate. Nil (in tests that do not need it) never receives.
	reload <-chan os.Signal
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	os.Exit(run(ctx, env{args: os.Args[1:], getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, reload: hup}))
}

const usage = `usage: paytrail <command> [flags]

commands:
  serve       run the HTTP service
  principal   add, list or revoke API principals
  keys        init, status, rotate or rewrap keysets
  backup      download an online backup from a running server
  restore     write a new data dir from a backup
  verify      check the ledger (local data dir or a remote server)
  reconcile   match a settlement report against the ledger
  bench       load-test a running server
  cluster     seed a new cluster from a single node's ledger
  receipt     verify an entry's receipt offline
  witness     run a witness that cosigns a ledger's checkpoints
  version     print the version

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
	case "backup":
		err = cmdBackup(ctx, e)
	case "restore":
		err = cmdRestore(ctx, e)
	case "bench":
		err = cmdBench(ctx, e)
	case "cluster":
		err = cmdCluster(ctx, e)
	case "receipt":
		err = cmdReceipt(e)
	case "witness":
		err = cmdWitness(ctx, e)
	case "version", "-version", "--version":
		fmt.Fprintln(e.stdout, versionString())
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" && !isHelp(rest[0]) {
			// "paytrail help keys" is "paytrail keys --help".
			e.args = []string{rest[0], "--help"}
			return run(ctx, e)
		}
		fmt.Fprintln(e.stdout, usage)
		return exitOK
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd), "run 'paytrail help' for the list of commands"}
	}
	return report(e, err)
}

// versionString names the build: the module version (or "(devel)"), the
// VCS revision when the binary was built from a checkout, and Go's version.
func versionString() string {
	v, rev, dirty := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	out := "paytrail " + v
	if rev != "" {
		out += " " + rev[:min(12, len(rev))]
		if dirty {
			out += "+dirty"
		}
	}
	return out + " " + runtime.Version()
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// subcommand picks the subcommand of a command group (keys, principal,
// bench). With none it is a usage error saying what is missing; with -h,
// --help or help it prints the group's usage to stdout and ends
// successfully (errHelp).
func subcommand(e env, group, missing, groupUsage string) (string, error) {
	if len(e.args) == 0 {
		return "", usageError{missing, "run 'paytrail " + group + " --help' for its subcommands"}
	}
	if sub := e.args[0]; isHelp(sub) || sub == "help" {
		fmt.Fprintln(e.stdout, groupUsage)
		return "", errHelp
	}
	return e.args[0], nil
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

// newFlags returns an empty flag set for "paytrail <name>"; synopsis is
// what its usage line shows after the name.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints its own messages while parsing; ours replace
	// them (see parseFlags), so its output goes nowhere until -h asks for
	// the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: paytrail %s %s\n", name, synopsis)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a command's flags and returns its positional
// arguments. Flags may follow positional arguments ("principal revoke ID
// --data DIR"); "--" ends the flags. -h or --help prints the usage to
// stdout and ends the command successfully (errHelp); any other parse
// error is a usage error that says where to find the flags.
func parseFlags(e env, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(e.stdout, fs)
				return nil, errHelp
			}
			return nil, usageError{err.Error(), fmt.Sprintf("run 'paytrail %s --help' for its flags", fs.Name())}
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fs.SetOutput(w)
	fs.Usage()
	fs.SetOutput(io.Discard)
}

// errHelp ends a command that printed its help: exit 0.
var errHelp = errors.New("help requested")

// errSilent ends a command with exit 1 after it printed its own findings.
var errSilent = errors.New("failed")
