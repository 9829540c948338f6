// Package backup takes online backups of a paytrail data dir and restores
// them.
//
// # What a backup holds
//
// A backup is a tar file: manifest.json first (the ledger id, origin, size,
// root, the newest checkpoint in the copy, and the size and SHA-256 of
// every other file), then a Pebble checkpoint of the ledger (ledger/), one
// of the key store (keys/), the wrapped keysets (keysets/) and, for a
// development data dir, the sealed development webhook secret. It never
// holds the master key: whoever restores it needs the master key the
// keysets are wrapped by.
//
// # Consistency
//
// The ledger is snapshotted before the key store. Every data key is stored
// before any entry names it, so every key an entry of the ledger copy
// names is in the key store copy, unless an erasure destroyed it between
// the two snapshots; to rule that out, erasures hold Source.Hold for
// reading from their entry to the end of the key destruction, and Take
// holds it for writing across both snapshots. A backup therefore holds an
// erasure whole (entry, search rows gone, keys gone) or not at all; an
// erasure a crash interrupted before the backup is in it as the ledger's
// pending shred row, which the restored server finishes at start. The
// keysets are copied while no rotation can run (crypto.Keysets.StoredKeysets),
// so every key in the copy is wrapped by a key of the copied keysets.
package backup

import (
	"archive/tar"
	"context"
	"crypto/rand"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// FormatVersion is the value of "paytrail_backup" in the manifest.
const FormatVersion = 1

// ManifestName is the first file of every backup.
const ManifestName = "manifest.json"

// maxManifestSize caps the manifest a restore reads: a 1M-entry ledger
// has a few hundred files.
const maxManifestSize = 16 << 20

// Manifest describes a backup.
type Manifest struct {
	Version  int       `json:"paytrail_backup"`
	Created  time.Time `json:"created"`
	LedgerID string    `json:"ledger_id"`
	Origin   string    `json:"origin"`
	// Size is the number of entries in the ledger copy, Root its tree's
	// root hash (standard base64).
	Size uint64 `json:"size"`
	Root string `json:"root"`
	// Checkpoint is the newest signed checkpoint note in the copy (empty
	// if there is none yet).
	Checkpoint     string `json:"checkpoint"`
	CheckpointSize uint64 `json:"checkpoint_size"`
	Files          []File `json:"files"`
}

// File is one file of a backup: a slash-separated path under the data dir.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Source is the open data dir a backup is taken from.
type Source struct {
	Dir      string // the data dir; the snapshots are made in a temporary directory inside it
	Ledger   *ledger.Ledger
	KeyStore *keystore.Store
	Keys     *crypto.Keysets
	// Hold is held for writing across the two snapshots; erasures hold it
	// for reading (see the package doc). Nil holds nothing.
	Hold sync.Locker
	// MaxRate caps the bytes per second read to hash the snapshot and
	// written to stream it, so that a large backup leaves the server's
	// CPU and disk to ingestion. 0 means no cap.
	MaxRate int64
}

// TempPrefix starts the name of a backup's temporary directory in the
// data dir; datadir.Open removes any that a crash left behind.
const TempPrefix = datadir.BackupTempPrefix

// Snapshot is a backup taken and ready to stream. Close removes it.
type Snapshot struct {
	dir      string
	manifest Manifest
	rate     int64
}

// Take snapshots the data dir of src into a temporary directory inside
// it and computes the manifest. It does not stop appends: they wait only
// while the two Pebble checkpoints are made.
func Take(ctx context.Context, src Source) (_ *Snapshot, err error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tmp := filepath.Join(src.Dir, TempPrefix+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create backup directory: %w", err)
	}
	s := &Snapshot{dir: tmp, rate: src.MaxRate}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	err = src.Keys.StoredKeysets(ctx, func(files map[string][]byte) error {
		if src.Hold != nil {
			src.Hold.Lock()
			defer src.Hold.Unlock()
		}
		// Ledger first: see the package doc.
		if err := src.Ledger.Snapshot(filepath.Join(tmp, "ledger")); err != nil {
			return err
		}
		if err := src.KeyStore.Snapshot(filepath.Join(tmp, "keys")); err != nil {
			return err
		}
		ks := filepath.Join(tmp, "keysets")
		if err := os.Mkdir(ks, 0o700); err != nil {
			return err
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(ks, name+".json"), b, 0o600); err != nil {
				return fmt.Errorf("failed to copy keyset %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(datadir.DevSecretPath(src.Dir)); err == nil {
		if err := os.WriteFile(filepath.Join(tmp, filepath.Base(datadir.DevSecretPath(src.Dir))), b, 0o600); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("failed to copy the development secret: %w", err)
	}
	m, err := describe(ctx, tmp)
	if err != nil {
		return nil, err
	}
	m.Created = time.Now().UTC().Truncate(time.Second)
	if m.Files, err = hashFiles(ctx, tmp, &pacer{ctx: ctx, rate: src.MaxRate}); err != nil {
		return nil, err
	}
	s.manifest = m
	return s, nil
}

// describe reads the ledger id, origin, size, root and newest checkpoint
// of the ledger copy under dir.
func describe(ctx context.Context, dir string) (m Manifest, err error) {
	defer ledger.RecoverDamaged(&err)
	l, err := ledger.Open(ctx, ledger.Options{Dir: filepath.Join(dir, "ledger"), ReadOnly: true})
	if err != nil {
		return m, fmt.Errorf("failed to open the ledger copy: %w", err)
	}
	defer l.Close()
	root, err := l.RootAt(l.Size())
	if err != nil {
		return m, err
	}
	m = Manifest{Version: FormatVersion, LedgerID: l.ID(), Origin: l.Origin(), Size: l.Size(), Root: base64.StdEncoding.EncodeToString(root)}
	cp, err := l.LatestCheckpoint()
	switch {
	case err == nil:
		m.Checkpoint = string(cp)
		// The note's second line is the tree size (C2SP tlog-checkpoint).
		if lines := strings.SplitN(m.Checkpoint, "\n", 3); len(lines) == 3 {
			m.CheckpointSize, _ = strconv.ParseUint(lines[1], 10, 64)
		}
	case !errors.Is(err, ledger.ErrNotFound):
		return m, err
	}
	return m, nil
}

// hashFiles lists every regular file under dir, sorted, with its hash.
func hashFiles(ctx context.Context, dir string, pace *pacer) ([]File, error) {
	var out []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("failed to back up %s: not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, pacedReader{f, pace})
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", rel, err)
		}
		out = append(out, File{Path: filepath.ToSlash(rel), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to hash the backup files: %w", err)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// Manifest returns the backup's manifest.
func (s *Snapshot) Manifest() Manifest { return s.manifest }

// TarSize is the number of bytes WriteTo writes.
func (s *Snapshot) TarSize() int64 {
	mb, _ := s.manifestBytes()
	n := tarEntrySize(int64(len(mb)))
	for _, f := range s.manifest.Files {
		n += tarEntrySize(f.Size)
	}
	return n + 2*512 // the end-of-archive blocks
}

func tarEntrySize(n int64) int64 { return 512 + (n+511)/512*512 }

func (s *Snapshot) manifestBytes() ([]byte, error) {
	b, err := json.MarshalIndent(s.manifest, "", "  ")
	return append(b, '\n'), err
}

// WriteTo streams the backup as a tar file to w: the manifest, then every
// file it lists, in its order, each mode 0600.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w, p: &pacer{ctx: context.Background(), rate: s.rate}}
	tw := tar.NewWriter(cw)
	mb, err := s.manifestBytes()
	if err != nil {
		return cw.n, err
	}
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: s.manifest.Created, Format: tar.FormatUSTAR}
	}
	if err := tw.WriteHeader(hdr(ManifestName, int64(len(mb)))); err != nil {
		return cw.n, err
	}
	if _, err := tw.Write(mb); err != nil {
		return cw.n, err
	}
	for _, f := range s.manifest.Files {
		if err := tw.WriteHeader(hdr(f.Path, f.Size)); err != nil {
			return cw.n, err
		}
		if err := copyFile(tw, filepath.Join(s.dir, filepath.FromSlash(f.Path)), f.Size); err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("failed to stream %s: %w", path.Base(p), err)
	}
	return nil
}

// Close removes the snapshot's temporary directory.
func (s *Snapshot) Close() error {
	if s.dir == "" {
		return nil
	}
	err := os.RemoveAll(s.dir)
	s.dir = ""
	return err
}

type countWriter struct {
	w io.Writer
	n int64
	p *pacer
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil {
		err = c.p.wait(n)
	}
	return n, err
}

// pacer keeps a stream under rate bytes per second (no cap if rate ≤ 0).
type pacer struct {
	ctx   context.Context
	rate  int64
	start time.Time
	n     int64
}

// wait accounts n more bytes and sleeps while the stream is ahead of its
// rate.
func (p *pacer) wait(n int) error {
	if p.rate <= 0 {
		return nil
	}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.n += int64(n)
	ahead := time.Duration(float64(p.n)/float64(p.rate)*float64(time.Second)) - time.Since(p.start)
	if ahead < 10*time.Millisecond {
		return nil
	}
	t := time.NewTimer(ahead)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return p.ctx.Err()
	case <-t.C:
		return nil
	}
}

type pacedReader struct {
	r io.Reader
	p *pacer
}

func (r pacedReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if werr := r.p.wait(n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}
