package crypto

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeTransit is an in-process stand-in for Vault's transit secrets engine
// (an external service, not paytrail code): AES-256-GCM keys by name,
// ciphertexts "vault:v1:<base64(nonce||ct)>", associated data from the
// "associated_data" parameter, 400 for a ciphertext that does not open and
// 403 for a wrong token, as Vault answers.
type fakeTransit struct {
	token string
	mu    sync.Mutex
	keys  map[string]cipher.AEAD
}

func newFakeTransit(t *testing.T, token string) (*httptest.Server, *fakeTransit) {
	ft := &fakeTransit{token: token, keys: make(map[string]cipher.AEAD)}
	srv := httptest.NewTLSServer(ft)
	t.Cleanup(srv.Close)
	return srv, ft
}

func (f *fakeTransit) key(name string) cipher.AEAD {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.keys[name]; ok {
		return a
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	b, _ := aes.NewCipher(raw)
	a, _ := cipher.NewGCM(b)
	f.keys[name] = a // transit creates keys on first encrypt (upsert)
	return a
}

func (f *fakeTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
	}
	if r.Header.Get("X-Vault-Token") != f.token {
		fail(http.StatusForbidden, "permission denied")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	if r.Method != http.MethodPost || len(parts) != 3 || parts[0] != "transit" {
		fail(http.StatusNotFound, "no handler for route")
		return
	}
	var req map[string]string
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(http.StatusBadRequest, "bad json")
		return
	}
	ad, _ := base64.StdEncoding.DecodeString(req["associated_data"])
	a := f.key(parts[2])
	switch parts[1] {
	case "encrypt":
		pt, err := base64.StdEncoding.DecodeString(req["plaintext"])
		if err != nil {
			fail(http.StatusBadRequest, "plaintext is not base64")
			return
		}
		nonce := make([]byte, a.NonceSize())
		rand.Read(nonce)
		ct := a.Seal(nonce, nonce, pt, ad)
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(ct)}})
	case "decrypt":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(req["ciphertext"], "vault:v1:"))
		if err != nil || len(raw) < a.NonceSize() {
			fail(http.StatusBadRequest, "invalid ciphertext")
			return
		}
		pt, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], ad)
		if err != nil {
			fail(http.StatusBadRequest, "cipher: message authentication failed")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{"plaintext": base64.StdEncoding.EncodeToString(pt)}})
	default:
		fail(http.StatusNotFound, "no handler for route")
	}
}

func TestVaultMaster(t *testing.T) {
	ctx := context.Background()
	srv, _ := newFakeTransit(t, "s.good")
	host := strings.TrimPrefix(srv.URL, "https://")
	cfg := MasterConfig{
		URI:             "hcvault://" + host + "/transit/keys/paytrail",
		VaultToken:      "s.good",
		VaultHTTPClient: srv.Client(),
	}
	m, err := OpenMaster(ctx, cfg)
	if err != nil {
		t.Fatalf("OpenMaster(vault): %v", err)
	}
	dir := filepath.Join(t.TempDir(), "keysets")
	if err := InitKeysets(ctx, dir, m); err != nil {
		t.Fatalf("InitKeysets under vault master: %v", err)
	}
	k, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatalf("LoadKeysets under vault master: %v", err)
	}
	if err := k.Rotate(ctx, KeysetToken); err != nil {
		t.Fatalf("Rotate under vault master: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "token.json"))
	var kf keysetFile
	var enc struct {
		EncryptedKeyset []byte `json:"encryptedKeyset"`
	}
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(kf.EncryptedKeyset, &enc); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc.EncryptedKeyset, []byte("vault:v1:")) {
		t.Errorf("keyset file does not hold a vault ciphertext")
	}

	// Another transit key is another master.
	other := cfg
	other.URI = "hcvault://" + host + "/transit/keys/someone-else"
	m2, err := OpenMaster(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeysets(ctx, dir, m2); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("LoadKeysets with another vault key = %v, want ErrWrongMasterKey", err)
	}

	// A wrong token fails at OpenMaster, clearly, and without the token.
	bad := cfg
	bad.VaultToken = "s.wrong-token-value"
	_, err = OpenMaster(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), bad.VaultToken) {
		t.Errorf("OpenMaster with bad token = %v, want a 403 error without the token", err)
	}

	// VaultAddress overrides the scheme and host.
	viaAddr := cfg
	viaAddr.URI = "hcvault://vault.invalid/transit/keys/paytrail"
	viaAddr.VaultAddress = srv.URL
	if _, err := OpenMaster(ctx, viaAddr); err != nil {
		t.Errorf("OpenMaster with VaultAddress: %v", err)
	}

	// A canceled context stops the request.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := OpenMaster(cctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("OpenMaster with canceled context = %v, want context.Canceled", err)
	}
}

// TestRealVault runs against a real Vault when PAYTRAIL_TEST_VAULT_ADDR
// (e.g. http://127.0.0.1:8200) and VAULT_TOKEN are set. It enables nothing:
// the transit engine must be mounted at transit/; the key
// PAYTRAIL_TEST_VAULT_KEY (default paytrail-test) is created if missing.
func TestRealVault(t *testing.T) {
	addr, token := os.Getenv("PAYTRAIL_TEST_VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		t.Skip("PAYTRAIL_TEST_VAULT_ADDR and VAULT_TOKEN not set")
	}
	name := os.Getenv("PAYTRAIL_TEST_VAULT_KEY")
	if name == "" {
		name = "paytrail-test"
	}
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	// Create the key (aes256-gcm96); an existing key is left as it is.
	req, _ := http.NewRequest(http.MethodPost, addr+"/v1/transit/keys/"+name, strings.NewReader(`{"type":"aes256-gcm96"}`))
	req.Header.Set("X-Vault-Token", token)
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatalf("creating transit key: %v", err)
	} else {
		res.Body.Close()
	}

	ctx := context.Background()
	m, err := OpenMaster(ctx, MasterConfig{
		URI:          "hcvault://" + u.Host + "/transit/keys/" + name,
		VaultToken:   token,
		VaultAddress: addr,
	})
	if err != nil {
		t.Fatalf("OpenMaster: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "keysets")
	if err := InitKeysets(ctx, dir, m); err != nil {
		t.Fatalf("InitKeysets: %v", err)
	}
	k, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatalf("LoadKeysets: %v", err)
	}
	if _, err := k.Tokenize(testPAN); err != nil {
		t.Fatal(err)
	}
	fileMaster, _ := newTestMaster(t)
	if _, err := LoadKeysets(ctx, dir, fileMaster); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("LoadKeysets of vault-wrapped keysets with a file master = %v, want ErrWrongMasterKey", err)
	}
}
