package ledger_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/paytrail/paytrail/ledger"
)

// An auditor checks one entry against a signed checkpoint with standard
// tools only: the signed-note verifier key pinned out of band, the
// checkpoint note, the entry's exact stored bytes and the proof hashes, as
// GET /v1/ledger/public-key, /v1/ledger/checkpoint, /v1/entries/{seq} and
// /v1/ledger/proofs/... serve them. docs/auditors.md fetches the same values
// over HTTP and calls the same three functions.
func Example_verifyInclusion() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "paytrail-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// The operator's side. Production signs with a Tink Ed25519 keyset
	// (crypto.Keysets.NoteSigner); any note.Signer named after the
	// ledger's origin will do here.
	var skey, vkey string
	signer := func(origin string) (note.Signer, error) {
		if skey == "" {
			var err error
			if skey, vkey, err = note.GenerateKey(rand.Reader, origin); err != nil {
				return nil, err
			}
		}
		return note.NewSigner(skey)
	}
	// Each run appends n entries; Close signs a checkpoint of the tree.
	run := func(n int) error {
		l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Signer: signer})
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			_, err := l.Append(ctx, ledger.Record{
				Kind: ledger.KindAdmin, ID: ledger.NewRecordID(), Time: time.Now(), Policy: 1,
				Body: ledger.AdminBody{ActorID: "cli", ActorName: "example", Action: "example.append", Target: fmt.Sprint(i)},
			})
			if err != nil {
				l.Close()
				return err
			}
		}
		return l.Close()
	}
	if err := run(2); err != nil { // an auditor saves the checkpoint of size 2
		fmt.Println(err)
		return
	}
	if err := run(1); err != nil { // the ledger grows to 3 entries
		fmt.Println(err)
		return
	}
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	saved, err1 := l.Checkpoint(2)
	latest, err2 := l.LatestCheckpoint()
	entry, err3 := l.Entry(1)
	inclusion, err4 := l.InclusionProof(1, 3)
	consistency, err5 := l.ConsistencyProof(2, 3)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		fmt.Println(err)
		return
	}

	// The auditor's side: nothing but vkey and the bytes above.
	cp, err := verifyCheckpoint(vkey, latest)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("checkpoint: size %d, signed by the pinned key\n", cp.Size)
	old, err := verifyCheckpoint(vkey, saved)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := verifyConsistency(old, cp, consistency); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("checkpoint %d -> %d: append-only\n", old.Size, cp.Size)
	if err := verifyInclusion(cp, 1, entry.Bytes(), inclusion); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("entry 1: included")

	// transparency-dev/merkle/proof computes the same RFC 6962 check.
	leaf := rfc6962.DefaultHasher.HashLeaf(entry.Bytes())
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 1, cp.Size, leaf, inclusion, cp.Hash); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("entry 1: included (transparency-dev/merkle/proof agrees)")

	// One flipped byte, and the entry is no longer the one the tree holds.
	tampered := bytes.Clone(entry.Bytes())
	tampered[len(tampered)/2] ^= 1
	fmt.Println("tampered entry 1:", verifyInclusion(cp, 1, tampered, inclusion))
	// Output:
	// checkpoint: size 3, signed by the pinned key
	// checkpoint 2 -> 3: append-only
	// entry 1: included
	// entry 1: included (transparency-dev/merkle/proof agrees)
	// tampered entry 1: entry 1 is not in the signed tree of size 3: invalid transparency proof
}

// verifyCheckpoint opens a C2SP tlog-checkpoint signed note with the pinned
// verifier key vkey (as served by GET /v1/ledger/public-key) and returns
// its body. The log's origin is the key's name, "paytrail/<ledger id>", so
// a checkpoint of another ledger, or signed by another key, is refused.
func verifyCheckpoint(vkey string, signed []byte) (*log.Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("failed to parse verifier key: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(signed, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("failed to verify checkpoint: %w", err)
	}
	if len(cp.Hash) != tlog.HashSize {
		return nil, fmt.Errorf("failed to verify checkpoint: root hash has %d bytes", len(cp.Hash))
	}
	return cp, nil
}

// verifyInclusion checks that entry (the exact stored bytes, base64-decoded
// from GET /v1/entries/{seq}) is leaf seq of the tree that cp signs, using
// the proof hashes of GET /v1/ledger/proofs/inclusion?seq=SEQ&tree_size=SIZE
// with SIZE = cp.Size. The leaf hash is computed here, never taken from the
// server: SHA-256(0x00 || entry), which is tlog.RecordHash.
func verifyInclusion(cp *log.Checkpoint, seq uint64, entry []byte, hashes [][]byte) error {
	if seq >= cp.Size {
		return fmt.Errorf("entry %d is not covered by the checkpoint of size %d yet", seq, cp.Size)
	}
	p, err := tlogHashes(hashes)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(p, int64(cp.Size), tlog.Hash(cp.Hash), int64(seq), tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("entry %d is not in the signed tree of size %d: %w", seq, cp.Size, err)
	}
	return nil
}

// verifyConsistency checks that the tree old signs is a prefix of the tree
// cur signs, using the proof hashes of
// GET /v1/ledger/proofs/consistency?from=OLD&to=CUR: nothing recorded up to
// old.Size was changed, dropped or reordered since.
func verifyConsistency(old, cur *log.Checkpoint, hashes [][]byte) error {
	if old.Size > cur.Size {
		return fmt.Errorf("the new checkpoint (size %d) is smaller than the saved one (size %d)", cur.Size, old.Size)
	}
	if old.Size == 0 {
		return nil // the empty tree is a prefix of every tree
	}
	p, err := tlogHashes(hashes)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(p, int64(cur.Size), tlog.Hash(cur.Hash), int64(old.Size), tlog.Hash(old.Hash)); err != nil {
		return fmt.Errorf("the tree of size %d is not a prefix of the tree of size %d: %w", old.Size, cur.Size, err)
	}
	return nil
}

// tlogHashes converts proof hashes to tlog's fixed-size form, refusing any
// of the wrong length.
func tlogHashes(hashes [][]byte) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(hashes))
	for i, h := range hashes {
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("proof hash %d has %d bytes, want %d", i, len(h), tlog.HashSize)
		}
		out[i] = tlog.Hash(h)
	}
	return out, nil
}
