package ledger

import (
	"context"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestFootprintCountsRowsAndZstdTables checks what `paytrail bench bytes`
// reports: one "e entry" row of a 9-byte key per entry, and sstables
// written with zstd (storeOptions) and blob files holding the entries once
// the memtable is flushed.
func TestFootprintCountsRowsAndZstdTables(t *testing.T) {
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	const n = 300
	for i := range n {
		if _, err := l.Append(context.Background(), benchPayment(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.db.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := l.Footprint()
	if err != nil {
		t.Fatal(err)
	}
	var entries *RowClass
	for i := range f.Rows {
		if f.Rows[i].Name == "e entry" {
			entries = &f.Rows[i]
		}
	}
	size := l.Size()
	if entries == nil || entries.Rows != size || entries.KeyBytes != 9*size || entries.ValueBytes < 1000*n {
		t.Fatalf("entry rows %+v, want %d rows of 9-byte keys holding the entries (size %d)", entries, size, size)
	}
	if f.Tables.Files == 0 || f.Tables.Data == 0 || f.Tables.Data >= f.Tables.RawKey+f.Tables.RawValue {
		t.Fatalf("tables %+v: want flushed, compressed tables", f.Tables)
	}
	// The entries' values are in blob files, compressed too.
	if b := f.Blobs; b.Files == 0 || b.RawValue < 1000*n || b.Size >= b.RawValue {
		t.Fatalf("blob files %+v: want the entries' values, compressed", b)
	}
	levels, err := l.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range levels {
		for _, tbl := range level {
			if name := tbl.Properties.CompressionName; !strings.Contains(strings.ToLower(name), "zstd") {
				t.Errorf("table %s compressed with %q, want zstd", tbl.FileNum, name)
			}
		}
	}
}
