package crypto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// KeysetStorage is where the wrapped keysets are kept: the one place that
// reads and writes a keyset's stored bytes. [KeysetDir] keeps them as files
// in the data dir; a cluster keeps them in a replicated store. The bytes are
// a keyset file (JSON, the keyset wrapped by the master key); a
// KeysetStorage never sees key material in clear.
type KeysetStorage interface {
	// ReadKeyset returns the stored bytes of keyset name, or an error
	// wrapping fs.ErrNotExist when there are none.
	ReadKeyset(ctx context.Context, name string) ([]byte, error)
	// WriteKeyset durably stores data as keyset name. With replace=false
	// it fails with an error wrapping fs.ErrExist if the keyset exists, so
	// that a concurrent creator's keyset is never overwritten.
	WriteKeyset(ctx context.Context, name string, data []byte, replace bool) error
	// String names the storage in error messages.
	String() string
	// ReplaceKeysets durably replaces every keyset at once with files (a
	// name for each of KeysetNames): after a crash the storage holds
	// either all the old keysets or all the new ones.
	ReplaceKeysets(ctx context.Context, files map[string][]byte) error
}

// KeysetDir is a [KeysetStorage] on a directory: one file <name>.json per
// keyset, mode 0600, each replaced atomically (see writeFileAtomic).
//
// ReplaceKeysets writes the new files into a sibling directory
// <dir>.next, fsyncs them, and then switches directories with two renames
// (dir to <dir>.prev, <dir>.next to dir). [RecoverKeysetDir] finishes or
// undoes a switch a crash interrupted; OpenKeysetDir calls it.
type KeysetDir struct {
	dir string
	// hook, if set (by tests), runs after each step of ReplaceKeysets with
	// the step's name, so that a test can kill the process there.
	hook func(step string)
}

// OpenKeysetDir returns the keyset storage in dir, first recovering from
// a ReplaceKeysets a crash interrupted (see RecoverKeysetDir). The caller
// must hold the data dir's lock.
func OpenKeysetDir(dir string) (*KeysetDir, error) {
	if err := RecoverKeysetDir(dir); err != nil {
		return nil, err
	}
	return &KeysetDir{dir: dir}, nil
}

// NewKeysetDir returns the keyset storage in dir without recovering it:
// the caller has run RecoverKeysetDir (or opens read-only).
func NewKeysetDir(dir string) *KeysetDir { return &KeysetDir{dir: dir} }

// Dir returns the directory the keysets are in.
func (d *KeysetDir) Dir() string { return d.dir }

// String names the directory, for error messages.
func (d *KeysetDir) String() string { return d.dir }

func nextDir(dir string) string { return dir + ".next" }
func prevDir(dir string) string { return dir + ".prev" }

// RecoverKeysetDir brings dir back to one whole generation of keysets
// after a crash during ReplaceKeysets:
//
//   - dir missing, <dir>.next present: the crash came between the two
//     renames, after <dir>.next was complete and synced; it becomes dir
//     (the new keysets);
//   - then <dir>.next (an unfinished new generation) and <dir>.prev (the
//     old generation, wrapped by the old master key) are removed.
//
// It does nothing when neither exists.
func RecoverKeysetDir(dir string) error {
	next, prev := nextDir(dir), prevDir(dir)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Lstat(next); err == nil {
			if err := os.Rename(next, dir); err != nil {
				return fmt.Errorf("failed to finish switching keysets: %w", err)
			}
			if err := syncDir(filepath.Dir(dir)); err != nil {
				return err
			}
		}
	} else if err != nil {
		return fmt.Errorf("failed to inspect keysets directory: %w", err)
	}
	removed := false
	for _, p := range []string{next, prev} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("failed to remove %s: %w", p, err)
		}
		removed = true
	}
	if removed {
		return syncDir(filepath.Dir(dir))
	}
	return nil
}

func (d *KeysetDir) step(name string) {
	if d.hook != nil {
		d.hook(name)
	}
}

// ReadKeyset implements KeysetStorage. A file that group or others may
// access (mode wider than 0600) is refused.
func (d *KeysetDir) ReadKeyset(ctx context.Context, name string) ([]byte, error) {
	path := filepath.Join(d.dir, name+".json")
	f, err := os.Open(path)
	if err != nil {
		// Wrapped: callers need fs.ErrNotExist.
		return nil, fmt.Errorf("failed to open keyset %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat keyset %s: %w", name, err)
	}
	if err := checkPrivate(fi, "keyset file", path); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeysetFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read keyset %s: %w", name, err)
	}
	if len(data) > maxKeysetFileSize {
		return nil, fmt.Errorf("failed to load keyset %s: file larger than %d bytes: %w", name, maxKeysetFileSize, ErrCorruptKeyset)
	}
	return data, nil
}

// WriteKeyset implements KeysetStorage; the directory is created (mode
// 0700) if needed.
func (d *KeysetDir) WriteKeyset(ctx context.Context, name string, data []byte, replace bool) error {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("failed to create keysets directory: %w", err)
	}
	if err := syncDir(filepath.Dir(d.dir)); err != nil {
		return err
	}
	return writeFileAtomic(d.dir, name+".json", data, replace)
}

// ReplaceKeysets implements KeysetStorage (see KeysetDir).
func (d *KeysetDir) ReplaceKeysets(ctx context.Context, files map[string][]byte) error {
	for _, name := range KeysetNames() {
		if _, ok := files[name]; !ok {
			return fmt.Errorf("failed to replace keysets: keyset %s missing", name)
		}
	}
	next, prev, parent := nextDir(d.dir), prevDir(d.dir), filepath.Dir(d.dir)
	// Leftovers of an earlier attempt are never part of the new generation.
	if err := RecoverKeysetDir(d.dir); err != nil {
		return err
	}
	if err := os.Mkdir(next, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", next, err)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeFileAtomic(next, name+".json", files[name], false); err != nil {
			return err
		}
		if i == 0 {
			d.step("first-file")
		}
	}
	// writeFileAtomic synced every file and next itself; the parent must
	// know next before dir moves away.
	if err := syncDir(parent); err != nil {
		return err
	}
	d.step("written")
	if err := os.Rename(d.dir, prev); err != nil {
		return fmt.Errorf("failed to switch keysets: %w", err)
	}
	d.step("old-moved")
	if err := os.Rename(next, d.dir); err != nil {
		return fmt.Errorf("failed to switch keysets: %w", err)
	}
	if err := syncDir(parent); err != nil {
		return err
	}
	d.step("switched")
	if err := os.RemoveAll(prev); err != nil {
		return fmt.Errorf("failed to remove the old keysets: %w", err)
	}
	return syncDir(parent)
}
