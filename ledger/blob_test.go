package ledger

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// storeRows reads every row of db.
func storeRows(t *testing.T, db *pebble.DB) map[string][]byte {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		rows[string(it.Key())] = bytes.Clone(v)
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// openPlain opens dir with Pebble's default options: no value separation,
// no span policy, the format the store already has. It is the reference
// the ledger's store options are held to, and how a build without them
// would open the store.
func openPlain(t *testing.T, dir string, readOnly bool) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: readOnly, Logger: PebbleLogger(discardLogger(), "test")})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestEntriesInBlobFiles checks the ledger store's value separation:
// entries flushed from the memtable go to blob files, and every row reads
// back the same through the ledger, in a snapshot (what backups copy) and
// through a store opened with Pebble's defaults, before and after flushes
// and compactions, also once that store has written to it.
func TestEntriesInBlobFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var recs []Record
	for i := range 300 {
		switch i % 3 {
		case 0:
			recs = append(recs, benchRecord()) // 1 KB: separated
		case 1:
			recs = append(recs, adminRecord(i)) // a few hundred bytes: in place
		default:
			recs = append(recs, paymentRecord(fmt.Sprintf("tx%03d", i%40), "payment.captured", int64(i), at))
		}
	}
	seqs := appendAll(t, l, recs...)
	want := map[uint64][]byte{}
	for _, seq := range seqs {
		e, err := l.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		want[seq] = e.Bytes()
	}
	inMemory := storeRows(t, l.db)
	if err := l.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := l.db.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := filepath.Glob(filepath.Join(dir, "*.blob")); len(blobs) == 0 {
		t.Fatal("no blob file after a flush: entries were not separated")
	}
	compacted := storeRows(t, l.db)
	for k, v := range inMemory {
		if !bytes.Equal(compacted[k], v) {
			t.Fatalf("row %x reads differently once flushed and compacted", k)
		}
	}
	// Backups copy the store with Snapshot: the copy has the blob files.
	snap := filepath.Join(t.TempDir(), "snap")
	if err := l.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := filepath.Glob(filepath.Join(snap, "*.blob")); len(blobs) == 0 {
		t.Fatal("the snapshot has no blob file")
	}
	copied := openPlain(t, snap, true)
	snapRows := storeRows(t, copied)
	copied.Close()
	for k, v := range inMemory {
		if !bytes.Equal(snapRows[k], v) {
			t.Fatalf("row %x reads differently in the snapshot", k)
		}
	}
	for seq, b := range want {
		e, err := l.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.Bytes(), b) {
			t.Fatalf("entry %d reads differently from a blob file", seq)
		}
	}
	rep, err := l.Verify(ctx, keys.verifiers(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != l.Size() {
		t.Fatalf("verified %d entries, ledger has %d", rep.Entries, l.Size())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := pebble.Open(dir, storeOptions(true, PebbleLogger(discardLogger(), "test")))
	if err != nil {
		t.Fatal(err)
	}
	ours := storeRows(t, ro)
	ro.Close()
	plain := openPlain(t, dir, false)
	if got := storeRows(t, plain); !maps.EqualFunc(got, ours, bytes.Equal) {
		t.Fatalf("the store read with default options has %d rows, with the ledger's %d, or their values differ", len(got), len(ours))
	}
	// A writer without value separation (an earlier build) compacts the
	// blob files' references like any other value.
	if err := plain.Set([]byte{tagMeta, 'z'}, []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := plain.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	if err := plain.Delete([]byte{tagMeta, 'z'}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	again := storeRows(t, plain)
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(again, ours, bytes.Equal) {
		t.Fatal("rows changed when a store without value separation compacted them")
	}
	l, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Verify(ctx, keys.verifiers(t), nil); err != nil {
		t.Fatalf("verify after reopening: %v", err)
	}
}

// TestEntrySpanPolicy checks the spans: only the entry table may separate
// its values, and every table tag ends its span.
func TestEntrySpanPolicy(t *testing.T) {
	for _, start := range [][]byte{{tagEntry}, entryKey(42), hashRowKey(7), {tagMeta, 'x'}, txStateKey("tx1"), {0}, {0xff, 1}} {
		p, end, err := entrySpanPolicy(start)
		if err != nil {
			t.Fatal(err)
		}
		separated := p.ValueStoragePolicy != pebble.ValueStorageLowReadLatency
		if separated != (start[0] == tagEntry) {
			t.Errorf("span from %x: separated %v", start, separated)
		}
		switch {
		case start[0] == 0xff && end != nil:
			t.Errorf("span from %x ends at %x, want the end of the key space", start, end)
		case start[0] != 0xff && !bytes.Equal(end, []byte{start[0] + 1}):
			t.Errorf("span from %x ends at %x, want the end of its tag", start, end)
		}
	}
}

// TestMaxOpenFiles checks the table cache's bounds: never below Pebble's
// default, never above 16,384, a quarter of the file limit in between.
func TestMaxOpenFiles(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		want  int
	}{{0, 1000}, {1024, 1000}, {4000, 1000}, {20000, 5000}, {65536, 16384}, {1 << 20, 16384}, {^uint64(0), 16384}} {
		if got := maxOpenFiles(tc.limit); got != tc.want {
			t.Errorf("maxOpenFiles(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
	if got := storeOptions(true, nil).MaxOpenFiles; got < 1000 || uint64(got) > max(fileLimit()/4, 1000) {
		t.Errorf("store options open %d files with a file limit of %d", got, fileLimit())
	}
}
