package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// cosign returns a witness's cosignature of the checkpoint note cp, made
// with formats' cosignature signer.
func cosignWith(t *testing.T, s note.Signer, cp []byte) note.Signature {
	t.Helper()
	text, _, _ := bytes.Cut(cp, []byte("\n\n"))
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	v := s.(*fnote.Signer).Verifier()
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	return n.Sigs[0]
}

func newWitnessSigner(t *testing.T, name string) (note.Signer, note.Verifier) {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Verifier()
}

// TestCosignatures: cosignatures are stored per (size, key), durably and
// apart from the checkpoint, whose stored bytes stay as signed; served
// joined to it, the note verifies with the log's and the witnesses' keys.
func TestCosignatures(t *testing.T) {
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)
	for i := range 3 {
		if _, err := l.Append(context.Background(), adminRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l = openTest(t, dir, &keys)
	cp, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	size, _ := checkpointSize(cp)
	wa, va := newWitnessSigner(t, "witness.example/a")
	wb, vb := newWitnessSigner(t, "witness.example/b")
	sa, sb := cosignWith(t, wa, cp), cosignWith(t, wb, cp)
	if err := l.AddCosignatures(size, []note.Signature{sb}); err != nil {
		t.Fatal(err)
	}
	if err := l.AddCosignatures(size, []note.Signature{sa, sb}); err != nil { // b again: replaced, not doubled
		t.Fatal(err)
	}
	if err := l.AddCosignatures(size+100, []note.Signature{sa}); !errors.Is(err, ErrNotFound) {
		t.Errorf("cosignature of a size never checkpointed: %v, want ErrNotFound", err)
	}
	bad := sa
	bad.Hash++
	if err := l.AddCosignatures(size, []note.Signature{bad}); !errors.Is(err, ErrBadCosignature) {
		t.Errorf("a key hash that disagrees with the signature: %v", err)
	}
	bad = sa
	bad.Name = "two words"
	if err := l.AddCosignatures(size, []note.Signature{bad}); !errors.Is(err, ErrBadCosignature) {
		t.Errorf("a bad key name: %v", err)
	}
	l.Close()

	l = openTest(t, dir, &keys) // durable across a reopen
	defer l.Close()
	stored, err := l.Checkpoint(size)
	if err != nil || !bytes.Equal(stored, cp) {
		t.Fatalf("the stored checkpoint changed: %v\n%s", err, stored)
	}
	sigs, err := l.Cosignatures(size)
	if err != nil || len(sigs) != 2 {
		t.Fatalf("cosignatures: %v %v", sigs, err)
	}
	joined, err := l.CosignedCheckpoint(size)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := note.NewVerifier(keys.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(joined, note.VerifierList(lv, va, vb))
	if err != nil || len(n.Sigs) != 3 {
		t.Fatalf("served checkpoint: %v\n%s", err, joined)
	}
	latest, lsize, err := l.LatestCosignedCheckpoint()
	if err != nil || lsize != size || !bytes.Equal(latest, joined) {
		t.Errorf("latest cosigned: size %d, %v", lsize, err)
	}
	var walked []uint64
	if err := l.WalkCosigned(func(s uint64, sigs []note.Signature) bool {
		walked = append(walked, s)
		return true
	}); err != nil || len(walked) != 1 || walked[0] != size {
		t.Errorf("walk: %v %v", walked, err)
	}
	// verify --data is not disturbed by the cosignature rows.
	l.Close()
	ro, err := Open(context.Background(), Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Verify(context.Background(), note.VerifierList(lv), nil); err != nil {
		t.Errorf("verify with cosignature rows: %v", err)
	}
}

// TestCosignaturesCapped: at most MaxCosignatures keys per checkpoint.
func TestCosignaturesCapped(t *testing.T) {
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	cp, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	var sigs []note.Signature
	for i := range MaxCosignatures + 1 {
		s, _ := newWitnessSigner(t, "witness.example/w"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		sigs = append(sigs, cosignWith(t, s, cp))
	}
	if err := l.AddCosignatures(0, sigs[:MaxCosignatures]); err != nil {
		t.Fatal(err)
	}
	if err := l.AddCosignatures(0, sigs[MaxCosignatures:]); err == nil {
		t.Error("a cosignature beyond the cap was stored")
	}
	joined, _ := l.CosignedCheckpoint(0)
	if _, err := note.Open(joined, note.VerifierList()); err == nil || bytes.Count(joined, []byte("\u2014 ")) != MaxCosignatures+1 {
		t.Errorf("served checkpoint with %d signature lines: %v", bytes.Count(joined, []byte("\u2014 ")), err)
	}
}
