package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/paytrail/paytrail/api/witness"
)

const witnessUsage = `usage: paytrail witness <subcommand> [flags]

subcommands:
  key     write a new witness key: key --out FILE [--name NAME] [--alg mldsa44|ed25519]
  serve   run a C2SP tlog-witness: serve --data DIR --key-file FILE --log VKEY [--log VKEY]... [--addr HOST:PORT]

run 'paytrail witness <subcommand> --help' for its flags`

func cmdWitness(ctx context.Context, e env) error {
	sub, err := subcommand(e, "witness", "witness needs a subcommand: key or serve", witnessUsage)
	if err != nil {
		return err
	}
	e.args = e.args[1:]
	switch sub {
	case "key":
		return cmdWitnessKey(e)
	case "serve":
		return cmdWitnessServe(ctx, e)
	}
	return usageError{fmt.Sprintf("unknown witness subcommand %q", sub), "run 'paytrail witness --help'"}
}

// cmdWitnessKey writes a new witness signer key (mode 0600, never
// overwriting a file) and prints its cosignature verifier key: the line
// to give the log's operator (witnesses: key) and other auditors
// (--witness).
func cmdWitnessKey(e env) error {
	fs := newFlags("witness key", "--out FILE [--name NAME] [--alg mldsa44|ed25519]")
	out := fs.String("out", "", "file to write the private witness key to (mode 0600; must not exist)")
	host, _ := os.Hostname()
	name := fs.String("name", "witness."+first(host, "local")+"/paytrail", "the witness's key name, ideally a schema-less URL that identifies it")
	alg := fs.String("alg", "mldsa44", "cosignature algorithm: mldsa44 (ML-DSA-44, what C2SP tlog-witness recommends) or ed25519 (for verifiers that only know Ed25519 cosignatures)")
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 0 || *out == "" {
		return usageError{"witness key needs --out FILE and no arguments", ""}
	}
	var skey, vkey string
	switch *alg {
	case "mldsa44":
		skey, vkey, err = fnote.GenerateMLDSAKey(*name)
	case "ed25519":
		if skey, vkey, err = note.GenerateKey(rand.Reader, *name); err == nil {
			vkey, err = fnote.VKeyToCosignatureV1(vkey)
		}
	default:
		return usageError{fmt.Sprintf("--alg must be mldsa44 or ed25519, got %q", *alg), ""}
	}
	if err != nil {
		return usageError{fmt.Sprintf("cannot make a key named %q: %v", *name, err), "a name has no spaces and no '+'"}
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return hinted{fmt.Errorf("%s exists", *out), []string{"a witness key is never overwritten: remove it first if you really mean to replace it"}}
	}
	if err != nil {
		return fmt.Errorf("failed to write witness key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("failed to write witness key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("failed to write witness key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write witness key: %w", err)
	}
	fmt.Fprintf(e.stderr, "paytrail: wrote the private witness key to %s; its verifier key is:\n", *out)
	fmt.Fprintln(e.stdout, vkey)
	return nil
}

// cmdWitnessServe runs a tlog-witness for the logs named by --log.
func cmdWitnessServe(ctx context.Context, e env) error {
	fs := newFlags("witness serve", "--data DIR --key-file FILE --log VKEY [--log VKEY]... [--addr HOST:PORT]")
	data := fs.String("data", "", "directory of the witness's state: the latest checkpoint it cosigned per log")
	keyFile := fs.String("key-file", "", "the private witness key written by 'paytrail witness key'")
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	var logs []string
	fs.Func("log", "a log's verifier key (GET /v1/ledger/public-key), or a file holding it; repeat for more logs or keys",
		func(v string) error { logs = append(logs, v); return nil })
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 0 || *data == "" || *keyFile == "" || len(logs) == 0 {
		return usageError{"witness serve needs --data DIR, --key-file FILE and at least one --log VKEY", "run 'paytrail witness serve --help'"}
	}
	vs, err := loadVerifiers(logs)
	if err != nil {
		return err
	}
	skey, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("failed to read witness key: %w", err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(strings.TrimSpace(string(skey)))
	if err != nil {
		return usageError{fmt.Sprintf("%s does not hold a witness key", *keyFile), "write one with 'paytrail witness key --out FILE'"}
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return hinted{fmt.Errorf("failed to listen on %s: %w", *addr, err), []string{"pick another address with --addr"}}
	}
	defer ln.Close()
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", *data, err)
	}
	srv, err := witness.OpenServer(witness.ServerConfig{Dir: *data, Signer: signer, Logs: vs, Logger: logger})
	if err != nil {
		return hinted{err, []string{"is another witness serve using " + *data + "?"}}
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	for _, v := range vs {
		fmt.Fprintf(e.stdout, "witnessing %s\n", v.Name())
	}
	fmt.Fprintf(e.stdout, "witness %s: listening on http://%s (POST /add-checkpoint)\n", signer.Name(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("failed to drain requests: %w", err)
	}
	return nil
}
