package main

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// TestVerifyRemoteFollowsRotation: a checkpoint signed by the pinned key
// and a new key of the ledger (listed in /v1/ledger/public-keys) pins the
// new key too, saved beside the checkpoint file, so that later
// checkpoints signed with the new key alone verify; without that
// handover they fail.
func TestVerifyRemoteFollowsRotation(t *testing.T) {
	f := newFakeLog(t)
	skey2, vkey2, err := note.GenerateKey(rand.Reader, f.origin)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := note.NewSigner(skey2)
	if err != nil {
		t.Fatal(err)
	}
	// A stranger's key of the same name, listed too: never pinned.
	_, vkey3, _ := note.GenerateKey(rand.Reader, f.origin)
	var bridge []byte // the handover checkpoint, of size 8
	handovers := `{"sizes":[]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/ledger/handovers":
			w.Write([]byte(handovers))
			return
		case "/v1/ledger/public-keys":
			w.Write([]byte(vkey2 + "\n" + f.vkey + "\n" + vkey3 + "\n"))
			return
		case "/v1/ledger/checkpoints/8":
			w.Write(bridge)
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	signWith := func(signers ...note.Signer) []byte {
		body := log.Checkpoint{Origin: f.origin, Size: f.tree.Size(), Hash: f.tree.Hash()}.Marshal()
		msg, err := note.Sign(&note.Note{Text: string(body)}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "cp")
	f.append(5)
	if r := runVerifyRemote(t, srv.URL, file, f.vkey); r.code != 0 {
		t.Fatalf("first run: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// After a rotation the new key signs alone: without the handover the
	// check fails.
	other := filepath.Join(dir, "other")
	copyFile(t, file, other)
	late := filepath.Join(dir, "late") // an auditor who comes back later
	copyFile(t, file, late)
	f.mu.Lock()
	f.append(3)
	f.serve = signWith(s2)
	f.mu.Unlock()
	if r := runVerifyRemote(t, srv.URL, other, f.vkey); r.code != 1 {
		t.Fatalf("new key alone, nothing pinned: exit %d, want 1: %s", r.code, r.stdout)
	}

	// The handover checkpoint, signed by both keys, pins the new key.
	f.mu.Lock()
	f.serve = signWith(f.signer, s2)
	bridge = f.serve
	f.mu.Unlock()
	r := runVerifyRemote(t, srv.URL, file, f.vkey)
	if r.code != 0 || !strings.Contains(r.stdout, "pinned new signer key "+vkey2) {
		t.Fatalf("handover: %d %s %s", r.code, r.stdout, r.stderr)
	}
	keys, err := os.ReadFile(file + ".keys")
	if err != nil || string(keys) != vkey2+"\n" {
		t.Fatalf("keys file %q, %v; want the new key alone", keys, err)
	}
	// From then on the new key alone verifies.
	f.mu.Lock()
	f.append(2)
	f.serve = signWith(s2)
	f.mu.Unlock()
	r = runVerifyRemote(t, srv.URL, file, f.vkey)
	if r.code != 0 || !regexp.MustCompile(`grew consistently from size 8 to 10`).MatchString(r.stdout) {
		t.Fatalf("after the handover: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "pinned new") {
		t.Error("the new key was pinned again")
	}

	// An auditor who never saw the handover checkpoint names it (--via):
	// its new key is pinned, and the check goes on from size 5 to 10.
	r = runVerifyRemote(t, srv.URL, other, f.vkey, "--via", "8")
	if r.code != 0 || !strings.Contains(r.stdout, "pinned new signer key "+vkey2) || !strings.Contains(r.stdout, "from size 5 to 10") {
		t.Fatalf("--via: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Once the server lists the handover, an auditor who missed it needs
	// no --via: verify finds it and follows the rotation.
	handovers = `{"sizes":[8]}`
	r = runVerifyRemote(t, srv.URL, late, f.vkey)
	if r.code != 0 || !strings.Contains(r.stdout, "followed the signer rotation at the handover checkpoint of size 8") || !strings.Contains(r.stdout, "from size 5 to 10") {
		t.Fatalf("listed handover: %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
	handovers = `{"sizes":[]}`
	// --via a checkpoint the pinned key did not sign fails.
	f.mu.Lock()
	bridge = signWith(s2)
	f.mu.Unlock()
	if r := runVerifyRemote(t, srv.URL, filepath.Join(dir, "fresh"), f.vkey, "--via", "8"); r.code != 1 {
		t.Errorf("--via a checkpoint the pinned key did not sign: exit %d, want 1: %s", r.code, r.stdout)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
