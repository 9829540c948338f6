package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger/datadir"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// keysRewrap re-encrypts the data dir's keysets under the master key uri
// (the key ceremony of docs/operations.md).
func keysRewrap(ctx context.Context, e env, s *settings, uri string) error {
	if uri == "" {
		return usageError{"keys rewrap needs --new-master-key URI", "write one with 'paytrail keys init --master-key-out PATH', then pass file:///PATH"}
	}
	if uri == s.masterKey {
		return usageError{"--new-master-key is the master key in use", "name the new master key; the current one comes from PAYTRAIL_MASTER_KEY (or the data dir's development master.key)"}
	}
	if path, ok := strings.CutPrefix(uri, "file://"); ok {
		p, data := realPath(path), realPath(s.data)
		if strings.HasPrefix(p+"/", data+"/") {
			return hinted{errors.New("--new-master-key points inside the data dir"),
				[]string{"keep the production master key outside the data dir, so backups of the data never carry it"}}
		}
	}
	n, err := openKeys(ctx, e, s, false)
	if err != nil {
		return err
	}
	defer n.Close()
	next, err := crypto.OpenMaster(ctx, crypto.MasterConfig{URI: uri, VaultToken: s.vaultToken})
	if err != nil {
		return fmt.Errorf("failed to open the new master key: %w", err)
	}
	oldName, wasDev := n.Master.String(), n.DevMaster
	if err := datadir.Rewrap(ctx, n, next); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "rewrapped every keyset of %s: %s -> %s; the old master key no longer opens it\n", n.Dir, oldName, next)
	if wasDev {
		// The development key now opens nothing; leaving it beside the
		// data would only invite the mistake of using it again.
		if err := os.Remove(datadir.MasterKeyPath(n.Dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to remove the retired development master key: %w", err)
		}
		fmt.Fprintf(e.stdout, "removed the retired development master key %s\n", datadir.MasterKeyPath(n.Dir))
	}
	fmt.Fprintf(e.stdout, "from now on set PAYTRAIL_MASTER_KEY=%s\n", uri)
	fmt.Fprintln(e.stdout, "retire the old master key only after a backup taken from now on restores with the new one (docs/operations.md, key ceremony)")
	return nil
}

// printRewrap shows the progress of the background re-wrap of data keys
// after a datakey rotation, from the cursor the key store keeps.
func printRewrap(e env, dir string) error {
	path := filepath.Join(dir, "keys")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	ks, err := keystore.Open(path, nil)
	if err != nil {
		return err
	}
	defer ks.Close()
	st, found, err := ks.RewrapState()
	if err != nil || !found {
		return err
	}
	state := fmt.Sprintf("in progress (pass %d, at %s); it resumes when the server starts", st.Pass, first(st.Cursor, "the start"))
	if st.Done {
		state = "done " + st.Finished.Format("2006-01-02T15:04:05Z") + "; the older datakey keys now wrap no stored key"
	}
	fmt.Fprintf(e.stdout, "datakey rewrap to %s: %d keys scanned, %d re-wrapped, %s\n", st.Target, st.Scanned, st.Rewrapped, state)
	return nil
}
