package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Caps on what the remote check reads from a server it does not trust.
const (
	remoteTimeout = 30 * time.Second
	// maxCheckpointBytes caps a checkpoint note: three short lines and at
	// most 100 signatures (an ML-DSA-44 cosignature line is about 3.3 KB).
	maxCheckpointBytes = 512 << 10
	// maxProofBytes caps a consistency proof answer: at most
	// maxProofHashes base64 hashes.
	maxProofBytes = 64 << 10
	// maxProofHashes bounds a consistency proof between trees of up to 2^64
	// leaves (at most 2·64 hashes).
	maxProofHashes = 128
)

// errCheckFailed marks a remote check that ran and found the server's log
// inconsistent with what was pinned (exit 1).
var errCheckFailed = errors.New("remote ledger check failed")

// verifyRemote is the remote auditor's check (docs/auditors.md). It fetches the server's latest checkpoint and verifies its
// signature with the pinned verifier key vkey (the key itself, or a file
// holding it); the checkpoint's origin must be the key's name. With no
// checkpoint file yet it trusts this first checkpoint and writes it (mode
// 0600, atomically). Otherwise the saved checkpoint must verify with the
// same key, the new tree must be at least as large, and a consistency proof
// from the server must show that the old tree is a prefix of the new one;
// only then is the file replaced.
//
// Exit codes: 0 consistent (or first use), 1 a signature or proof failed
// (a tampered file, a wrong key, a rewritten or forked log), 2 usage, I/O or
// HTTP errors.
func verifyRemote(ctx context.Context, e env, rc remoteCheck) error {
	baseURL, cpFile, vkey, token := rc.baseURL, rc.cpFile, rc.vkey, rc.token
	if cpFile == "" || vkey == "" {
		return usageError{"verify --url needs --checkpoint FILE and --key VKEY",
			"fetch the key once from GET /v1/ledger/public-key, check it out of band, and pin it"}
	}
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return usageError{err.Error(), ""}
	}
	v, err := loadVerifier(vkey)
	if err != nil {
		return err
	}
	if base.Scheme == "http" && token != "" && !isLoopback(base.Hostname()) {
		fmt.Fprintf(e.stderr, "paytrail: warning: sending the bearer token over plain http to %s\n", base.Host)
	}
	rl := &remoteLedger{base: base, token: token, client: &http.Client{Timeout: remoteTimeout}}
	pinned, err := pinnedKeys(v, cpFile)
	if err != nil {
		return err
	}
	if rc.via > 0 {
		if pinned, err = pinVia(ctx, e, rl, rc.via, pinned, cpFile); err != nil {
			return err
		}
	}

	var query url.Values
	if len(rc.witnesses) > 0 {
		query = url.Values{"witnessed": {"1"}}
	}
	latest, err := rl.get(ctx, "/v1/ledger/checkpoint", query, maxCheckpointBytes)
	if err != nil {
		return err
	}
	cur, err := openPinned(latest, pinned, rc.witnesses)
	if err != nil && rc.via == 0 {
		// The signer may have rotated since: follow the handover the
		// server lists, if one verifies with a pinned key.
		if more, ok := followHandover(ctx, e, rl, pinned, cpFile); ok {
			pinned = more
			cur, err = openPinned(latest, pinned, rc.witnesses)
		}
	}
	if err != nil {
		return checkFailed(e, fmt.Errorf("the server's checkpoint does not verify with the pinned key: %w", err))
	}
	if !rc.policy.Satisfied(latest) {
		return checkFailed(e, fmt.Errorf("the server's checkpoint of size %d is not cosigned by %d of the given witnesses", cur.Size, rc.policy.N))
	}
	if len(rc.witnesses) > 0 {
		fmt.Fprintf(e.stdout, "checkpoint of size %d cosigned by a quorum of %d of your %d witnesses\n", cur.Size, rc.policy.N, len(rc.witnesses))
	}
	if err := pinRotated(ctx, e, rl, latest, pinned, cpFile); err != nil {
		return err
	}

	saved, err := os.ReadFile(cpFile)
	if errors.Is(err, fs.ErrNotExist) {
		if err := writeFileAtomic(cpFile, latest, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "trusted first checkpoint of %s: size %d, root %s\n", cur.Origin, cur.Size, b64(cur.Hash))
		fmt.Fprintf(e.stdout, "saved it to %s; later runs prove the ledger only grew from here\n", cpFile)
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read checkpoint file: %w", err)
	}
	old, err := openPinned(saved, pinned, nil)
	if err != nil {
		return checkFailed(e, fmt.Errorf("the saved checkpoint %s does not verify with the pinned key: %w", cpFile, err))
	}

	var hashes [][]byte
	switch {
	case cur.Size < old.Size:
		return checkFailed(e, fmt.Errorf("the server's tree shrank from size %d to %d", old.Size, cur.Size))
	case cur.Size == old.Size:
		if !bytes.Equal(cur.Hash, old.Hash) {
			return checkFailed(e, fmt.Errorf("two signed checkpoints of size %d have different roots (a forked ledger)", cur.Size))
		}
		fmt.Fprintf(e.stdout, "OK: %s unchanged at size %d, root %s\n", cur.Origin, cur.Size, b64(cur.Hash))
		return nil
	case old.Size > 0:
		// From size 0 there is nothing to prove: every tree extends the
		// empty one (and the saved root is checked below).
		if hashes, err = rl.consistency(ctx, old.Size, cur.Size); err != nil {
			return err
		}
	}
	if old.Size == 0 && !bytes.Equal(old.Hash, rfc6962.DefaultHasher.EmptyRoot()) {
		return checkFailed(e, errors.New("the saved checkpoint of size 0 does not commit to the empty tree"))
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cur.Size, hashes, old.Hash, cur.Hash); err != nil {
		return checkFailed(e, fmt.Errorf("the consistency proof from size %d to %d does not verify: %w", old.Size, cur.Size, err))
	}
	if err := writeFileAtomic(cpFile, latest, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "OK: %s grew consistently from size %d to %d, root %s\n", cur.Origin, old.Size, cur.Size, b64(cur.Hash))
	fmt.Fprintf(e.stdout, "replaced %s with the new checkpoint\n", cpFile)
	return nil
}

