package crypto

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// labelSecretFile is the associated-data domain of secrets sealed by
// WriteSecretFile, so such a file cannot be passed off as a keyset.
const labelSecretFile = "paytrail/secret-file/v1"

// maxSecretFileSize caps what ReadSecretFile reads: the secrets it is for
// are well under a kilobyte.
const maxSecretFileSize = 64 << 10

// WriteSecretFile encrypts secret with the master key (associated data: the
// domain label and name) and writes it atomically to path with mode 0600. It
// is for small operational secrets that must survive restarts but never sit
// on disk in clear, such as the development webhook source's secret.
func WriteSecretFile(ctx context.Context, m *Master, path, name string, secret []byte) error {
	ct, err := m.aead.EncryptWithContext(ctx, secret, encodeParts(labelSecretFile, name))
	if err != nil {
		return fmt.Errorf("failed to seal %s: %w", name, err)
	}
	return writeFileAtomic(filepath.Dir(path), filepath.Base(path), ct, true)
}

// ReadSecretFile decrypts a file written by WriteSecretFile. A missing file
// is an error wrapping fs.ErrNotExist; a file sealed by another master key
// or under another name is ErrWrongMasterKey; one that group or others may
// access is refused.
func ReadSecretFile(ctx context.Context, m *Master, path, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	if err := checkPrivate(fi, name+" file", path); err != nil {
		return nil, err
	}
	ct, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	if len(ct) > maxSecretFileSize {
		return nil, fmt.Errorf("failed to read %s: larger than %d bytes", name, maxSecretFileSize)
	}
	pt, err := m.aead.DecryptWithContext(ctx, ct, encodeParts(labelSecretFile, name))
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", name, ErrWrongMasterKey)
	}
	return pt, nil
}
