package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/paytrail/paytrail/api"
)

// cmdBenchBaseline serves api.BaselineHandler on --addr with a Pebble store
// in --data, until interrupted: the bare server that .ci/bench-ingest
// drives exactly as it drives `paytrail serve`, so that their ratio
// measures what paytrail's ingest path costs. It is a benchmark tool, not
// a server: it checks no signature and keeps nothing but the bodies.
func cmdBenchBaseline(ctx context.Context, e env) error {
	fs := newFlags("bench baseline", "--data DIR [--addr HOST:PORT]")
	data := fs.String("data", "", "directory for the baseline's Pebble store (required; created if missing)")
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	args, err := parseFlags(e, fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 0 || *data == "" {
		return usageError{"bench baseline needs --data DIR and no arguments", "paytrail bench baseline --data /tmp/baseline --addr 127.0.0.1:8090"}
	}
	db, err := pebble.Open(*data, &pebble.Options{MemTableSize: api.BaselineMemTableSize})
	if err != nil {
		return fmt.Errorf("failed to open the baseline store: %w", err)
	}
	defer db.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", *addr, err)
	}
	hs := &http.Server{Handler: api.BaselineHandler(db), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.stdout, "baseline listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	}
}
