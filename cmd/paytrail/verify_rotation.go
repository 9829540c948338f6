package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// remoteCheck is what verify --url was asked to check.
type remoteCheck struct {
	baseURL, cpFile, vkey, token string
	// witnesses and policy: the witness keys given (--witness) and the
	// quorum of them the checkpoint must carry (--quorum).
	witnesses []note.Verifier
	policy    witness.Group
	// via, if not 0, is the size of a handover checkpoint whose new
	// signer keys are pinned before anything else (--via).
	via uint64
}

// pinVia fetches the checkpoint of size via, which must verify with a
// pinned key, and pins the other keys of the ledger that signed it.
func pinVia(ctx context.Context, e env, rl *remoteLedger, via uint64, pinned []note.Verifier, cpFile string) ([]note.Verifier, error) {
	cp, err := rl.get(ctx, "/v1/ledger/checkpoints/"+strconv.FormatUint(via, 10), nil, maxCheckpointBytes)
	if err != nil {
		return nil, err
	}
	if _, err := openPinned(cp, pinned, nil); err != nil {
		return nil, checkFailed(e, fmt.Errorf("the checkpoint of size %d (--via) does not verify with a pinned key: %w", via, err))
	}
	if err := pinRotated(ctx, e, rl, cp, pinned, cpFile); err != nil {
		return nil, err
	}
	return pinnedKeys(pinned[0], cpFile)
}

// followHandover tries the handover checkpoints the server lists
// (GET /v1/ledger/handovers), newest first, and pins the new keys of the
// first that verifies with a pinned key. ok is false when none does (or
// the server lists none): the caller then fails as before.
func followHandover(ctx context.Context, e env, rl *remoteLedger, pinned []note.Verifier, cpFile string) ([]note.Verifier, bool) {
	body, err := rl.get(ctx, "/v1/ledger/handovers", nil, 1<<20)
	if err != nil {
		return nil, false
	}
	var h struct {
		Sizes []uint64 `json:"sizes"`
	}
	if json.Unmarshal(body, &h) != nil {
		return nil, false
	}
	for i := len(h.Sizes) - 1; i >= 0; i-- {
		cp, err := rl.get(ctx, "/v1/ledger/checkpoints/"+strconv.FormatUint(h.Sizes[i], 10), nil, maxCheckpointBytes)
		if err != nil {
			continue
		}
		if _, err := openPinned(cp, pinned, nil); err != nil {
			continue
		}
		if err := pinRotated(ctx, e, rl, cp, pinned, cpFile); err != nil {
			return nil, false
		}
		more, err := pinnedKeys(pinned[0], cpFile)
		if err != nil || len(more) == len(pinned) {
			return nil, false
		}
		fmt.Fprintf(e.stdout, "followed the signer rotation at the handover checkpoint of size %d\n", h.Sizes[i])
		return more, true
	}
	return nil, false
}

// keysFile is where verify --url keeps the signer keys it pinned after a
// rotation, beside the checkpoint file: one verifier key per line.
func keysFile(cpFile string) string { return cpFile + ".keys" }

// pinnedKeys is the pinned key v and the keys pinned since in the keys
// file beside cpFile; all must be keys of v's log.
func pinnedKeys(v note.Verifier, cpFile string) ([]note.Verifier, error) {
	out := []note.Verifier{v}
	b, err := os.ReadFile(keysFile(cpFile))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read pinned keys: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, err := note.NewVerifier(strings.TrimSpace(line))
		if err != nil || k.Name() != v.Name() {
			return nil, fmt.Errorf("%s holds a line that is not a verifier key of %s", keysFile(cpFile), v.Name())
		}
		if !hasKey(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

func hasKey(vs []note.Verifier, k note.Verifier) bool {
	return slices.ContainsFunc(vs, func(o note.Verifier) bool { return o.Name() == k.Name() && o.KeyHash() == k.KeyHash() })
}

// openPinned verifies a checkpoint with any of the pinned keys (and
// checks the witnesses' cosignatures it carries, if any) and parses it.
func openPinned(msg []byte, pinned, witnesses []note.Verifier) (*log.Checkpoint, error) {
	var err error
	for _, p := range pinned {
		var cp *log.Checkpoint
		if cp, err = openCheckpointWith(msg, p, witnesses); err == nil {
			return cp, nil
		}
	}
	return nil, err
}

// pinRotated pins a new signer key of the ledger when the checkpoint it
// just verified with a pinned key also carries a valid signature by that
// key (paytrail adds one to the last checkpoint before a rotation): the
// old key vouches for the new one. Candidate keys come from
// GET /v1/ledger/public-keys; the new ones are printed and saved in the
// keys file beside cpFile.
func pinRotated(ctx context.Context, e env, rl *remoteLedger, latest []byte, pinned []note.Verifier, cpFile string) error {
	_, sigs, _ := bytes.Cut(latest, []byte("\n\n"))
	if bytes.Count(sigs, []byte("\u2014 "+pinned[0].Name()+" ")) < 2 {
		return nil // one signature of the ledger's: no rotation to follow
	}
	body, err := rl.get(ctx, "/v1/ledger/public-keys", nil, maxCheckpointBytes)
	if err != nil {
		return err
	}
	var added []string
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		k, err := note.NewVerifier(strings.TrimSpace(line))
		if err != nil || k.Name() != pinned[0].Name() || hasKey(pinned, k) {
			continue
		}
		if _, err := note.Open(latest, note.VerifierList(k)); err != nil {
			continue // not a signer of this checkpoint
		}
		pinned = append(pinned, k)
		added = append(added, strings.TrimSpace(line))
	}
	if len(added) == 0 {
		return nil
	}
	f, err := os.OpenFile(keysFile(cpFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to save pinned keys: %w", err)
	}
	_, werr := f.WriteString(strings.Join(added, "\n") + "\n")
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return fmt.Errorf("failed to save pinned keys: %w", err)
	}
	for _, k := range added {
		fmt.Fprintf(e.stdout, "pinned new signer key %s: it and a key you pinned both signed this checkpoint\n", k)
	}
	fmt.Fprintf(e.stdout, "saved it to %s\n", keysFile(cpFile))
	return nil
}
