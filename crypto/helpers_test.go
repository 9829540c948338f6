package crypto

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Test card numbers from the card networks' published test ranges.
const (
	testPAN      = "4111111111111111"
	testPAN2     = "5555555555554444"
	testName     = "Zaphod Beeblebrox-Testcardholder"
	testEmail    = "zaphod.testcardholder@example.com"
	testLedgerID = "ldg_0123456789abcdef"
)

// newTestMaster creates a master key file in a fresh temporary directory
// and opens it.
func newTestMaster(t testing.TB) (*Master, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := CreateMasterFile(path); err != nil {
		t.Fatalf("CreateMasterFile: %v", err)
	}
	m, err := OpenMaster(context.Background(), MasterConfig{URI: "file://" + path})
	if err != nil {
		t.Fatalf("OpenMaster: %v", err)
	}
	return m, path
}

// newTestKeysets initializes and loads keysets in a fresh temporary
// directory under a fresh master.
func newTestKeysets(t testing.TB) (*Keysets, string, *Master) {
	t.Helper()
	m, _ := newTestMaster(t)
	dir := filepath.Join(t.TempDir(), "keysets")
	ctx := context.Background()
	if err := InitKeysets(ctx, dir, m); err != nil {
		t.Fatalf("InitKeysets: %v", err)
	}
	k, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatalf("LoadKeysets: %v", err)
	}
	return k, dir, m
}

// memKeyStore is a map-backed KeyStore for tests. It stands in for the
// ledger's Pebble key store, which is not part of this package.
type memKeyStore struct {
	mu    sync.Mutex
	keys  map[string][]byte
	reads int
}

func newMemKeyStore() *memKeyStore { return &memKeyStore{keys: make(map[string][]byte)} }

func (s *memKeyStore) Wrapped(ctx context.Context, id string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	w, ok := s.keys[id]
	return bytes.Clone(w), ok, nil
}

func (s *memKeyStore) put(id string, wrapped []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = bytes.Clone(wrapped)
}

func (s *memKeyStore) destroy(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, id)
}

func (s *memKeyStore) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// scanDirFor fails the test if any file under root contains any of secrets.
func scanDirFor(t *testing.T, root string, secrets ...string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains %q in clear", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scanning %s: %v", root, err)
	}
}
