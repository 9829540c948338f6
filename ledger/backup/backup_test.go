package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestValidPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"ledger/000001.sst", true},
		{"keys/MANIFEST-000001", true},
		{"keysets/signer.json", true},
		{"dev-source.secret", true},
		{"master.key", false},
		{"ledger", false},
		{"ledger/", false},
		{"../etc/passwd", false},
		{"ledger/../../x", false},
		{"/ledger/x", false},
		{"ledger//x", false},
		{"other/x", false},
		{"keysets\\x", false},
		{"", false},
	} {
		if got := validPath(tc.path); got != tc.want {
			t.Errorf("validPath(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// tarOf builds a backup-shaped tar: a manifest listing files (with their
// true hashes unless the manifest is given), then the files.
func tarOf(t *testing.T, m *Manifest, files map[string]string, order []string) []byte {
	t.Helper()
	if m == nil {
		m = &Manifest{Version: FormatVersion, LedgerID: "0123456789abcdef", Origin: "paytrail/0123456789abcdef", Root: "AAAA"}
		for _, p := range order {
			h := sha256.Sum256([]byte(files[p]))
			m.Files = append(m.Files, File{Path: p, Size: int64(len(files[p])), SHA256: hex.EncodeToString(h[:])})
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mb, _ := json.Marshal(m)
	write := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	write(ManifestName, mb)
	for _, p := range order {
		write(p, []byte(files[p]))
	}
	tw.Close()
	return buf.Bytes()
}

// A crafted backup cannot write outside the target, smuggle in files the
// manifest does not list, or pass with a file missing.
func TestRestoreRefusesCraftedBackups(t *testing.T) {
	ctx := context.Background()
	evil := tarOf(t, nil, map[string]string{"../evil": "x"}, []string{"../evil"})
	good := tarOf(t, nil, map[string]string{"keysets/a.json": "a"}, []string{"keysets/a.json"})
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tr := tar.NewReader(bytes.NewReader(good))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b := make([]byte, h.Size)
		tr.Read(b)
		tw.WriteHeader(h)
		tw.Write(b)
	}
	extra := []byte("extra")
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "keysets/b.json", Size: int64(len(extra)), Mode: 0o600})
	tw.Write(extra)
	tw.Close()
	missing := tarOf(t, &Manifest{Version: FormatVersion, LedgerID: "x", Origin: "o", Root: "AAAA",
		Files: []File{{Path: "keysets/a.json", Size: 1, SHA256: string(bytes.Repeat([]byte("0"), 64))}}}, nil, nil)
	for name, b := range map[string][]byte{"traversal": evil, "unlisted file": tb.Bytes(), "missing file": missing} {
		parent := t.TempDir()
		_, _, err := Restore(ctx, bytes.NewReader(b), filepath.Join(parent, "r"), 1)
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v, want ErrDamaged", name, err)
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 0 {
			t.Errorf("%s: left %s behind", name, ents[0].Name())
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(parent), "evil")); err == nil {
			t.Fatalf("%s: wrote outside the target", name)
		}
	}
}
