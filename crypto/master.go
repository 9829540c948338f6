package crypto

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

const (
	// masterFileVersion is the value of "paytrail_master_key" in a master
	// key file.
	masterFileVersion = 1
	// masterKeySize is the AES-256 key size.
	masterKeySize = 32
	// maxMasterFileSize caps what OpenMaster reads: a valid file is ~90 bytes.
	maxMasterFileSize = 4 << 10
)

// errAuthFailed is returned by a master AEAD when a ciphertext does not
// authenticate, as opposed to a transport or permission failure. Keyset
// loading turns it into ErrWrongMasterKey.
var errAuthFailed = errors.New("ciphertext did not authenticate")

// MasterConfig names the master key and carries what is needed to reach it.
// Nothing in this package reads the environment: the caller (cmd/paytrail)
// fills this from flags, environment or its config.
type MasterConfig struct {
	// URI names the master key:
	//   file:///abs/path/master.key            a file written by CreateMasterFile
	//   hcvault://HOST[:PORT]/MOUNT/keys/NAME   a HashiCorp Vault transit key
	// The Vault key must be an AEAD key type (aes256-gcm96 is Vault's
	// default) without key derivation, since paytrail sends associated data.
	URI string

	// VaultToken authenticates to Vault; required for hcvault URIs.
	VaultToken string

	// VaultAddress, when set, replaces the base address derived from URI
	// ("https://HOST[:PORT]"), e.g. "http://127.0.0.1:8200" for a Vault
	// development server. The default is HTTPS.
	VaultAddress string

	// VaultNamespace, when set, is sent as X-Vault-Namespace (Vault
	// Enterprise namespaces).
	VaultNamespace string

	// VaultHTTPClient is used for requests to Vault. The default is a client
	// with a 30 second timeout and Go's default TLS settings.
	VaultHTTPClient *http.Client
}

// Master is the master key: an AEAD that wraps keysets at rest. It is only
// used when keysets are created, loaded or rotated. A Master is safe for
// concurrent use.
type Master struct {
	kind string // "file" or "hcvault", for error messages
	aead tink.AEADWithContext
}

// String names the kind of master key ("file master key", "hcvault master
// key"); it never includes key material or the Vault token.
func (m *Master) String() string { return m.kind + " master key" }

// OpenMaster returns the master AEAD named by cfg.URI.
//
// For a file URI the path must be absolute and the file must not be
// readable or writable by group or others (mode 0600 or stricter).
//
// For an hcvault URI, OpenMaster makes one encrypt and one decrypt request
// with a fixed probe value under ctx, so a bad token, a missing key or an
// unreachable Vault fails here and not on first use. Requests speak Vault's
// transit API directly (see vault.go); ciphertexts are Vault's "vault:vN:…"
// strings, the same as tink-go-hcvault's AEAD produces.
func OpenMaster(ctx context.Context, cfg MasterConfig) (*Master, error) {
	u, err := url.Parse(cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("failed to parse master key uri: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("failed to open master key: file uri must have no host, as in file:///abs/path")
		}
		a, err := readMasterFile(u.Path)
		if err != nil {
			return nil, err
		}
		return &Master{kind: "file", aead: localAEAD{a}}, nil
	case "hcvault":
		v, err := openKMSMaster(cfg.URI, cfg)
		if err != nil {
			return nil, err
		}
		m := &Master{kind: "hcvault", aead: v}
		if err := m.probe(ctx); err != nil {
			return nil, err
		}
		return m, nil
	default:
		return nil, fmt.Errorf("failed to open master key: unsupported uri scheme %q (want file or hcvault)", u.Scheme)
	}
}

// probe checks a round trip through the master AEAD.
func (m *Master) probe(ctx context.Context) error {
	const probe = "paytrail master key probe"
	ad := encodeParts(probe)
	ct, err := m.aead.EncryptWithContext(ctx, []byte(probe), ad)
	if err != nil {
		return fmt.Errorf("failed to encrypt with %s master key: %w", m.kind, err)
	}
	pt, err := m.aead.DecryptWithContext(ctx, ct, ad)
	if err != nil {
		return fmt.Errorf("failed to decrypt with %s master key: %w", m.kind, err)
	}
	if string(pt) != probe {
		return fmt.Errorf("failed to check %s master key: round trip returned different bytes", m.kind)
	}
	return nil
}

