package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
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
	if err := refuseClusterNode(ctx, n); err != nil {
		return err
	}
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

// refuseClusterNode refuses key changes in a cluster node's data dir:
// its keysets are the cluster's, kept in the cluster's keysets bucket.
func refuseClusterNode(ctx context.Context, n *datadir.Node) error {
	l, err := datadir.OpenLedger(ctx, n.Dir)
	if err != nil {
		return nil // no ledger yet: not a node
	}
	applied := l.Applied()
	l.Close()
	if applied > 0 {
		return hinted{ledger.ErrClusterNode, []string{"a cluster's keysets live in its keysets bucket: a key changed in one data dir would part that node from the others (docs/cluster.md)"}}
	}
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
	printRewrapState(e, st)
	return nil
}

func printRewrapState(e env, st keystore.RewrapState) {
	state := fmt.Sprintf("in progress (pass %d, at %s); a stopped server resumes it when it starts", st.Pass, first(st.Cursor, "the start"))
	if st.Done {
		state = "done " + st.Finished.Format("2006-01-02T15:04:05Z") + "; the older datakey keys now wrap no stored key"
	}
	fmt.Fprintf(e.stdout, "datakey rewrap to %s: %d keys scanned, %d re-wrapped, %s\n", st.Target, st.Scanned, st.Rewrapped, state)
}

// keysStatusRemote shows a running server's keysets and re-wrap progress.
func keysStatusRemote(ctx context.Context, e env, rawURL, token string) error {
	if token == "" {
		return usageError{"keys status --url needs --token T (or PAYTRAIL_TOKEN)", "the token must be an admin's"}
	}
	base, err := parseBaseURL(rawURL)
	if err != nil {
		return usageError{err.Error(), ""}
	}
	rl := &remoteLedger{base: base, token: token, client: &http.Client{Timeout: remoteTimeout}}
	body, err := rl.get(ctx, "/v1/admin/keys", nil, 1<<20)
	if err != nil {
		return err
	}
	var out struct {
		Keysets []crypto.KeysetStatus `json:"keysets"`
		Rewrap  *keystore.RewrapState `json:"datakey_rewrap"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("failed to read the server's answer: %w", err)
	}
	if err := printKeysets(e, out.Keysets); err != nil {
		return err
	}
	if out.Rewrap != nil {
		printRewrapState(e, *out.Rewrap)
	}
	return nil
}

// keysRetire deletes the old datakey keys, once the background re-wrap
// has moved every stored data key to the primary: from then on copies of
// the key store made before (old disks, backups) do not open with these
// keysets.
func keysRetire(ctx context.Context, e env, s *settings, keyset string) error {
	if keyset != crypto.KeysetDataKey {
		return usageError{"keys retire takes --keyset datakey", "old signer keys verify issued checkpoints, and old token and blind keys find earlier cardholders: they are never retired"}
	}
	n, err := openKeys(ctx, e, s, false)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := refuseClusterNode(ctx, n); err != nil {
		return err
	}
	ks, err := keystore.Open(filepath.Join(n.Dir, "keys"), nil)
	if err != nil {
		return err
	}
	defer ks.Close()
	primary := n.Keys.DataKeyPrimary()
	st, found, err := ks.RewrapState()
	if err != nil {
		return err
	}
	if !found || !st.Done || st.Target != primary {
		return hinted{errors.New("the data keys are not all re-wrapped under the datakey primary yet"),
			[]string{"rotate datakey (POST /v1/admin/keys/datakey/rotate), let the server finish the re-wrap ('paytrail keys status' says done), stop it, then retire"}}
	}
	// Trust, but check every key: one left under an old key would be lost.
	left := 0
	err = ks.Each(ctx, func(k ledger.WrappedKey) error {
		by, err := crypto.WrappedBy(k.Wrapped)
		if err != nil || by != primary {
			left++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if left > 0 {
		return hinted{fmt.Errorf("%d stored data keys are not wrapped by the datakey primary %s", left, primary),
			[]string{"start the server: it re-wraps them, then retire again"}}
	}
	retired, err := n.Keys.RetireOldKeys(ctx, keyset)
	if err != nil {
		return err
	}
	if len(retired) == 0 {
		fmt.Fprintf(e.stdout, "datakey has only its primary %s: nothing to retire\n", primary)
		return nil
	}
	fmt.Fprintf(e.stdout, "retired datakey keys %s: every data key is wrapped by %s\n", strings.Join(retired, ", "), primary)
	fmt.Fprintln(e.stdout, "copies of the key store from before the re-wrap now open only with a keyset backup that still holds the retired keys; expire those backups")
	return printStatus(e, n.Keys)
}
