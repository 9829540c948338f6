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
//	<data>/keysets.next/      transient: the keysets a `keys rewrap` is switching to (see crypto.KeysetDir)
//	<data>/backup-tmp-*/      transient: the snapshots of an online backup being streamed
//
// The ledger directory holds no key material; the keys directory holds only
// wrapped keys. An online backup (package backup) holds all but the master
// key (docs/operations.md).
package datadir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// ErrNotInitialized is returned when the data dir has no keys and Create
// was not set.
var ErrNotInitialized = errors.New("data directory has no keys")

// ErrNoMasterKey is returned when no master key is configured (Config.MasterKey
// is empty) and a data dir that is not empty has no development master key
// file: a new one would not decrypt its keysets, so none is created.
var ErrNoMasterKey = errors.New("no master key configured")

// ErrKeysMissing is returned, wrapped in a [*MissingKeysError], when a data
// dir that already holds a ledger lacks keysets. Keys are created only in an
// empty data dir: a new signer key would not verify the checkpoints already
// issued, and a new token or blind key would find no earlier cardholder.
var ErrKeysMissing = errors.New("keysets missing")

// MissingKeysError names the keysets missing from a populated data dir.
type MissingKeysError struct {
	Dir     string
	Keysets []string // names, in crypto.KeysetNames order
}

func (e *MissingKeysError) Error() string {
	return fmt.Sprintf("data dir %s has a ledger but no %s keyset (%s missing)",
		e.Dir, strings.Join(e.Keysets, ", "), filepath.Join(KeysetsDir(e.Dir), e.Keysets[0]+".json"))
}

func (e *MissingKeysError) Unwrap() error { return ErrKeysMissing }

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

	// Cluster mode (see ledger/cluster): the ledger is a node's, with the
	// cluster's id, sequenced by the cluster's stream, its checkpoint
	// roots agreed with the other nodes; the keysets are the cluster's.
	LedgerID  string
	Sequenced bool
	Agree     func(ctx context.Context, size uint64, root []byte) error
	// SyncKeysets, if set, is given the data dir's wrapped keyset files
	// (created first if the data dir is empty) and returns the cluster's,
	// which replace them; a populated data dir whose keysets differ from
	// the cluster's is refused ([ErrKeysetsDiffer]).
	SyncKeysets func(ctx context.Context, local map[string][]byte) (map[string][]byte, error)
}

// ErrKeysetsDiffer refuses a data dir holding data under keysets other
// than its cluster's.
var ErrKeysetsDiffer = errors.New("the data dir's keysets are not its cluster's")

// Node is an open data dir.
type Node struct {
	Dir      string
	Master   *crypto.Master
	Keys     *crypto.Keysets
	Ledger   *ledger.Ledger
	KeyStore *keystore.Store // nil when ReadOnly
	DataKeys *crypto.DataKeys
	// KeysetStore is where Keys are stored (the keysets directory).
	KeysetStore *crypto.KeysetDir
	// CreatedMaster is true when this Open created the development master
	// key file (the caller prints the warning).
	CreatedMaster bool
	// DevMaster is true when the master key is the development file inside
	// the data dir.
	DevMaster bool
	// Warnings are plain messages about the data dir that did not stop the
	// open (a data dir that group or others can reach); the caller shows
	// them.
	Warnings []string

	lock *os.File // the data dir's lock; nil for a read-only open without one

	closeOnce sync.Once
	closeErr  error
}

// MasterKeyPath is the development master key file of dir.
func MasterKeyPath(dir string) string { return filepath.Join(dir, "master.key") }

// KeysetsDir is the keysets directory of dir.
func KeysetsDir(dir string) string { return filepath.Join(dir, "keysets") }

// DevSecretPath is the sealed development webhook secret of dir.
func DevSecretPath(dir string) string { return filepath.Join(dir, "dev-source.secret") }

// BackupTempPrefix starts the name of the temporary directories online
// backups make in the data dir (see package backup); Open removes any that
// a crash left behind.
const BackupTempPrefix = "backup-tmp-"

// LockPath is the lock file of dir. Every Open and OpenKeys holds an
// exclusive advisory lock on it until Close, so that no two processes use
// one data dir (a `keys rotate` while a server runs would replace a keyset
// file under the server's feet). The ledger also locks its own directory.
func LockPath(dir string) string { return filepath.Join(dir, "PAYTRAIL.LOCK") }

