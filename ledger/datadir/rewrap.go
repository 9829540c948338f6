package datadir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/paytrail/paytrail/crypto"
)

// devSecretNext is where Rewrap puts the development webhook secret sealed
// by the new master key until the keysets have switched.
func devSecretNext(dir string) string { return DevSecretPath(dir) + ".next" }

// Rewrap re-encrypts everything in the data dir that the master key wraps
// (every keyset, and the development webhook secret if there is one) under
// next, for a node opened with OpenKeys. The keysets switch at once (see
// crypto.RewrapMaster); the development secret is sealed under next
// beforehand, beside the old one, and moved into place after the switch,
// and OpenKeys finishes that move if a crash came between. Afterwards the
// old master key opens nothing in the data dir.
func Rewrap(ctx context.Context, n *Node, next *crypto.Master) error {
	secret, err := crypto.ReadSecretFile(ctx, n.Master, DevSecretPath(n.Dir), "dev webhook secret")
	hasSecret := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if hasSecret {
		err := crypto.WriteSecretFile(ctx, next, devSecretNext(n.Dir), "dev webhook secret", secret)
		clear(secret)
		if err != nil {
			return err
		}
	}
	if err := crypto.RewrapMaster(ctx, n.KeysetStore, n.Master, next); err != nil {
		os.Remove(devSecretNext(n.Dir))
		return err
	}
	n.Master = next
	return recoverDevSecret(ctx, n)
}

// recoverDevSecret finishes a Rewrap a crash interrupted: a development
// secret sealed by the master the keysets now open with replaces the old
// one; one sealed by another master (the switch never happened) is
// dropped.
func recoverDevSecret(ctx context.Context, n *Node) error {
	path := devSecretNext(n.Dir)
	secret, err := crypto.ReadSecretFile(ctx, n.Master, path, "dev webhook secret")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, crypto.ErrWrongMasterKey):
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("failed to remove an unused development secret: %w", err)
		}
		return nil
	case err != nil:
		return err
	}
	clear(secret)
	if err := os.Rename(path, DevSecretPath(n.Dir)); err != nil {
		return fmt.Errorf("failed to move the rewrapped development secret into place: %w", err)
	}
	return syncDir(n.Dir)
}

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
