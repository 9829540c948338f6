package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/paytrail/paytrail/ledger"
)

// ErrDamaged means a backup file is not what a backup wrote: truncated,
// altered, or not a paytrail backup. Its message says what is wrong in
// plain words, never quoting file contents.
var ErrDamaged = errors.New("backup file is damaged")

// ErrNotEmpty is returned by Restore for a target directory that holds
// anything.
var ErrNotEmpty = errors.New("target directory is not empty")

func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, args...))
}

// Check reads a whole backup from r and checks it as Restore does (the
// manifest first, every file it lists and nothing else, each with its
// size and SHA-256), writing nothing. It returns the manifest.
func Check(ctx context.Context, r io.Reader) (*Manifest, error) {
	return read(ctx, r, func(_ string, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
}

// read walks a backup, calling file for each listed file with a reader of
// its contents, and checks it (see Check).
func read(ctx context.Context, r io.Reader, file func(p string, r io.Reader) error) (*Manifest, error) {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		return nil, damaged("no manifest: %s", plainTarError(err))
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg || hdr.Size > maxManifestSize {
		return nil, damaged("the first file is not %s: not a paytrail backup", ManifestName)
	}
	mb, err := io.ReadAll(tr)
	if err != nil {
		return nil, damaged("manifest unreadable: %s", plainTarError(err))
	}
	m, err := parseManifest(mb)
	if err != nil {
		return nil, err
	}
	want := make(map[string]File, len(m.Files))
	for _, f := range m.Files {
		want[f.Path] = f
	}
	seen := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, damaged("after %d of %d files: %s", seen, len(m.Files), plainTarError(err))
		}
		f, ok := want[hdr.Name]
		if !ok || hdr.Typeflag != tar.TypeReg {
			return nil, damaged("it holds a file the manifest does not list, or one twice")
		}
		delete(want, hdr.Name)
		if hdr.Size != f.Size {
			return nil, damaged("%s has %d bytes, the manifest says %d", f.Path, hdr.Size, f.Size)
		}
		h := sha256.New()
		if err := file(f.Path, io.TeeReader(tr, h)); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, damaged("%s is cut short: the file is truncated", f.Path)
			}
			return nil, err
		}
		if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
			return nil, damaged("%s does not match its SHA-256 in the manifest", f.Path)
		}
		seen++
	}
	if len(want) > 0 {
		return nil, damaged("%d of %d files are missing: the file is truncated", len(want), len(m.Files))
	}
	return m, nil
}

func plainTarError(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "the file is truncated"
	}
	return "not a tar file"
}

// parseManifest decodes and checks a manifest strictly.
func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || dec.More() {
		return nil, damaged("manifest is not valid JSON")
	}
	if m.Version != FormatVersion {
		return nil, damaged("manifest version %d, this build reads %d", m.Version, FormatVersion)
	}
	if _, err := base64.StdEncoding.DecodeString(m.Root); err != nil || m.LedgerID == "" || m.Origin == "" {
		return nil, damaged("manifest lacks the ledger id, origin or root")
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if !validPath(f.Path) || seen[f.Path] || f.Size < 0 || len(f.SHA256) != 64 {
			return nil, damaged("manifest lists a bad file entry")
		}
		seen[f.Path] = true
	}
	return &m, nil
}

// validPath accepts the relative paths a backup writes: under ledger/,
// keys/ or keysets/, or the development secret, never climbing out.
func validPath(p string) bool {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." || strings.Contains(p, "\\") {
		return false
	}
	if p == "dev-source.secret" {
		return true
	}
	top, rest, ok := strings.Cut(p, "/")
	return ok && rest != "" && (top == "ledger" || top == "keys" || top == "keysets")
}

// Restore writes the backup read from r into dir, which must not exist or
// be empty ([ErrNotEmpty] otherwise), and returns its manifest. Files are
// written into a temporary sibling directory (mode 0700, files 0600,
// fsynced) and checked as Check does; the ledger copy must then have the
// manifest's id, size and root. Only then is the directory moved to dir.
// A damaged or truncated backup gives an error wrapping [ErrDamaged] and
// leaves dir as it was.
//
// The restored ledger is given a new origin (see ledger.NewOrigin), so
// that it can never sign a checkpoint that forks the log it was copied
// from, which may have gone on after the backup; policy is the privacy
// policy version of the admin entry recording the restore.
func Restore(ctx context.Context, r io.Reader, dir string, policy int) (_ *Manifest, origin string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, "", fmt.Errorf("%w: %s", ErrNotEmpty, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("failed to inspect %s: %w", dir, err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, "", err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return nil, "", fmt.Errorf("failed to create a staging directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	dirs := map[string]bool{}
	m, err := read(ctx, r, func(p string, r io.Reader) error {
		dst := filepath.Join(tmp, filepath.FromSlash(p))
		d := filepath.Dir(dst)
		if !dirs[d] {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			dirs[d] = true
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return f.Close()
	})
	if err != nil {
		return nil, "", err
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return nil, "", err
		}
	}
	if err := checkLedger(ctx, tmp, m); err != nil {
		return nil, "", err
	}
	origin, err = ledger.NewOrigin(ctx, ledger.Options{Dir: filepath.Join(tmp, "ledger")}, policy, map[string]string{
		"backup_created": m.Created.Format("2006-01-02T15:04:05Z"), "backup_root": m.Root,
	})
	if err != nil {
		return nil, "", err
	}
	// A ledger opened for writing leaves its lock file; the data dir's
	// own lock is made by the first command that opens it.
	if err := os.Rename(tmp, dir); err != nil {
		return nil, "", fmt.Errorf("failed to move the restored data dir into place: %w", err)
	}
	if err := syncDir(parent); err != nil {
		return nil, "", err
	}
	return m, origin, nil
}

// checkLedger opens the restored ledger read-only and compares it with the
// manifest.
func checkLedger(ctx context.Context, dir string, m *Manifest) (err error) {
	defer ledger.RecoverDamaged(&err)
	l, err := ledger.Open(ctx, ledger.Options{Dir: filepath.Join(dir, "ledger"), ReadOnly: true})
	if err != nil {
		return damaged("the ledger copy does not open: %v", err)
	}
	defer l.Close()
	root, err := l.RootAt(l.Size())
	if err != nil {
		return damaged("the ledger copy's tree does not load: %v", err)
	}
	if l.ID() != m.LedgerID || l.Size() != m.Size || base64.StdEncoding.EncodeToString(root) != m.Root {
		return damaged("the ledger copy is not the one the manifest describes (id, size or root differ)")
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
