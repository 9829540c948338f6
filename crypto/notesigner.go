package crypto

import (
	"fmt"

	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/mod/sumdb/note"
)

// NoteSigner returns the primary key of KeysetSigner as a note.Signer for
// signed notes (C2SP signed-note, tlog-checkpoint) whose key name is name,
// e.g. "paytrail/<ledger id>". Its KeyHash is the one note computes for an
// Ed25519 key of that name, so note.NewVerifier with a key from
// NoteVerifierKeys(name) verifies its signatures.
//
// The signer keeps the key that was primary when it was made: after
// Rotate(KeysetSigner), call NoteSigner again. Before returning, it signs
// and verifies a probe message, so a signer that would produce unverifiable
// checkpoints is never handed out.
func (k *Keysets) NoteSigner(name string) (note.Signer, error) {
	st := k.state.Load()
	_, v, err := noteVerifier(name, st.pubs[0].pub)
	if err != nil {
		return nil, err
	}
	s := &noteSigner{name: name, hash: v.KeyHash(), signer: st.signer}
	probe := []byte("paytrail note signer probe\n")
	sig, err := s.Sign(probe)
	if err != nil {
		return nil, err
	}
	if !v.Verify(probe, sig) {
		return nil, fmt.Errorf("failed to make note signer: probe signature does not verify with the primary public key")
	}
	return s, nil
}

// NoteVerifierKeys returns a verifier key for name (the format of
// note.NewEd25519VerifierKey: name+hash+base64(0x01||public key)) for every
// enabled key of KeysetSigner, primary first, so that notes signed before a
// rotation stay verifiable. The first is the one to publish as the current
// checkpoint key.
func (k *Keysets) NoteVerifierKeys(name string) ([]string, error) {
	st := k.state.Load()
	out := make([]string, 0, len(st.pubs))
	for _, p := range st.pubs {
		vkey, _, err := noteVerifier(name, p.pub)
		if err != nil {
			return nil, err
		}
		out = append(out, vkey)
	}
	return out, nil
}

// noteVerifier returns the verifier key of an Ed25519 public key and note's
// own verifier for it. Parsing the key back with note.NewVerifier checks
// that name is a valid key name (non-empty, no spaces, no '+') and gives the
// key hash exactly as note computes it.
func noteVerifier(name string, pub []byte) (string, note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", nil, fmt.Errorf("failed to make verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return "", nil, fmt.Errorf("failed to make verifier for key name %q: %w", name, err)
	}
	return vkey, v, nil
}

// noteSigner is a note.Signer backed by a Tink Ed25519 signer with no
// output prefix, so Sign returns a plain 64-byte Ed25519 signature.
type noteSigner struct {
	name   string
	hash   uint32
	signer tink.Signer
}

func (s *noteSigner) Name() string    { return s.name }
func (s *noteSigner) KeyHash() uint32 { return s.hash }

func (s *noteSigner) Sign(msg []byte) ([]byte, error) {
	sig, err := s.signer.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("failed to sign note: %w", err)
	}
	return sig, nil
}
