package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// cmdBenchBytes prints where the ledger and key store of a data dir spend
// their bytes: live rows by class (count, key and value bytes) and the
// sstables' blocks, each also per event when --events is given. The
// server must be stopped (the stores are opened for themselves).
func cmdBenchBytes(ctx context.Context, e env) error {
	fs := newFlags("bench bytes", "--data DIR [--events N]")
	data := fs.String("data", "", "data directory of a stopped server (required)")
	events := fs.Uint64("events", 0, "events the data dir holds, to print bytes per event")
	args, err := parseFlags(e, fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 0 || *data == "" {
		return usageError{"bench bytes needs --data DIR and no arguments", "paytrail bench bytes --data /tmp/data --events 200000"}
	}
	l, err := ledger.Open(ctx, ledger.Options{Dir: filepath.Join(*data, "ledger"), ReadOnly: true})
	if err != nil {
		return err
	}
	lf, err := l.Footprint()
	l.Close()
	if err != nil {
		return err
	}
	ks, err := keystore.Open(filepath.Join(*data, "keys"), nil)
	if err != nil {
		return err
	}
	kf, err := ks.Footprint()
	ks.Close()
	if err != nil {
		return err
	}
	printFootprint(e.stdout, "ledger", lf, *events)
	printFootprint(e.stdout, "keys", kf, *events)
	return nil
}

func printFootprint(w io.Writer, store string, f *ledger.Footprint, events uint64) {
	per := func(b uint64) string {
		if events == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(b)/float64(events))
	}
	fmt.Fprintf(w, "%s rows:\n%-16s %10s %12s %12s %9s %9s\n", store, "class", "rows", "key_bytes", "value_bytes", "rows/ev", "B/ev")
	var rows, kb, vb uint64
	for _, r := range f.Rows {
		rows, kb, vb = rows+r.Rows, kb+r.KeyBytes, vb+r.ValueBytes
		fmt.Fprintf(w, "%-16s %10d %12d %12d %9s %9s\n", r.Name, r.Rows, r.KeyBytes, r.ValueBytes, per(r.Rows), per(r.KeyBytes+r.ValueBytes))
	}
	fmt.Fprintf(w, "%-16s %10d %12d %12d %9s %9s\n", "total", rows, kb, vb, per(rows), per(kb+vb))
	t := f.Tables
	fmt.Fprintf(w, "%s sstables: files=%d size=%d (%s B/ev) data=%d (%s) index=%d (%s) filter=%d (%s) raw_key=%d raw_value=%d entries=%d\n",
		store, t.Files, t.Size, per(t.Size), t.Data, per(t.Data), t.Index, per(t.Index), t.Filter, per(t.Filter), t.RawKey, t.RawValue, t.Entries)
	if b := f.Blobs; b.Files > 0 {
		fmt.Fprintf(w, "%s blob files: files=%d size=%d (%s B/ev) raw_value=%d\n", store, b.Files, b.Size, per(b.Size), b.RawValue)
	}
}