// checkFailed prints the failure for the operator and ends with exit 1.
// The reason is printed once, on the FAIL line; standard error only says
// that the check failed.
func checkFailed(e env, err error) error {
	fmt.Fprintf(e.stdout, "FAIL: %s\n", err)
	return exitError{exitFailure, errCheckFailed}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// parseBaseURL checks that raw is an http(s) URL of a server.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("--url must be an http or https base URL such as https://paytrail.example.com, got %q", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadVerifier parses vkey as a signed-note verifier key or, failing that,
// reads it from the file vkey names.
func loadVerifier(vkey string) (note.Verifier, error) {
	if v, err := note.NewVerifier(strings.TrimSpace(vkey)); err == nil {
		return v, nil
	}
	b, err := os.ReadFile(vkey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usageError{"--key is neither a verifier key nor a file holding one",
			"pass the key exactly as GET /v1/ledger/public-key serves it, e.g. paytrail/<ledger id>+<hash>+<key>"}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read verifier key file: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, usageError{fmt.Sprintf("%s does not hold a signed-note verifier key", vkey), ""}
	}
	return v, nil
}

// loadVerifiers loads every key of vkeys with loadVerifier, once: the
// same key given twice (as itself and as a file) would make every
// signature ambiguous to a note.VerifierList.
func loadVerifiers(vkeys []string) ([]note.Verifier, error) {
	vs := make([]note.Verifier, 0, len(vkeys))
	for _, k := range vkeys {
		v, err := loadVerifier(k)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(vs, func(w note.Verifier) bool { return w.Name() == v.Name() && w.KeyHash() == v.KeyHash() }) {
			vs = append(vs, v)
		}
	}
	return vs, nil
}

// openCheckpoint verifies a checkpoint note with v and parses it. The
// origin must be v's name, so a key can only vouch for its own ledger.
func openCheckpoint(msg []byte, v note.Verifier) (*log.Checkpoint, error) {
	return openCheckpointWith(msg, v, nil)
}

// openCheckpointWith is openCheckpoint that also verifies the
// cosignatures of the witnesses ws the note carries: one that fails
// fails the note.
func openCheckpointWith(msg []byte, v note.Verifier, ws []note.Verifier) (*log.Checkpoint, error) {
	cp, _, _, err := log.ParseCheckpoint(msg, v.Name(), v, ws...)
	if err != nil {
		return nil, err
	}
	if len(cp.Hash) != rfc6962.DefaultHasher.Size() {
		return nil, fmt.Errorf("root hash is %d bytes, want %d", len(cp.Hash), rfc6962.DefaultHasher.Size())
	}
	return cp, nil
}

// remoteLedger reads a paytrail server's ledger routes.
type remoteLedger struct {
	base   *url.URL
	token  string
	client *http.Client
}

// get fetches path with query and returns a 200 answer of at most limit
// bytes.
func (r *remoteLedger) get(ctx context.Context, path string, query url.Values, limit int64) ([]byte, error) {
	u := *r.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build request: %w", err)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch %s: %w", u.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", u.Path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, hinted{fmt.Errorf("failed to fetch %s: the server answered 401", u.Path),
			[]string{"pass a valid token with --token or PAYTRAIL_TOKEN"}}
	case resp.StatusCode == http.StatusForbidden:
		return nil, hinted{fmt.Errorf("failed to fetch %s: the server answered 403", u.Path),
			[]string{"consistency proofs need an auditor's token"}}
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("failed to fetch %s: the server answered %d (%s)", u.Path, resp.StatusCode, errorCode(body))
	case int64(len(body)) > limit:
		return nil, fmt.Errorf("failed to fetch %s: the answer exceeds %d bytes", u.Path, limit)
	}
	return body, nil
}