// OpenKeys opens the master key and keysets only (for `keys` commands),
// creating them when cfg.Create is set and the data dir is empty. It holds
// the data dir's lock until Close.
//
// Keys are created only in an empty data dir. A data dir that holds a
// ledger (or a key store) but lacks a keyset gives a [*MissingKeysError];
// one that holds a ledger or keysets but has no master key file, with
// cfg.MasterKey empty, gives [ErrNoMasterKey]. Neither writes anything.
func OpenKeys(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("datadir: Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: dir}
	if cfg.Create && !cfg.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create data dir: %w", err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to open data dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("failed to open data dir: %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		n.Warnings = append(n.Warnings, fmt.Sprintf("data dir %s has mode %04o: group or others can reach it; chmod 700 it", dir, perm))
	}
	if n.lock, err = lockDir(dir, cfg.ReadOnly); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.unlock()
		}
	}()

	if !cfg.ReadOnly {
		// A keys rewrap a crash interrupted is finished or undone first,
		// so that what follows sees one whole generation of keysets.
		if err := crypto.RecoverKeysetDir(KeysetsDir(dir)); err != nil {
			return nil, err
		}
	}
	st, err := inspect(dir)
	if err != nil {
		return nil, err
	}
	uri := cfg.MasterKey
	if uri == "" {
		n.DevMaster = true
		path := MasterKeyPath(dir)
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			switch {
			case st.populated() || len(st.keysets) > 0:
				return nil, fmt.Errorf("%w: PAYTRAIL_MASTER_KEY is unset and %s has no master.key", ErrNoMasterKey, dir)
			case !cfg.Create || cfg.ReadOnly:
				return nil, fmt.Errorf("%w: no master key in %s and PAYTRAIL_MASTER_KEY is unset", ErrNotInitialized, dir)
			}
			if err := crypto.CreateMasterFile(path); err != nil {
				return nil, err
			}
			n.CreatedMaster = true
		} else if err != nil {
			return nil, fmt.Errorf("failed to check master key file: %w", err)
		}
		uri = "file://" + path
	}
	if n.Master, err = crypto.OpenMaster(ctx, crypto.MasterConfig{URI: uri, VaultToken: cfg.VaultToken}); err != nil {
		return nil, err
	}
	ksDir := KeysetsDir(dir)
	if missing := st.missingKeysets(); len(missing) > 0 {
		switch {
		case st.populated():
			return nil, &MissingKeysError{Dir: dir, Keysets: missing}
		case cfg.Create && !cfg.ReadOnly:
			if err := crypto.InitKeysets(ctx, ksDir, n.Master); err != nil {
				return nil, err
			}
		}
	}
	if cfg.SyncKeysets != nil {
		if err := syncKeysets(ctx, cfg, ksDir, st.populated()); err != nil {
			return nil, err
		}
	}
	n.KeysetStore = crypto.NewKeysetDir(ksDir)
	if n.Keys, err = crypto.LoadKeysetsFrom(ctx, n.KeysetStore, n.Master); err != nil {
		if errors.Is(err, crypto.ErrNoKeysets) {
			return nil, fmt.Errorf("%w: %v", ErrNotInitialized, err)
		}
		return nil, err
	}
	if !cfg.ReadOnly {
		if err := recoverDevSecret(ctx, n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// syncKeysets makes the keysets in ksDir the cluster's.
func syncKeysets(ctx context.Context, cfg Config, ksDir string, populated bool) error {
	local, err := crypto.ReadKeysetFiles(ksDir)
	if err != nil {
		return err
	}
	theirs, err := cfg.SyncKeysets(ctx, local)
	if err != nil {
		return fmt.Errorf("failed to get the cluster's keysets: %w", err)
	}
	for name, b := range theirs {
		if bytes.Equal(b, local[name]) {
			continue
		}
		if populated {
			return fmt.Errorf("%w: keyset %s in %s differs from the cluster's (a data dir of another cluster, or keys rotated offline?)", ErrKeysetsDiffer, name, ksDir)
		}
		if err := crypto.WriteKeysetFile(ksDir, name, b); err != nil {
			return err
		}
	}
	return nil
}

// dirState is what a data dir holds before Open touches it.
type dirState struct {
	ledger, keyStore bool
	keysets          map[string]bool // keyset files present
}

// populated reports whether the data dir holds data that depends on its
// keys: a ledger or a key store.
func (s dirState) populated() bool { return s.ledger || s.keyStore }

func (s dirState) missingKeysets() []string {
	var out []string
	for _, name := range crypto.KeysetNames() {
		if !s.keysets[name] {
			out = append(out, name)
		}
	}
	return out
}

func inspect(dir string) (dirState, error) {
	st := dirState{keysets: map[string]bool{}}
	var err error
	if st.ledger, err = exists(filepath.Join(dir, "ledger")); err != nil {
		return st, err
	}
	if st.keyStore, err = exists(filepath.Join(dir, "keys")); err != nil {
		return st, err
	}
	for _, name := range crypto.KeysetNames() {
		ok, err := exists(filepath.Join(KeysetsDir(dir), name+".json"))
		if err != nil {
			return st, err
		}
		if ok {
			st.keysets[name] = true
		}
	}
	return st, nil
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("failed to inspect data dir: %w", err)
	}
}

// lockDir takes the data dir's lock without waiting. Read-only opens
// (verify, possibly of a copy on read-only media) write nothing: they lock
// the lock file if there is one and otherwise take no lock, since no
// paytrail process that could hold it ever opened that copy.
func lockDir(dir string, readOnly bool) (*os.File, error) {
	path := LockPath(dir)
	var f *os.File
	var err error
	if readOnly {
		f, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			// ledger.ErrLocked, so callers have one error to test for
			// whichever lock was taken.
			return nil, fmt.Errorf("%w: %s", ledger.ErrLocked, dir)
		}
		return nil, fmt.Errorf("failed to lock %s: %w", dir, err)
	}
	return f, nil
}

