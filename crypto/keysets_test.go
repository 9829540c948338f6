package crypto

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/prf/hmacprf"
	"github.com/tink-crypto/tink-go/v2/signature/ed25519"
)

func TestInitKeysetsIdempotent(t *testing.T) {
	ctx := context.Background()
	_, dir, m := newTestKeysets(t)

	before := make(map[string][]byte)
	for _, name := range KeysetNames() {
		p := filepath.Join(dir, name+".json")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("keyset %s not created: %v", name, err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("keyset %s mode = %04o, want 0600", name, got)
		}
		before[name], _ = os.ReadFile(p)
	}
	if err := InitKeysets(ctx, dir, m); err != nil {
		t.Fatalf("second InitKeysets: %v", err)
	}
	for _, name := range KeysetNames() {
		after, _ := os.ReadFile(filepath.Join(dir, name+".json"))
		if !bytes.Equal(before[name], after) {
			t.Errorf("second InitKeysets rewrote keyset %s", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(KeysetNames()) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("keysets dir holds %v, want only the %d keyset files", names, len(KeysetNames()))
	}

	// A missing keyset is recreated, the others are kept.
	if err := os.Remove(filepath.Join(dir, KeysetBlind+".json")); err != nil {
		t.Fatal(err)
	}
	if err := InitKeysets(ctx, dir, m); err != nil {
		t.Fatalf("InitKeysets after removing one: %v", err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, KeysetToken+".json"))
	if !bytes.Equal(before[KeysetToken], tok) {
		t.Errorf("InitKeysets rewrote an existing keyset while recreating a missing one")
	}
	if _, err := LoadKeysets(ctx, dir, m); err != nil {
		t.Errorf("LoadKeysets after recreate: %v", err)
	}
}

func TestLoadKeysetsMissing(t *testing.T) {
	m, _ := newTestMaster(t)
	_, err := LoadKeysets(context.Background(), t.TempDir(), m)
	if !errors.Is(err, ErrNoKeysets) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeysets on empty dir = %v, want ErrNoKeysets and fs.ErrNotExist", err)
	}
}

func TestKeysetFileTampering(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   error
	}{
		{
			name: "token file copied over blind",
			mutate: func(t *testing.T, dir string) {
				copyFile(t, filepath.Join(dir, "token.json"), filepath.Join(dir, "blind.json"))
			},
			want: ErrCorruptKeyset,
		},
		{
			name: "token file copied over blind and renamed inside",
			mutate: func(t *testing.T, dir string) {
				// The name check passes; the associated data does not.
				data, _ := os.ReadFile(filepath.Join(dir, "token.json"))
				data = bytes.Replace(data, []byte(`"name": "token"`), []byte(`"name": "blind"`), 1)
				writeFile(t, filepath.Join(dir, "blind.json"), data)
			},
			want: ErrWrongMasterKey,
		},
		{
			name: "ciphertext altered",
			mutate: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "signer.json")
				var kf keysetFile
				data, _ := os.ReadFile(p)
				if err := json.Unmarshal(data, &kf); err != nil {
					t.Fatal(err)
				}
				var enc map[string]any
				if err := json.Unmarshal(kf.EncryptedKeyset, &enc); err != nil {
					t.Fatal(err)
				}
				ct, _ := base64.StdEncoding.DecodeString(enc["encryptedKeyset"].(string))
				ct[len(ct)/2] ^= 1
				enc["encryptedKeyset"] = base64.StdEncoding.EncodeToString(ct)
				kf.EncryptedKeyset, _ = json.Marshal(enc)
				data, _ = json.Marshal(kf)
				writeFile(t, p, data)
			},
			want: ErrWrongMasterKey,
		},
		{
			name: "not json",
			mutate: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "datakey.json"), []byte("garbage"))
			},
			want: ErrCorruptKeyset,
		},
		{
			name: "unknown version",
			mutate: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "token.json")
				data, _ := os.ReadFile(p)
				writeFile(t, p, bytes.Replace(data, []byte(`"paytrail_keyset": 1`), []byte(`"paytrail_keyset": 9`), 1))
			},
			want: ErrCorruptKeyset,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, dir, m := newTestKeysets(t)
			tc.mutate(t, dir)
			_, err := LoadKeysets(ctx, dir, m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("LoadKeysets = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestKeysetOfWrongKindRejected(t *testing.T) {
	// A validly wrapped keyset of the wrong kind (a PRF keyset stored as the
	// signer) must not load.
	ctx := context.Background()
	_, dir, m := newTestKeysets(t)
	h, err := newKeyset(KeysetToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "signer.json")); err != nil {
		t.Fatal(err)
	}
	// writeKeyset checks its output by loading it, which must already fail.
	err = writeKeyset(ctx, &KeysetDir{dir: dir}, KeysetSigner, h, nil, m, false)
	if !errors.Is(err, ErrCorruptKeyset) {
		t.Fatalf("writing a PRF keyset as signer = %v, want ErrCorruptKeyset", err)
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	k, dir, m := newTestKeysets(t)
	before := k.Status()
	for _, name := range KeysetNames() {
		if err := k.Rotate(ctx, name); err != nil {
			t.Fatalf("Rotate(%s): %v", name, err)
		}
	}
	after := k.Status()
	reloaded, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatalf("LoadKeysets after Rotate: %v", err)
	}
	if got, want := mustJSON(t, reloaded.Status()), mustJSON(t, after); got != want {
		t.Errorf("status after reload differs from status after rotate:\n got %s\nwant %s", got, want)
	}
	for i, ks := range after {
		if len(ks.Keys) != 2 {
			t.Fatalf("keyset %s has %d keys after one rotation, want 2", ks.Name, len(ks.Keys))
		}
		old := before[i].Keys[0]
		if ks.Keys[0].ID != old.ID || ks.Keys[0].Primary {
			t.Errorf("keyset %s: old key %+v should be kept and no longer primary, got %+v", ks.Name, old, ks.Keys[0])
		}
		if !ks.Keys[1].Primary || ks.Keys[1].Status != "enabled" || ks.Keys[1].Created.IsZero() {
			t.Errorf("keyset %s: new key %+v should be primary, enabled, with a creation time", ks.Name, ks.Keys[1])
		}
	}
	if err := k.Rotate(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "unknown keyset") {
		t.Errorf("Rotate(nope) = %v, want unknown keyset error", err)
	}
}

