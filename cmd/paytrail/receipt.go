package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/formats/witness"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

const receiptUsage = `usage: paytrail receipt <subcommand> [flags]

subcommands:
  verify  check a receipt offline: verify --key VKEY [--witness WKEY]... [--quorum K] FILE

run 'paytrail receipt verify --help' for its flags`

// maxReceiptBytes caps a receipt file: an entry (a webhook body is at
// most 1 MiB, sealed and base64-encoded), 64 hashes and a checkpoint.
const maxReceiptBytes = 16 << 20

func cmdReceipt(e env) error {
	sub, err := subcommand(e, "receipt", "receipt needs a subcommand: verify", receiptUsage)
	if err != nil {
		return err
	}
	e.args = e.args[1:]
	if sub != "verify" {
		return usageError{fmt.Sprintf("unknown receipt subcommand %q", sub), "run 'paytrail receipt --help'"}
	}
	fs := newFlags("receipt verify", "--key VKEY [--witness WKEY]... [--quorum K] FILE")
	vkey := fs.String("key", "", "the ledger's pinned verifier key (GET /v1/ledger/public-key), or a file holding it")
	var wkeys []string
	fs.Func("witness", "a witness's cosignature verifier key, or a file holding it; repeat for each witness you trust",
		func(k string) error { wkeys = append(wkeys, k); return nil })
	quorum := quorumFlag(fs, "how many of the --witness keys must have cosigned (default: all of them)")
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 1 || *vkey == "" {
		return usageError{"receipt verify needs --key VKEY and one receipt FILE", "fetch a receipt with GET /v1/entries/{seq}/receipt"}
	}
	v, err := loadVerifier(*vkey)
	if err != nil {
		return err
	}
	policy, ws, err := witnessPolicy(wkeys, *quorum)
	if err != nil {
		return err
	}
	b, err := readCapped(args[0], maxReceiptBytes)
	if err != nil {
		return err
	}
	r, err := verifyReceipt(b, v, ws, policy)
	if err != nil {
		return checkFailed(e, err)
	}
	fmt.Fprintf(e.stdout, "OK: entry %d is in the tree of size %d of %s, root %s\n", r.index, r.cp.Size, r.cp.Origin, b64(r.cp.Hash))
	fmt.Fprintf(e.stdout, "leaf hash %s; signed by %s", b64(r.leaf), v.Name())
	if len(ws) > 0 {
		fmt.Fprintf(e.stdout, "; cosigned by %d of %d witnesses (%s), quorum %d", len(r.cosigners), len(ws), strings.Join(r.cosigners, ", "), policy.N)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// quorumFlag registers --quorum K: a number of witnesses, -1 (all of
// them) when not given.
func quorumFlag(fs *flag.FlagSet, usage string) *int {
	k := -1
	fs.Func("quorum", usage, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("must be a number of witnesses, 0 or more")
		}
		k = n
		return nil
	})
	return &k
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageError{fmt.Sprintf("%s does not exist", path), ""}
		}
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// witnessPolicy loads the witness keys (each a cosignature vkey or a file
// holding one) and formats' quorum policy over them: k of them, all of
// them when k < 0.
func witnessPolicy(keys []string, k int) (witness.Group, []note.Verifier, error) {
	var ws []note.Verifier
	g := witness.Group{}
	for _, key := range keys {
		s := strings.TrimSpace(key)
		if _, err := fnote.NewVerifierForCosignatureV1(s); err != nil {
			b, rerr := os.ReadFile(key)
			if rerr != nil {
				return g, nil, usageError{"--witness is neither a cosignature verifier key nor a file holding one", "pass the key 'paytrail witness key' printed"}
			}
			s = strings.TrimSpace(string(b))
		}
		v, err := fnote.NewVerifierForCosignatureV1(s)
		if err != nil {
			return g, nil, usageError{fmt.Sprintf("%s does not hold a cosignature verifier key", key), ""}
		}
		for _, o := range ws {
			if o.Name() == v.Name() && o.KeyHash() == v.KeyHash() {
				return g, nil, usageError{"the same --witness key is given twice", ""}
			}
		}
		ws = append(ws, v)
		g.Components = append(g.Components, witness.Witness{Key: v})
	}
	switch {
	case k < 0:
		k = len(ws)
	case k > len(ws):
		return g, nil, usageError{fmt.Sprintf("--quorum %d is more than the %d --witness keys given", k, len(ws)), ""}
	}
	g.N = k
	return g, ws, nil
}

type verifiedReceipt struct {
	index     uint64
	leaf      []byte
	cp        *log.Checkpoint
	cosigners []string
}

// verifyReceipt checks a C2SP tlog-proof receipt: the leaf hash of its
// extra data (the entry's stored bytes), the log's signature on the
// checkpoint, the witness quorum, and the inclusion proof.
func verifyReceipt(b []byte, v note.Verifier, ws []note.Verifier, policy witness.Group) (*verifiedReceipt, error) {
	// formats' parser reads lines with a bufio.Scanner, whose 64 KiB
	// limit a large entry's extra line exceeds: the extra line is decoded
	// here, the rest parsed by formats.
	extra, rest, err := cutExtra(b)
	if err != nil {
		return nil, err
	}
	var p proof.TLogProof
	if err := p.Unmarshal(rest); err != nil {
		return nil, fmt.Errorf("the receipt is not a tlog-proof: %w", err)
	}
	if extra == nil {
		return nil, errors.New("the receipt carries no entry (no extra line)")
	}
	if len(p.Hashes) > 64 {
		return nil, fmt.Errorf("the inclusion proof has %d hashes, more than any tree can need", len(p.Hashes))
	}
	cp, _, n, err := log.ParseCheckpoint(p.Checkpoint, v.Name(), v, ws...)
	if err != nil {
		return nil, fmt.Errorf("the receipt's checkpoint does not verify with the pinned key: %w", err)
	}
	if len(cp.Hash) != rfc6962.DefaultHasher.Size() {
		return nil, fmt.Errorf("the checkpoint's root hash is %d bytes", len(cp.Hash))
	}
	r := &verifiedReceipt{index: p.Index, cp: cp, leaf: rfc6962.DefaultHasher.HashLeaf(extra)}
	for _, s := range n.Sigs {
		for _, w := range ws {
			if s.Name == w.Name() && s.Hash == w.KeyHash() {
				r.cosigners = append(r.cosigners, s.Name)
			}
		}
	}
	if !policy.Satisfied(p.Checkpoint) {
		return nil, fmt.Errorf("the checkpoint is cosigned by %d of the given witnesses, fewer than the quorum of %d", len(r.cosigners), policy.N)
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, r.leaf, hashes, cp.Hash); err != nil {
		return nil, fmt.Errorf("entry %d is not in the signed tree of size %d: %w", p.Index, cp.Size, err)
	}
	return r, nil
}

// cutExtra removes the tlog-proof's extra line, if any, and returns its
// decoded data and the proof without it.
func cutExtra(b []byte) (extra, rest []byte, err error) {
	header, after, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return nil, b, nil
	}
	line, tail, ok := bytes.Cut(after, []byte("\n"))
	e, isExtra := bytes.CutPrefix(line, []byte("extra "))
	if !ok || !isExtra {
		return nil, b, nil
	}
	extra, err = base64.StdEncoding.DecodeString(string(e))
	if err != nil {
		return nil, nil, fmt.Errorf("the receipt's extra line is not base64")
	}
	return extra, append(append(bytes.Clone(header), '\n'), tail...), nil
}