// consistency fetches the consistency proof between tree sizes from and to
// (1 ≤ from < to). It only decodes it; the caller verifies it.
func (r *remoteLedger) consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	body, err := r.get(ctx, "/v1/ledger/proofs/consistency", q, maxProofBytes)
	if err != nil {
		return nil, err
	}
	hashes, err := parseConsistency(body, from, to)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the consistency proof: %w", err)
	}
	return hashes, nil
}

// parseConsistency decodes a consistency proof answer
// {"from": A, "to": B, "hashes": [base64, ...]} for sizes from and to. It
// decodes into a temporary and returns nothing unless all of it is
// well-formed.
func parseConsistency(body []byte, from, to uint64) ([][]byte, error) {
	var p struct {
		From   *uint64  `json:"from"`
		To     *uint64  `json:"to"`
		Hashes [][]byte `json:"hashes"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	if p.From == nil || p.To == nil || *p.From != from || *p.To != to {
		return nil, fmt.Errorf("the answer is not for sizes %d to %d", from, to)
	}
	if len(p.Hashes) > maxProofHashes {
		return nil, fmt.Errorf("%d hashes, more than a proof can have", len(p.Hashes))
	}
	for _, h := range p.Hashes {
		if len(h) != rfc6962.DefaultHasher.Size() {
			return nil, fmt.Errorf("a hash is %d bytes, want %d", len(h), rfc6962.DefaultHasher.Size())
		}
	}
	return p.Hashes, nil
}

// writeFileAtomic replaces path with data: it writes a temporary file in
// the same directory with mode perm, syncs it, renames it over path and
// syncs the directory, so that after a crash path holds either the old or
// the new content, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to write checkpoint file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("failed to write checkpoint file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("failed to write checkpoint file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to sync checkpoint file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write checkpoint file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("failed to replace checkpoint file: %w", err)
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to sync checkpoint directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to sync checkpoint directory: %w", err)
	}
	return nil
}