// masterFile is the JSON form of a master key file.
type masterFile struct {
	Version   int    `json:"paytrail_master_key"`
	AES256GCM string `json:"aes256gcm"`
}

// CreateMasterFile writes a new random AES-256 master key to path, a JSON
// object {"paytrail_master_key":1,"aes256gcm":"<standard base64 of 32
// bytes>"} followed by a newline, with mode 0600. It fails if path exists
// (O_EXCL). The file and its parent directory are fsynced before it returns,
// so a master key that was reported created survives a crash.
//
// Keep the file out of the data directory in production: whoever has both
// can read every keyset.
func CreateMasterFile(path string) (err error) {
	raw := make([]byte, masterKeySize)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("failed to generate master key: %w", err)
	}
	body, err := json.Marshal(masterFile{Version: masterFileVersion, AES256GCM: base64.StdEncoding.EncodeToString(raw)})
	clear(raw)
	if err != nil {
		return fmt.Errorf("failed to encode master key: %w", err)
	}
	body = append(body, '\n')
	defer clear(body)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		// Wrapped so callers can tell an existing file (fs.ErrExist).
		return fmt.Errorf("failed to create master key file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := f.Write(body); err != nil {
		return fmt.Errorf("failed to write master key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to sync master key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to close master key file: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	return nil
}

// readMasterFile reads and checks a master key file and returns its AEAD.
func readMasterFile(path string) (tink.AEAD, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("failed to open master key: file path must be absolute, as in file:///abs/path")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat master key file: %w", err)
	}
	if err := checkPrivate(fi, "master key file", path); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(f, maxMasterFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read master key file: %w", err)
	}
	defer clear(body)
	if len(body) > maxMasterFileSize {
		return nil, fmt.Errorf("failed to parse master key file %s: larger than %d bytes", path, maxMasterFileSize)
	}
	var mf masterFile
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&mf); err != nil {
		// The json error is dropped: a syntax error quotes the offending
		// byte, which may be part of the key.
		return nil, fmt.Errorf(`failed to parse master key file %s: want a JSON object {"paytrail_master_key":1,"aes256gcm":"<base64>"}`, path)
	}
	if dec.More() {
		return nil, fmt.Errorf("failed to parse master key file %s: trailing data", path)
	}
	if mf.Version != masterFileVersion {
		return nil, fmt.Errorf("failed to parse master key file %s: unsupported version %d", path, mf.Version)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(mf.AES256GCM))
	if err != nil || len(raw) != masterKeySize {
		return nil, fmt.Errorf("failed to parse master key file %s: aes256gcm must be base64 of %d bytes", path, masterKeySize)
	}
	defer clear(raw)
	return newAESGCM(raw, aesgcm.VariantNoPrefix)
}

// newAESGCM returns a Tink AES-256-GCM AEAD for raw key bytes through
// Tink's key-object API (no cleartext keyset is involved).
func newAESGCM(raw []byte, variant aesgcm.Variant) (tink.AEAD, error) {
	params, err := aesgcm.NewParameters(aesgcm.ParametersOpts{
		KeySizeInBytes: masterKeySize,
		IVSizeInBytes:  12,
		TagSizeInBytes: 16,
		Variant:        variant,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to make aes-gcm parameters: %w", err)
	}
	key, err := aesgcm.NewKey(secretdata.NewBytesFromData(raw, insecuresecretdataaccess.Token{}), 0, params)
	if err != nil {
		return nil, fmt.Errorf("failed to make aes-gcm key: %w", err)
	}
	a, err := aesgcm.NewAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("failed to make aes-gcm aead: %w", err)
	}
	return a, nil
}

// localAEAD adapts an in-process tink.AEAD to tink.AEADWithContext and
// reports every decryption failure as errAuthFailed (a local AES-GCM can
// fail for no other reason).
type localAEAD struct{ a tink.AEAD }

func (l localAEAD) EncryptWithContext(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l.a.Encrypt(plaintext, associatedData)
}

func (l localAEAD) DecryptWithContext(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pt, err := l.a.Decrypt(ciphertext, associatedData)
	if err != nil {
		return nil, errAuthFailed
	}
	return pt, nil
}
