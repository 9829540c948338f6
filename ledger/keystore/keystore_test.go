package keystore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
)

// TestShreddingSurvivesRestartAndCompaction stores real wrapped Tink data
// keys, destroys one, and checks that after a restart the key cannot be
// unwrapped with the master key in hand and its wrapped bytes are in no live
// SSTable, while the other key still works.
func TestShreddingSurvivesRestartAndCompaction(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	masterPath := filepath.Join(data, "master.key")
	if err := crypto.CreateMasterFile(masterPath); err != nil {
		t.Fatal(err)
	}
	m, err := crypto.OpenMaster(ctx, crypto.MasterConfig{URI: "file://" + masterPath})
	if err != nil {
		t.Fatal(err)
	}
	ksDir := filepath.Join(data, "keysets")
	if err := crypto.InitKeysets(ctx, ksDir, m); err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.LoadKeysets(ctx, ksDir, m)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "keys")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	dks := crypto.NewDataKeys(keys, s, 16)
	doomed, doomedWrapped, err := dks.New()
	if err != nil {
		t.Fatal(err)
	}
	kept, keptWrapped, err := dks.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutWrapped(ctx, []ledger.WrappedKey{{ID: doomed.ID(), Wrapped: doomedWrapped}, {ID: kept.ID(), Wrapped: keptWrapped}}); err != nil {
		t.Fatal(err)
	}
	// Force the wrapped key into an SSTable before destroying it.
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(ctx, []string{doomed.ID()}); err != nil {
		t.Fatal(err)
	}
	dks.Forget(doomed.ID())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dks = crypto.NewDataKeys(keys, s, 16)
	if _, err := dks.Get(ctx, doomed.ID()); !errors.Is(err, crypto.ErrDataKeyDestroyed) {
		t.Fatalf("Get(destroyed) err = %v, want ErrDataKeyDestroyed", err)
	}
	if k, err := dks.Get(ctx, kept.ID()); err != nil || k.ID() != kept.ID() {
		t.Fatalf("Get(kept) = %v, %v", k, err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sstables (%v)", err)
	}
	foundKept := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, doomedWrapped) {
			t.Fatalf("destroyed wrapped key still in live sstable %s", filepath.Base(f))
		}
		foundKept = foundKept || bytes.Contains(b, keptWrapped)
	}
	if !foundKept {
		t.Fatal("the kept key is in no sstable: the scan cannot see stored keys, so it proves nothing")
	}
}

func TestPutAndGet(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := make([]byte, 64)
	rand.Read(w)
	if err := s.PutWrapped(ctx, []ledger.WrappedKey{{ID: "dk_1", Wrapped: w}}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Wrapped(ctx, "dk_1")
	if err != nil || !ok || !bytes.Equal(got, w) {
		t.Fatalf("Wrapped(dk_1) = %x, %v, %v", got, ok, err)
	}
	if _, ok, err := s.Wrapped(ctx, "dk_10"); ok || err != nil {
		t.Fatalf("Wrapped(dk_10) found=%v err=%v, want not found", ok, err)
	}
	if err := s.PutWrapped(ctx, []ledger.WrappedKey{{ID: "", Wrapped: w}}); err == nil {
		t.Fatal("empty id accepted")
	}
}