func TestStatusHasNoKeyMaterial(t *testing.T) {
	ctx := context.Background()
	k, dir, _ := newTestKeysets(t)
	for _, name := range KeysetNames() {
		if err := k.Rotate(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	status := mustJSON(t, k.Status())
	for _, field := range []string{"value", "key_data", "keyData", "key_material", "keyMaterial"} {
		if strings.Contains(status, field) {
			t.Errorf("status JSON has a %q field: %s", field, status)
		}
	}
	secrets := keyMaterial(t, k)
	if len(secrets) != 2*len(KeysetNames()) {
		t.Fatalf("found %d keys, want %d", len(secrets), 2*len(KeysetNames()))
	}
	var encoded []string
	for _, s := range secrets {
		encoded = append(encoded, string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s),
			base64.RawStdEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s))
	}
	for _, e := range encoded {
		if strings.Contains(status, e) {
			t.Errorf("status JSON contains key material")
		}
	}
	// The keyset files hold the same keys only encrypted.
	scanDirFor(t, dir, encoded...)
}

// keyMaterial returns the secret bytes of every key in k. Test only.
func keyMaterial(t *testing.T, k *Keysets) [][]byte {
	t.Helper()
	var out [][]byte
	st := k.state.Load()
	for _, name := range KeysetNames() {
		h := st.handles[name]
		for i := range h.Len() {
			e, err := h.Entry(i)
			if err != nil {
				t.Fatal(err)
			}
			switch key := e.Key().(type) {
			case *hmacprf.Key:
				out = append(out, key.KeyBytes().Data(insecuresecretdataaccess.Token{}))
			case *aesgcm.Key:
				out = append(out, key.KeyBytes().Data(insecuresecretdataaccess.Token{}))
			case *ed25519.PrivateKey:
				out = append(out, key.PrivateKeyBytes().Data(insecuresecretdataaccess.Token{}))
			default:
				t.Fatalf("unexpected key type %T", key)
			}
		}
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeyFilesWithOpenModesAreRefused: a keyset or sealed secret file
// that group or others may read is refused, naming the file and its mode,
// as the master key file is. Their keys may already have been copied.
func TestKeyFilesWithOpenModesAreRefused(t *testing.T) {
	ctx := context.Background()
	_, dir, m := newTestKeysets(t)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		path := filepath.Join(dir, KeysetSigner+".json")
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeysets(ctx, dir, m)
		want := fmt.Sprintf("failed to open keyset file %s: mode %04o gives access to group or others, want 0600", path, mode)
		if err == nil || err.Error() != want {
			t.Errorf("mode %04o: LoadKeysets = %v, want %q", mode, err, want)
		}
	}
	if err := os.Chmod(filepath.Join(dir, KeysetSigner+".json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeysets(ctx, dir, m); err != nil {
		t.Fatalf("mode 0600: %v", err)
	}

	secret := filepath.Join(t.TempDir(), "dev-source.secret")
	if err := WriteSecretFile(ctx, m, secret, "dev webhook secret", []byte("whsec_x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecretFile(ctx, m, secret, "dev webhook secret"); err == nil || !strings.Contains(err.Error(), "mode 0644 gives access to group or others") {
		t.Errorf("ReadSecretFile of a 0644 file = %v, want a refusal", err)
	}
}
