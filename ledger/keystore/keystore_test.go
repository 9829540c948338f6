package keystore

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/paytrail/paytrail/ledger"
)

// Destroy leaves a destroyed key in no file: not in an SSTable, not in the
// WAL that held it (which Pebble would otherwise recycle, keeping its old
// bytes past what the new WAL writes), also after Close. The keys are
// spread over several WALs and SSTables first.
func TestDestroyLeavesNoWrappedKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var all []ledger.WrappedKey
	for round := range 3 {
		var ks []ledger.WrappedKey
		for i := range 50 {
			w := make([]byte, 120)
			rand.Read(w)
			ks = append(ks, ledger.WrappedKey{ID: fmt.Sprintf("dk_%d_%03d", round, i), Wrapped: w})
		}
		if err := s.PutWrapped(ctx, ks); err != nil {
			t.Fatal(err)
		}
		all = append(all, ks...)
		if round < 2 {
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	destroyed := []int{5, 70, 140}
	var ids []string
	for _, i := range destroyed {
		ids = append(ids, all[i].ID)
	}
	if err := s.Destroy(ctx, ids); err != nil {
		t.Fatal(err)
	}
	scan := func(when string) {
		t.Helper()
		err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, i := range destroyed {
				if bytes.Contains(b, all[i].Wrapped[60:]) {
					t.Errorf("%s: destroyed key %s in %s", when, all[i].ID, filepath.Base(p))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	scan("after Destroy")
	for i, k := range all {
		_, ok, err := s.Wrapped(ctx, k.ID)
		if want := i != 5 && i != 70 && i != 140; err != nil || ok != want {
			t.Fatalf("key %s: found %v %v, want %v", k.ID, ok, err, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("after Close")
	if err := s.PutWrapped(ctx, all[:1]); err != ErrClosed {
		t.Fatalf("PutWrapped after Close = %v, want ErrClosed", err)
	}
}

// A read looks in the tables that cannot hold the key only as far as
// their filters: key ids are random, so every table's range covers every
// id, and without filters each read searched a data block in each one.
func TestReadsSkipTablesByFilter(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []string
	for round := range 4 { // four overlapping tables in L0
		var ks []ledger.WrappedKey
		for range 200 {
			id := make([]byte, 16)
			rand.Read(id)
			w := make([]byte, 66)
			rand.Read(w)
			ks = append(ks, ledger.WrappedKey{ID: fmt.Sprintf("dk_%x", id), Wrapped: w})
		}
		if err := s.PutWrapped(ctx, ks); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			for _, k := range ks[:10] {
				ids = append(ids, k.ID)
			}
		}
	}
	before := s.db.Metrics().Filter.Hits
	for _, id := range ids {
		w, found, err := s.Wrapped(ctx, id)
		if err != nil || !found || len(w) != 66 {
			t.Fatalf("Wrapped(%s) = %d bytes, %v, %v", id, len(w), found, err)
		}
	}
	// The keys are in the oldest table; the filters of the three newer
	// ones answer for them, unless a key falls outside a table's range
	// (then its filter is not needed) or a filter errs.
	if hits := s.db.Metrics().Filter.Hits - before; hits < 15 {
		t.Fatalf("filters ruled out %d tables for %d reads, want at least 15 of 30", hits, len(ids))
	}
}
