package crypto

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeFileAtomic makes dir/name hold data, mode 0600, or leaves it as it
// was: data goes to a temporary file in dir, which is fsynced and then moved
// into place, and dir is fsynced so the new name survives a crash (a rename
// is a change to the directory, not to the file).
//
// With replace=false the move is a hard link, which fails with fs.ErrExist
// if dir/name exists, so a concurrent writer's file is never overwritten.
func writeFileAtomic(dir, name string, data []byte, replace bool) (err error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("failed to name temporary file: %w", err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("failed to create temporary file: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		// After a rename tmp no longer exists; after a link or a failure it
		// must go.
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("failed to remove temporary file: %w", rmErr)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return fmt.Errorf("failed to close %s: %w", name, err)
	}
	f = nil
	final := filepath.Join(dir, name)
	if replace {
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("failed to replace %s: %w", name, err)
		}
	} else {
		// Wrapped with %w: callers need fs.ErrExist to tell a lost race.
		if err := os.Link(tmp, final); err != nil {
			return fmt.Errorf("failed to create %s: %w", name, err)
		}
	}
	return syncDir(dir)
}

// checkPrivate refuses a key file that group or others may read or write:
// fi describes the open file at path, what names it in the message. Files
// this package writes are mode 0600; a wider mode means someone copied or
// restored them carelessly, and the key may already have leaked.
func checkPrivate(fi fs.FileInfo, what, path string) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("failed to open %s %s: not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("failed to open %s %s: mode %04o gives access to group or others, want 0600", what, path, perm)
	}
	return nil
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to sync directory %s: %w", dir, err)
	}
	return nil
}
