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