func (n *Node) unlock() {
	if n.lock != nil {
		n.lock.Close()
		n.lock = nil
	}
}

// Open opens the whole data dir. Close it when done.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	n, err := OpenKeys(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	opts := ledger.Options{
		Dir:                filepath.Join(n.Dir, "ledger"),
		CheckpointInterval: cfg.CheckpointInterval,
		ReadOnly:           cfg.ReadOnly,
		Logger:             cfg.Logger,
		ID:                 cfg.LedgerID,
		Sequenced:          cfg.Sequenced,
		Agree:              cfg.Agree,
		Signer: func(origin string) (note.Signer, error) {
			return n.Keys.NoteSigner(origin)
		},
	}
	if n.Ledger, err = openLedger(ctx, opts); err != nil {
		return nil, err
	}
	if cfg.ReadOnly {
		return n, nil
	}
	if err := removeBackupTemps(n.Dir); err != nil {
		return nil, err
	}
	ks, err := keystore.Open(filepath.Join(n.Dir, "keys"), cfg.Logger)
	if err != nil {
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

// removeBackupTemps removes the temporary directories of backups a crash
// interrupted: they hold a copy of the keys, and nobody else will.
func removeBackupTemps(dir string) error {
	ms, err := filepath.Glob(filepath.Join(dir, BackupTempPrefix+"*"))
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := os.RemoveAll(m); err != nil {
			return fmt.Errorf("failed to remove an interrupted backup's files: %w", err)
		}
	}
	return nil
}

// OpenLedger opens only the ledger of the data dir dir, read-only and
// without its keys: enough to verify it with verifier keys the caller
// holds, and without the master key.
func OpenLedger(ctx context.Context, dir string) (*ledger.Ledger, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("failed to open data dir: %w", err)
	}
	return openLedger(ctx, ledger.Options{Dir: filepath.Join(dir, "ledger"), ReadOnly: true})
}

// openLedger is ledger.Open, with a damaged store reported as an error
// wrapping ledger.ErrDamaged rather than a panic. After such an error the
// process should exit: the half-opened store is left as it is.
func openLedger(ctx context.Context, opts ledger.Options) (l *ledger.Ledger, err error) {
	defer ledger.RecoverDamaged(&err)
	return ledger.Open(ctx, opts)
}

// Verifiers returns the checkpoint verifiers for every signer key, under
// the ledger's origin and every origin it had before (a restored ledger's
// older checkpoints carry the origin of the ledger it was copied from).
// The keys returned are those of the current origin.
func (n *Node) Verifiers() (note.Verifiers, []string, error) {
	vkeys, err := n.Keys.NoteVerifierKeys(n.Ledger.Origin())
	if err != nil {
		return nil, nil, err
	}
	all := vkeys
	for _, h := range n.Ledger.PastOrigins() {
		past, err := n.Keys.NoteVerifierKeys(h.Origin)
		if err != nil {
			return nil, nil, err
		}
		all = append(all[:len(all):len(all)], past...)
	}
	var vs []note.Verifier
	for _, k := range all {
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
		n.unlock()
	})
	return n.closeErr
}
