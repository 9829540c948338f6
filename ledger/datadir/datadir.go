// Package datadir opens a paytrail data directory: the master key, the
// keysets it wraps, the ledger and the separate key store, in that order.
//
// # Layout
//
//	<data>/master.key         development master key (only when PAYTRAIL_MASTER_KEY is unset), mode 0600
//	<data>/keysets/*.json     token, blind, signer and datakey keysets, wrapped by the master key
//	<data>/ledger/            the ledger's Pebble store: entries, Merkle nodes, checkpoints, indexes
//	<data>/keys/              the key store's Pebble store: wrapped per-cardholder data keys
//	<data>/dev-source.secret  the development webhook source's secret, sealed by the master key
//
// The ledger directory holds no key material; the keys directory holds only
// wrapped keys. Back them up separately (docs/operations.md).
package datadir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// ErrNotInitialized is returned when the data dir has no keys and Create
// was not set.
var ErrNotInitialized = errors.New("data directory has no keys")

// Config says which data dir to open and how.
type Config struct {
	// Dir is the data directory. Required.
	Dir string
	// MasterKey is the master key URI (file:///abs/path or
	// hcvault://...). Empty means the development key file inside Dir.
	MasterKey string
	// VaultToken authenticates to Vault for hcvault:// master keys.
	VaultToken string
	// Create makes missing keys (development master key, keysets) instead
	// of failing with ErrNotInitialized.
	Create bool
	// ReadOnly opens the ledger read-only and no key store (verify).
	ReadOnly bool
	// CheckpointInterval, see ledger.Options. The default is one second.
	CheckpointInterval time.Duration
	// DataKeyCache is the number of unwrapped data keys kept in memory. The
	// default is crypto.DefaultDataKeyCacheSize.
	DataKeyCache int
	// Logger receives operational messages. The default discards.
	Logger *slog.Logger
}

// Node is an open data dir.
type Node struct {
	Dir      string
	Master   *crypto.Master
	Keys     *crypto.Keysets
	Ledger   *ledger.Ledger
	KeyStore *keystore.Store // nil when ReadOnly
	DataKeys *crypto.DataKeys
	// CreatedMaster is true when this Open created the development master
	// key file (the caller prints the warning).
	CreatedMaster bool
	// DevMaster is true when the master key is the development file inside
	// the data dir.
	DevMaster bool

	closeOnce sync.Once
	closeErr  error
}

// MasterKeyPath is the development master key file of dir.
func MasterKeyPath(dir string) string { return filepath.Join(dir, "master.key") }

// KeysetsDir is the keysets directory of dir.
func KeysetsDir(dir string) string { return filepath.Join(dir, "keysets") }

// DevSecretPath is the sealed development webhook secret of dir.
func DevSecretPath(dir string) string { return filepath.Join(dir, "dev-source.secret") }

// OpenKeys opens the master key and keysets only (for `keys` commands),
// creating them when cfg.Create is set.
func OpenKeys(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Dir == "" {
		return nil, errors.New("datadir: Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dir}
	if cfg.Create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create data dir: %w", err)
		}
	} else if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("failed to open data dir: %w", err)
	}
	uri := cfg.MasterKey
	if uri == "" {
		n.DevMaster = true
		path := MasterKeyPath(dir)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if !cfg.Create {
				return nil, fmt.Errorf("%w: no master key in %s and PAYTRAIL_MASTER_KEY is unset", ErrNotInitialized, dir)
			}
			if err := crypto.CreateMasterFile(path); err != nil {
				return nil, err
			}
			n.CreatedMaster = true
		}
		uri = "file://" + path
	}
	if n.Master, err = crypto.OpenMaster(ctx, crypto.MasterConfig{URI: uri, VaultToken: cfg.VaultToken}); err != nil {
		return nil, err
	}
	ksDir := KeysetsDir(dir)
	if cfg.Create {
		if err := os.MkdirAll(ksDir, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create keysets dir: %w", err)
		}
		if err := crypto.InitKeysets(ctx, ksDir, n.Master); err != nil {
			return nil, err
		}
	}
	if n.Keys, err = crypto.LoadKeysets(ctx, ksDir, n.Master); err != nil {
		if errors.Is(err, crypto.ErrNoKeysets) {
			return nil, fmt.Errorf("%w: %v", ErrNotInitialized, err)
		}
		return nil, err
	}
	return n, nil
}

// Open opens the whole data dir. Close it when done.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	n, err := OpenKeys(ctx, cfg)
	if err != nil {
		return nil, err
	}
	opts := ledger.Options{
		Dir:                filepath.Join(n.Dir, "ledger"),
		CheckpointInterval: cfg.CheckpointInterval,
		ReadOnly:           cfg.ReadOnly,
		Logger:             cfg.Logger,
		Signer: func(origin string) (note.Signer, error) {
			return n.Keys.NoteSigner(origin)
		},
	}
	// The ledger takes the data dir's lock, so it opens first.
	if n.Ledger, err = ledger.Open(ctx, opts); err != nil {
		return nil, err
	}
	if cfg.ReadOnly {
		return n, nil
	}
	ks, err := keystore.Open(filepath.Join(n.Dir, "keys"), cfg.Logger)
	if err != nil {
		n.Ledger.Close()
		return nil, err
	}
	n.KeyStore = ks
	size := cfg.DataKeyCache
	if size <= 0 {
		size = crypto.DefaultDataKeyCacheSize
	}
	n.DataKeys = crypto.NewDataKeys(n.Keys, ks, size)
	return n, nil
}

// OpenLedger opens only the ledger of the data dir dir, read-only and
// without its keys: enough to verify it with verifier keys the caller
// holds, and without the master key.
func OpenLedger(ctx context.Context, dir string) (*ledger.Ledger, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("failed to open data dir: %w", err)
	}
	return ledger.Open(ctx, ledger.Options{Dir: filepath.Join(dir, "ledger"), ReadOnly: true})
}

// Verifiers returns the checkpoint verifiers for every signer key.
func (n *Node) Verifiers() (note.Verifiers, []string, error) {
	vkeys, err := n.Keys.NoteVerifierKeys(n.Ledger.Origin())
	if err != nil {
		return nil, nil, err
	}
	var vs []note.Verifier
	for _, k := range vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, nil, err
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), vkeys, nil
}

// Close closes the ledger (draining appends) and then the key store. It is
// safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.Ledger != nil {
			errs = append(errs, n.Ledger.Close())
		}
		if n.KeyStore != nil {
			errs = append(errs, n.KeyStore.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
