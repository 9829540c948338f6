package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot writes a consistent copy of the ledger store into dir, which
// must not exist, while appends go on: Pebble's Checkpoint hard-links the
// immutable tables and copies the WAL and MANIFEST as of one instant.
// Appends are atomic batches, so the copy ends at a whole group commit:
// its entries, tree hashes, checkpoints and index rows agree. Open it
// read-only (Options.ReadOnly) to read its size and root.
func (l *Ledger) Snapshot(dir string) error {
	release, err := l.acquire()
	if err != nil {
		return err
	}
	defer release()
	if err := l.db.Checkpoint(dir); err != nil {
		return fmt.Errorf("failed to snapshot the ledger: %w", err)
	}
	return nil
}

// metaOrigin holds the checkpoint origin when it is not the default
// "paytrail/<ledger id>" (a restored ledger, see NewOrigin);
// metaOriginHistory the earlier origins, as JSON [OriginSpan].
var (
	metaOrigin        = []byte("aorigin")
	metaOriginHistory = []byte("aorigin_history")
)

// OriginSpan is an origin the ledger signed checkpoints under before its
// current one: checkpoints of sizes up to Until carry it.
type OriginSpan struct {
	Origin string `json:"origin"`
	Until  uint64 `json:"until"`
}

// loadOrigin sets l.origin and l.history from the metadata.
func (l *Ledger) loadOrigin() error {
	l.origin = "paytrail/" + l.id
	if v, ok, err := get(l.db, metaOrigin); err != nil {
		return fmt.Errorf("failed to read ledger origin: %w", err)
	} else if ok {
		l.origin = string(v)
	}
	v, ok, err := get(l.db, metaOriginHistory)
	if err != nil {
		return fmt.Errorf("failed to read ledger origin history: %w", err)
	}
	if ok {
		if err := json.Unmarshal(v, &l.history); err != nil {
			return fmt.Errorf("failed to read ledger origin history: %w", ErrTampered)
		}
	}
	return nil
}

// PastOrigins returns the origins the ledger signed checkpoints under
// before Origin, oldest first.
func (l *Ledger) PastOrigins() []OriginSpan { return l.history }

// originAt reports whether a checkpoint of size may carry origin.
func (l *Ledger) originAt(origin string, size uint64) bool {
	if origin == l.origin {
		return true
	}
	for _, h := range l.history {
		if origin == h.Origin && size <= h.Until {
			return true
		}
	}
	return false
}

// NewOrigin makes the ledger in opts.Dir (opened without a signer) sign
// its checkpoints from now on under a new, random origin,
// "paytrail/<ledger id>/restore-<16 hex digits>", and appends an admin
// entry saying so with details, under privacy policy version policy. The ledger id, and so every ciphertext's
// associated data, stays the same.
//
// A restored ledger needs this: the ledger it was copied from may have
// gone on appending and signing after the copy, and any entry the copy
// appends under the same origin would make a checkpoint inconsistent with
// those (a fork). Under a new origin the copy is a new log, whose first
// entries are byte for byte those of the old one: the root of its tree at
// any size up to the copy's equals the old log's there.
func NewOrigin(ctx context.Context, opts Options, policy int, details map[string]string) (string, error) {
	opts.Signer = nil
	l, err := Open(ctx, opts)
	if err != nil {
		return "", err
	}
	defer l.Close()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	origin := "paytrail/" + l.id + "/restore-" + hex.EncodeToString(b[:])
	size := l.Size()
	hist, err := json.Marshal(append(append([]OriginSpan(nil), l.history...), OriginSpan{Origin: l.origin, Until: size}))
	if err != nil {
		return "", err
	}
	batch := l.db.NewBatch()
	defer batch.Close()
	if err := errors.Join(batch.Set(metaOrigin, []byte(origin), nil), batch.Set(metaOriginHistory, hist, nil)); err != nil {
		return "", err
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return "", fmt.Errorf("failed to store the new origin: %w", err)
	}
	d := map[string]string{"previous_origin": l.origin, "origin": origin, "size": fmt.Sprint(size)}
	for k, v := range details {
		d[k] = v
	}
	_, err = l.Append(ctx, Record{
		Kind: KindAdmin, ID: NewRecordID(), Time: time.Now().UTC(), Policy: policy,
		Body: AdminBody{ActorID: "cli", ActorName: "paytrail restore", Action: "ledger.restore", Target: origin, Details: d},
	})
	if err != nil {
		return "", fmt.Errorf("failed to record the restore: %w", err)
	}
	return origin, l.Close()
}
