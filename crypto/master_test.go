package crypto

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateMasterFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := CreateMasterFile(path); err != nil {
		t.Fatalf("CreateMasterFile: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(0o600); got != want {
		t.Errorf("mode = %04o, want %04o", got, want)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mf map[string]any
	if err := json.Unmarshal(data, &mf); err != nil {
		t.Fatalf("master file is not JSON: %v", err)
	}
	if got := mf["paytrail_master_key"]; got != float64(1) {
		t.Errorf("paytrail_master_key = %v, want 1", got)
	}
	raw, err := base64.StdEncoding.DecodeString(mf["aes256gcm"].(string))
	if err != nil || len(raw) != 32 {
		t.Errorf("aes256gcm is not base64 of 32 bytes (len %d, err %v)", len(raw), err)
	}

	if _, err := OpenMaster(context.Background(), MasterConfig{URI: "file://" + path}); err != nil {
		t.Errorf("OpenMaster after create: %v", err)
	}
	if err := CreateMasterFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second CreateMasterFile = %v, want fs.ErrExist", err)
	}
	// The failed second attempt must not have touched the first key.
	again, err := os.ReadFile(path)
	if err != nil || string(again) != string(data) {
		t.Errorf("master file changed by a failed CreateMasterFile")
	}
}

func TestOpenMasterErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	good := `{"paytrail_master_key":1,"aes256gcm":"` + key + `"}`
	for _, tc := range []struct {
		name    string
		cfg     MasterConfig
		wantErr string
		wantIs  error
	}{
		{"unsupported scheme", MasterConfig{URI: "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k"}, "unsupported uri scheme", nil},
		{"no scheme", MasterConfig{URI: "/abs/master.key"}, "unsupported uri scheme", nil},
		{"relative path", MasterConfig{URI: "file://relative/master.key"}, "must have no host", nil},
		{"missing file", MasterConfig{URI: "file://" + filepath.Join(dir, "nope.key")}, "failed to open master key file", fs.ErrNotExist},
		{"group readable", MasterConfig{URI: "file://" + write("open.key", good, 0o644)}, "gives access to group or others", nil},
		{"not json", MasterConfig{URI: "file://" + write("junk.key", "not json at all", 0o600)}, "want a JSON object", nil},
		{"unknown field", MasterConfig{URI: "file://" + write("extra.key", `{"paytrail_master_key":1,"aes256gcm":"`+key+`","x":1}`, 0o600)}, "want a JSON object", nil},
		{"wrong version", MasterConfig{URI: "file://" + write("v2.key", `{"paytrail_master_key":2,"aes256gcm":"`+key+`"}`, 0o600)}, "unsupported version", nil},
		{"short key", MasterConfig{URI: "file://" + write("short.key", `{"paytrail_master_key":1,"aes256gcm":"AAAA"}`, 0o600)}, "base64 of 32 bytes", nil},
		{"trailing data", MasterConfig{URI: "file://" + write("trail.key", good+`{}`, 0o600)}, "trailing data", nil},
		{"vault without token", MasterConfig{URI: "hcvault://127.0.0.1:8200/transit/keys/paytrail"}, "no vault token", nil},
		{"vault bad path", MasterConfig{URI: "hcvault://127.0.0.1:8200/transit/paytrail", VaultToken: "t"}, "want hcvault://", nil},
		{"vault empty segment", MasterConfig{URI: "hcvault://127.0.0.1:8200//keys/paytrail", VaultToken: "t"}, "empty or relative", nil},
		{"vault bad address", MasterConfig{URI: "hcvault://127.0.0.1:8200/transit/keys/p", VaultToken: "t", VaultAddress: "ftp://x"}, "want http(s)://", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenMaster(context.Background(), tc.cfg)
			if err == nil {
				t.Fatalf("OpenMaster succeeded, want error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error = %v, want errors.Is %v", err, tc.wantIs)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error contains the key")
			}
		})
	}
}

func TestWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	_, dir, _ := newTestKeysets(t)
	other, _ := newTestMaster(t)

	_, err := LoadKeysets(ctx, dir, other)
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("LoadKeysets with another master = %v, want ErrWrongMasterKey", err)
	}
	if err := InitKeysets(ctx, dir, other); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("InitKeysets with another master on existing keysets = %v, want ErrWrongMasterKey", err)
	}
}

func TestSecretFile(t *testing.T) {
	ctx := context.Background()
	m, _ := newTestMaster(t)
	path := filepath.Join(t.TempDir(), "dev-source.secret")
	secret := []byte("whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IQ")
	if err := WriteSecretFile(ctx, m, path, "dev source", secret); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("secret file holds the secret in clear")
	}
	got, err := ReadSecretFile(ctx, m, path, "dev source")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ReadSecretFile = %q, %v", got, err)
	}
	if _, err := ReadSecretFile(ctx, m, path, "other name"); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("other name: err = %v, want ErrWrongMasterKey", err)
	}
	other, _ := newTestMaster(t)
	if _, err := ReadSecretFile(ctx, other, path, "dev source"); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("other master: err = %v, want ErrWrongMasterKey", err)
	}
}
