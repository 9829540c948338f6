package crypto

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "paytrail/" + testLedgerID

func signNote(t *testing.T, k *Keysets, text string) []byte {
	t.Helper()
	s, err := k.NoteSigner(testOrigin)
	if err != nil {
		t.Fatalf("NoteSigner: %v", err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatalf("note.Sign: %v", err)
	}
	return msg
}

func openNote(vkey string, msg []byte) (*note.Note, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return note.Open(msg, note.VerifierList(v))
}

func TestNoteSigner(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeysets(t)
	const text1 = testOrigin + "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	msg1 := signNote(t, k, text1)

	vkeys, err := k.NoteVerifierKeys(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if len(vkeys) != 1 || !strings.HasPrefix(vkeys[0], testOrigin+"+") {
		t.Fatalf("NoteVerifierKeys = %v, want one key named %s", vkeys, testOrigin)
	}
	n, err := openNote(vkeys[0], msg1)
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if n.Text != text1 || len(n.Sigs) != 1 {
		t.Errorf("opened note = %+v", n)
	}

	// The signature is a plain Ed25519 signature by the published key.
	pub, err := base64.StdEncoding.DecodeString(strings.SplitN(vkeys[0], "+", 3)[2])
	if err != nil || len(pub) != 1+ed25519.PublicKeySize || pub[0] != 1 {
		t.Fatalf("verifier key is not an Ed25519 note key: %q", vkeys[0])
	}
	sig, _ := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if len(sig) != 4+ed25519.SignatureSize || !ed25519.Verify(pub[1:], []byte(text1), sig[4:]) {
		t.Errorf("signature is not a raw 64-byte Ed25519 signature over the note text")
	}

	// A note altered after signing does not verify.
	bad := []byte(strings.Replace(string(msg1), "\n1\n", "\n2\n", 1))
	if _, err := openNote(vkeys[0], bad); err == nil {
		t.Errorf("altered note verified")
	}

	// Rotate: new notes are signed by the new key, old notes still verify
	// with the old key, and each key verifies only its own notes.
	if err := k.Rotate(ctx, KeysetSigner); err != nil {
		t.Fatal(err)
	}
	const text2 = testOrigin + "\n2\nBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=\n"
	msg2 := signNote(t, k, text2)
	vkeys2, err := k.NoteVerifierKeys(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if len(vkeys2) != 2 || vkeys2[1] != vkeys[0] || vkeys2[0] == vkeys[0] {
		t.Fatalf("after rotation NoteVerifierKeys = %v, want [new, %s]", vkeys2, vkeys[0])
	}
	if _, err := openNote(vkeys2[0], msg2); err != nil {
		t.Errorf("new note with new key: %v", err)
	}
	if _, err := openNote(vkeys2[1], msg1); err != nil {
		t.Errorf("old note with old key: %v", err)
	}
	if _, err := openNote(vkeys2[1], msg2); err == nil {
		t.Errorf("new note verified with the old key")
	}
	var all []note.Verifier
	for _, vk := range vkeys2 {
		v, err := note.NewVerifier(vk)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, v)
	}
	for _, msg := range [][]byte{msg1, msg2} {
		if _, err := note.Open(msg, note.VerifierList(all...)); err != nil {
			t.Errorf("note.Open with all verifier keys: %v", err)
		}
	}
}

func TestNoteSignerBadName(t *testing.T) {
	k, _, _ := newTestKeysets(t)
	for _, name := range []string{"", "has space", "has+plus"} {
		if _, err := k.NoteSigner(name); err == nil {
			t.Errorf("NoteSigner(%q) succeeded", name)
		}
		if _, err := k.NoteVerifierKeys(name); err == nil {
			t.Errorf("NoteVerifierKeys(%q) succeeded", name)
		}
	}
}
