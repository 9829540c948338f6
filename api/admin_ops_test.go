package api

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/backup"
	"github.com/paytrail/paytrail/ledger/datadir"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// load posts signed events from workers until the returned func is called,
// which waits for them and returns every acknowledged (seq, body). A test
// that fails first stops them in its cleanup, before the harness closes.
func load(t *testing.T, h *harness, workers int) func() map[uint64][]byte {
	stop := make(chan struct{})
	var (
		mu    sync.Mutex
		acked = map[uint64][]byte{}
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("evt_load_%d_%d", w, i)
				body := genericEvent(t, map[string]any{"id": id, "transaction_id": fmt.Sprintf("pay_load_%d_%d", w, i)})
				r := h.postStandard("msg_"+id, body)
				if r.Status != http.StatusOK {
					t.Errorf("post under load: %d %s", r.Status, r.Body)
					return
				}
				var res struct{ Seq uint64 }
				if err := json.Unmarshal(r.Body, &res); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[res.Seq] = body
				mu.Unlock()
			}
		}()
	}
	end := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(end)
	return func() map[uint64][]byte {
		end()
		mu.Lock()
		defer mu.Unlock()
		return acked
	}
}

// TestBackupRestoreDrill backs up a server under load, restores the backup
// elsewhere, verifies and starts it, and compares every acknowledged event
// and the root at the backup's size with the original.
func TestBackupRestoreDrill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newHarness(t)
	for i := range 20 {
		if r := h.postStandard(fmt.Sprintf("msg_pre_%d", i), genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_pre_%d", i), "transaction_id": fmt.Sprintf("pay_pre_%d", i)})); r.Status != http.StatusOK {
			t.Fatalf("post: %d %s", r.Status, r.Body)
		}
	}
	// An auditor may not take a backup: it holds every wrapped key.
	if r := h.do("auditor", "GET", "/v1/admin/backup", nil); r.Status != http.StatusForbidden {
		t.Fatalf("auditor backup: %d", r.Status)
	}
	wait := load(t, h, 4)
	time.Sleep(50 * time.Millisecond) // let the load get going; not a timing assertion
	r := h.do("admin", "GET", "/v1/admin/backup", nil)
	acked := wait()
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("backup: %d %s", r.Status, r.Header)
	}
	if r.Header.Get("Content-Length") != fmt.Sprint(len(r.Body)) {
		t.Errorf("Content-Length %s, body %d bytes", r.Header.Get("Content-Length"), len(r.Body))
	}

	// The tar: the manifest first, every file 0600, never the master key
	// (the harness's development master key sits in the data dir).
	if _, err := os.Stat(datadir.MasterKeyPath(h.dir)); err != nil {
		t.Fatalf("the harness has no development master key to leave out: %v", err)
	}
	tr := tar.NewReader(bytes.NewReader(r.Body))
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && hdr.Name != backup.ManifestName {
			t.Fatalf("first file %s, want the manifest", hdr.Name)
		}
		if hdr.Mode != 0o600 {
			t.Errorf("%s has mode %o", hdr.Name, hdr.Mode)
		}
		b, _ := io.ReadAll(tr)
		if strings.Contains(hdr.Name, "master") || bytes.Contains(b, []byte(`"paytrail_master_key"`)) {
			t.Fatalf("the backup holds the master key (%s)", hdr.Name)
		}
	}
	m, err := backup.Check(ctx, bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	if m.Size == 0 || m.Origin != h.node.Ledger.Origin() || m.LedgerID != h.node.Ledger.ID() {
		t.Fatalf("manifest %+v", m)
	}
	// The backup is recorded as an admin entry, after the snapshot.
	if !hasAdminEntry(t, h.node.Ledger, m.Size, "backup.create", h.ids["admin"]) {
		t.Error("no backup.create admin entry")
	}
	origRoot, err := h.node.Ledger.RootAt(m.Size)
	if err != nil {
		t.Fatal(err)
	}

	// Restore elsewhere; bring the master key (a development one here).
	dir := filepath.Join(t.TempDir(), "restored")
	m2, origin, err := backup.Restore(ctx, bytes.NewReader(r.Body), dir, PolicyVersion)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if m2.Root != m.Root || origin == m.Origin || !strings.HasPrefix(origin, m.Origin+"/restore-") {
		t.Fatalf("restored root %s origin %s (backup %s %s)", m2.Root, origin, m.Root, m.Origin)
	}
	// A second restore into the populated dir is refused.
	if _, _, err := backup.Restore(ctx, bytes.NewReader(r.Body), dir, PolicyVersion); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a populated dir: %v", err)
	}
	mk, err := os.ReadFile(datadir.MasterKeyPath(h.dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(datadir.MasterKeyPath(dir), mk, 0o600); err != nil {
		t.Fatal(err)
	}
	node, err := datadir.Open(ctx, datadir.Config{Dir: dir, CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("open the restored data dir: %v", err)
	}
	defer node.Close()
	srv, err := New(Config{Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, DataDir: node.Dir,
		Sources: []Source{{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}}}})
	if err != nil {
		t.Fatalf("start on the restored data dir: %v", err)
	}
	defer srv.Close(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	vs, _, err := node.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Ledger.Verify(ctx, vs, nil); err != nil {
		t.Fatalf("verify the restored ledger: %v", err)
	}
	root, err := node.Ledger.RootAt(m.Size)
	if err != nil || !bytes.Equal(root, origRoot) {
		t.Fatalf("root at the backup's size differs: %v", err)
	}
	// Every event acknowledged before the snapshot is there, byte for
	// byte, and decrypts with the restored keys.
	n := 0
	for seq := range acked {
		if seq >= m.Size {
			continue
		}
		a, err1 := h.node.Ledger.Entry(seq)
		b, err2 := node.Ledger.Entry(seq)
		if err1 != nil || err2 != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("entry %d differs after restore: %v %v", seq, err1, err2)
		}
		n++
	}
	if n == 0 {
		t.Log("no event of the load was acknowledged before the snapshot")
	}
	h2 := &harness{t: t, http: hs, tokens: h.tokens}
	if r := h2.do("auditor", "POST", "/v1/transactions/pay_pre_3/disclose", map[string]any{"purpose": "legal_obligation", "justification": "restore drill"}); r.Status != http.StatusOK || !strings.Contains(string(r.Body), testEmail) {
		t.Fatalf("disclose on the restored server: %d", r.Status)
	}

	// The fork rule: the original and the restored ledger never sign one
	// origin's checkpoint of a size with different contents.
	if r := h2.postStandard("msg_after_restore", genericEvent(t, map[string]any{"id": "evt_after_restore", "transaction_id": "pay_after_restore"})); r.Status != http.StatusOK {
		t.Fatalf("post to the restored server: %d %s", r.Status, r.Body)
	}
	if r := h.postStandard("msg_after_backup", genericEvent(t, map[string]any{"id": "evt_after_backup", "transaction_id": "pay_after_backup"})); r.Status != http.StatusOK {
		t.Fatalf("post to the original: %d %s", r.Status, r.Body)
	}
	waitCheckpoint(t, node.Ledger)
	waitCheckpoint(t, h.node.Ledger)
	for size := uint64(1); size <= max(h.node.Ledger.Size(), node.Ledger.Size()); size++ {
		a, errA := h.node.Ledger.Checkpoint(size)
		b, errB := node.Ledger.Checkpoint(size)
		if errA != nil || errB != nil {
			continue
		}
		if originOf(a) == originOf(b) && firstLines(a) != firstLines(b) {
			t.Fatalf("fork: two checkpoints of size %d under %s", size, originOf(a))
		}
		if size > m.Size && originOf(a) == originOf(b) {
			t.Fatalf("the restored ledger signed size %d, past the backup, under the original's origin", size)
		}
	}
	latest, err := node.Ledger.LatestCheckpoint()
	if err != nil || originOf(latest) != origin {
		t.Fatalf("the restored server signs under %q, want %q (%v)", originOf(latest), origin, err)
	}
}

func originOf(cp []byte) string { o, _, _ := strings.Cut(string(cp), "\n"); return o }

// firstLines is a checkpoint's body (origin, size, root).
func firstLines(cp []byte) string { b, _, _ := strings.Cut(string(cp), "\n\n"); return b }

// waitCheckpoint waits until a checkpoint covers the whole ledger.
func waitCheckpoint(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := l.Checkpoint(l.Size()); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no checkpoint of size %d", l.Size())
}

// hasAdminEntry reports whether an admin entry for action by actor
// follows seq from.
func hasAdminEntry(t *testing.T, l *ledger.Ledger, from uint64, action, actor string) bool {
	t.Helper()
	for seq := from; seq < l.Size(); seq++ {
		e, err := l.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		var body ledger.AdminBody
		if e.Kind == ledger.KindAdmin && e.DecodeBody(&body) == nil && body.Action == action && body.ActorID == actor {
			return true
		}
	}
	return false
}

// TestRestoreRefusesDamage: a truncated or altered backup is refused with a
// plain message and leaves nothing behind.
func TestRestoreRefusesDamage(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.postStandard("msg_d", genericEvent(t, map[string]any{"id": "evt_d"}))
	r := h.do("admin", "GET", "/v1/admin/backup", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("backup: %d", r.Status)
	}
	// Flip a byte inside a file's contents (a keyset's), not in the
	// padding between tar blocks, which holds nothing.
	flipped := bytes.Clone(r.Body)
	at := bytes.Index(flipped, []byte(`"encrypted_keyset"`))
	if at < 0 {
		t.Fatal("no keyset in the backup")
	}
	flipped[at+40] ^= 0x01
	for name, b := range map[string][]byte{
		"truncated": r.Body[:len(r.Body)*2/3],
		"altered":   flipped,
		"empty":     nil,
		"not a tar": []byte("hello"),
	} {
		parent := t.TempDir()
		dir := filepath.Join(parent, "restored")
		_, _, err := backup.Restore(ctx, bytes.NewReader(b), dir, PolicyVersion)
		if !errors.Is(err, backup.ErrDamaged) {
			t.Errorf("%s: %v, want ErrDamaged", name, err)
			continue
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 0 {
			t.Errorf("%s: restore left %v behind", name, ents[0].Name())
		}
	}
}

// TestRotateOnline rotates the signer and the datakey keyset through the
// API while events arrive, without a restart.
func TestRotateOnline(t *testing.T) {
	h := newHarness(t)
	for i := range 40 {
		h.postStandard(fmt.Sprintf("msg_r_%d", i), genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_r_%d", i), "transaction_id": fmt.Sprintf("pay_r_%d", i)}))
	}
	oldKey := strings.TrimSpace(string(h.do("", "GET", "/v1/ledger/public-key", nil).Body))
	if r := h.do("auditor", "POST", "/v1/admin/keys/signer/rotate", nil); r.Status != http.StatusForbidden {
		t.Fatalf("auditor rotate: %d", r.Status)
	}
	if r := h.do("admin", "POST", "/v1/admin/keys/nosuch/rotate", nil); r.Status != http.StatusNotFound || r.errorCode(t) != "unknown_keyset" {
		t.Fatalf("unknown keyset: %d %s", r.Status, r.Body)
	}

	wait := load(t, h, 2)
	size := h.node.Ledger.Size()
	r := h.do("admin", "POST", "/v1/admin/keys/signer/rotate", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("rotate signer: %d %s", r.Status, r.Body)
	}
	newKey := strings.TrimSpace(string(h.do("", "GET", "/v1/ledger/public-key", nil).Body))
	if newKey == oldKey {
		t.Fatal("public key unchanged after an online signer rotation")
	}
	if !hasAdminEntry(t, h.node.Ledger, size, "keys.rotate", h.ids["admin"]) {
		t.Error("no keys.rotate admin entry")
	}
	// The first checkpoint the new key signed carries the old key's
	// signature too.
	var cp []byte
	for sz := size; sz <= h.node.Ledger.Size() && cp == nil; sz++ {
		if c, err := h.node.Ledger.Checkpoint(sz); err == nil && verifies(newKey, c) {
			cp = c
		}
	}
	if cp == nil || !verifies(oldKey, cp) {
		t.Fatalf("the first checkpoint after the rotation is not signed by both keys:\n%s", cp)
	}

	r = h.do("admin", "POST", "/v1/admin/keys/datakey/rotate", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("rotate datakey: %d %s", r.Status, r.Body)
	}
	primary := r.json(t)["primary"].(string)
	wait()
	// The background re-wrap finishes (bounded by the test's deadline).
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := h.srv.rewrap.state()
		if st != nil && st.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-wrap not done: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every stored key, old and new, is wrapped by the new primary, and
	// old events still disclose.
	n := 0
	err := h.node.KeyStore.Each(context.Background(), func(k ledger.WrappedKey) error {
		by, err := crypto.WrappedBy(k.Wrapped)
		if err != nil {
			return err
		}
		if by != primary {
			return fmt.Errorf("key %s wrapped by %s, want %s", k.ID, by, primary)
		}
		n++
		return nil
	})
	if err != nil || n < 40 {
		t.Fatalf("after the re-wrap: %v (%d keys)", err, n)
	}
	if st, f := h.pvDisclose("pay_r_7"); st != http.StatusOK || f["email"] != testEmail {
		t.Fatalf("disclose an old event after the re-wrap: %d", st)
	}
	// A restart resumes nothing more: the job is done and persisted.
	h.restart()
	if st := h.srv.rewrap.state(); st == nil || !st.Done {
		t.Fatalf("after restart: %+v", st)
	}
}

func verifies(vkey string, signed []byte) bool {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return false
	}
	_, err = note.Open(signed, note.VerifierList(v))
	return err == nil
}

// TestRewrapResumes: a re-wrap stopped part way (the server closed) goes
// on from its stored cursor at the next start, and a datakey rotation made
// offline starts one there too.
func TestRewrapResumes(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.RewrapRate = 1 }) // one key a second: it cannot finish
	for i := range 10 {
		h.postStandard(fmt.Sprintf("msg_rs_%d", i), genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_rs_%d", i), "transaction_id": fmt.Sprintf("pay_rs_%d", i)}))
	}
	if r := h.do("admin", "POST", "/v1/admin/keys/datakey/rotate", nil); r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	h.stop()
	ks, err := keystoreState(t, h.dir)
	if err != nil || ks.Done {
		t.Fatalf("stopped re-wrap: %+v %v", ks, err)
	}
	// Restart at full speed: it resumes and finishes.
	h.start()
	waitRewrap(t, h)
	if st := h.srv.rewrap.state(); st.Scanned < ks.Scanned || st.Pass < 2 {
		t.Fatalf("resumed job %+v did not go on from %+v", st, ks)
	}
	// Rotate offline (server stopped), as `paytrail keys rotate` does.
	h.stop()
	n, err := datadir.OpenKeys(context.Background(), datadir.Config{Dir: h.dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Keys.Rotate(context.Background(), crypto.KeysetDataKey); err != nil {
		t.Fatal(err)
	}
	primary := n.Keys.DataKeyPrimary()
	n.Close()
	h.start()
	waitRewrap(t, h)
	if st := h.srv.rewrap.state(); st.Target != primary {
		t.Fatalf("after an offline rotation the re-wrap targets %s, want %s", st.Target, primary)
	}
	assertWrappedBy(t, h, primary)
}

func keystoreState(t *testing.T, dir string) (keystore.RewrapState, error) {
	ks, err := keystore.Open(filepath.Join(dir, "keys"), nil)
	if err != nil {
		return keystore.RewrapState{}, err
	}
	defer ks.Close()
	st, _, err := ks.RewrapState()
	return st, err
}

func waitRewrap(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st := h.srv.rewrap.state(); st != nil && st.Done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-wrap not done: %+v", h.srv.rewrap.state())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func assertWrappedBy(t *testing.T, h *harness, primary string) {
	t.Helper()
	n := 0
	err := h.node.KeyStore.Each(context.Background(), func(k ledger.WrappedKey) error {
		by, err := crypto.WrappedBy(k.Wrapped)
		if err != nil {
			return err
		}
		if by != primary {
			return fmt.Errorf("key %s wrapped by %s, want %s", k.ID, by, primary)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("%v (%d keys)", err, n)
	}
}

// An erasure whose keys were not yet destroyed when the backup was taken
// (its destruction failed or a crash came first: the ledger holds its
// pending shred row) is in the backup as that row, and the first start of
// the restored data dir finishes it before serving anything.
func TestRestoreFinishesPendingErasure(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	if r := h.postStandard("msg_pe", genericEvent(t, map[string]any{"id": "evt_pe", "transaction_id": "pay_pe"})); r.Status != http.StatusOK {
		t.Fatalf("post: %d", r.Status)
	}
	keys, err := h.node.Ledger.TransactionDataKeys("pay_pe")
	if err != nil || len(keys) == 0 {
		t.Fatalf("data keys of pay_pe: %v %v", keys, err)
	}
	// The erasure's entry, as subjectRequest appends it, without the key
	// destruction that follows it.
	res, err := h.node.Ledger.Append(ctx, ledger.Record{
		Kind: ledger.KindSubjectRequest, ID: ledger.NewRecordID(), Time: time.Now().UTC(), Policy: PolicyVersion,
		Body:  ledger.SubjectRequestBody{ActorID: h.ids["privacy"], ActorName: "privacy", Kind: "erase", Reference: "ref-pe", Scope: []string{"*"}, Transactions: 1},
		Erase: &ledger.Erasure{Transactions: []string{"pay_pe"}},
	})
	if err != nil || res.Shred == nil {
		t.Fatalf("erase entry: %v %+v", err, res)
	}
	r := h.do("admin", "GET", "/v1/admin/backup", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("backup: %d", r.Status)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, _, err := backup.Restore(ctx, bytes.NewReader(r.Body), dir, PolicyVersion); err != nil {
		t.Fatal(err)
	}
	mk, _ := os.ReadFile(datadir.MasterKeyPath(h.dir))
	if err := os.WriteFile(datadir.MasterKeyPath(dir), mk, 0o600); err != nil {
		t.Fatal(err)
	}
	node, err := datadir.Open(ctx, datadir.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if _, found, _ := node.KeyStore.Wrapped(ctx, keys[0]); !found {
		t.Fatal("the backup lacks the key of the unfinished erasure: nothing to finish")
	}
	srv, err := New(Config{Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, DataDir: node.Dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	for _, id := range keys {
		if _, found, err := node.KeyStore.Wrapped(ctx, id); err != nil || found {
			t.Fatalf("the restored server started with the erased key %s still stored (%v)", id, err)
		}
	}
	if pending, err := node.Ledger.PendingShreds(); err != nil || len(pending) != 0 {
		t.Fatalf("pending shreds after start: %v %v", pending, err)
	}
}
