package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"
)

// checkpointer coordinates the signing goroutine with the appender.
type checkpointer struct {
	mu       sync.Mutex // serializes signing and guards lastSize
	lastSize uint64
	signed   bool
	// prev is the signer RotateSigner replaced, until the next checkpoint
	// carries its signature beside the new signer's.
	prev     note.Signer
	wake     chan struct{}
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func (c *checkpointer) init() {
	c.wake = make(chan struct{}, 1)
	c.quit = make(chan struct{})
	c.done = make(chan struct{})
}

// poke tells the loop that entries arrived.
func (c *checkpointer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *checkpointer) stop() {
	c.stopOnce.Do(func() {
		close(c.quit)
		<-c.done
	})
}

// checkpointLoop signs a checkpoint at most once per interval, and only when
// the tree grew, so a checkpoint follows any append within one interval.
func (l *Ledger) checkpointLoop() {
	defer close(l.cp.done)
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	pending := false
	for {
		select {
		case <-l.cp.quit:
			return
		case <-l.cp.wake:
			pending = true
		case <-t.C:
			if !pending {
				continue
			}
			pending = false
			if err := l.checkpointNow(); err != nil {
				l.opts.Logger.Error("failed to sign checkpoint", "err", err)
				pending = true
			}
		}
	}
}

// checkpointNow signs and durably stores a checkpoint of the current tree if
// none exists for its size yet.
func (l *Ledger) checkpointNow() error {
	l.cp.mu.Lock()
	defer l.cp.mu.Unlock()
	h := l.head.Load()
	size, tree := h.size, h.tree
	if l.cp.signed && size == l.cp.lastSize {
		return nil
	}
	return l.signTree(size, tree)
}

// RotateSigner makes signer sign every checkpoint from now on, without a
// restart: the next checkpoint, signed at once (or, if the current tree
// already has one, that checkpoint co-signed), carries the signatures of
// both the previous signer and signer, so that a verifier pinned to the
// old key accepts it and can pin the new key too.
func (l *Ledger) RotateSigner(signer note.Signer) error {
	if !l.signing {
		return errors.New("ledger: RotateSigner on a ledger opened without a signer")
	}
	l.cp.mu.Lock()
	l.cp.prev, l.signer = l.signer, signer
	l.cp.signed = false
	l.cp.mu.Unlock()
	return l.checkpointNow()
}

// signedAt records that the checkpoint of size is stored and signed by the
// current signer. The caller holds cp.mu.
func (l *Ledger) signedAt(size uint64) {
	l.cp.lastSize, l.cp.signed = size, true
	l.mu.Lock()
	if !l.hasCP || size >= l.latestCP {
		l.latestCP, l.hasCP, l.cpKnown = size, true, true
	}
	l.mu.Unlock()
}

// LatestCheckpoint returns the most recent signed checkpoint note.
func (l *Ledger) LatestCheckpoint() ([]byte, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	l.mu.Lock()
	if !l.cpKnown {
		size, ok, err := latestCheckpointSize(l.db)
		if err != nil {
			l.mu.Unlock()
			return nil, err
		}
		l.latestCP, l.hasCP, l.cpKnown = size, ok, true
	}
	size, ok := l.latestCP, l.hasCP
	l.mu.Unlock()
	if !ok {
		return nil, ErrNotFound
	}
	return l.checkpoint(size)
}

// Checkpoint returns the signed checkpoint issued for tree size, or
// [ErrNotFound] if none was.
func (l *Ledger) Checkpoint(size uint64) ([]byte, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return l.checkpoint(size)
}

func (l *Ledger) checkpoint(size uint64) ([]byte, error) {
	v, ok, err := get(l.db, checkpointKey(size))
	if err != nil {
		return nil, fmt.Errorf("failed to read checkpoint: %w", err)
	}
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}

// cosign adds the current signer's signature to the stored checkpoint of
// size if it lacks one. The checkpoint's text and earlier signatures are
// kept byte for byte.
func (l *Ledger) cosign(size uint64, stored []byte) error {
	text, sigs, ok := bytes.Cut(stored, []byte("\n\n"))
	if !ok {
		return fmt.Errorf("failed to parse stored checkpoint: %w", ErrTampered)
	}
	prefix := "\u2014 " + l.signer.Name() + " "
	for _, line := range strings.Split(string(sigs), "\n") {
		b64, found := strings.CutPrefix(line, prefix)
		if !found {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && len(sig) >= 4 && binary.BigEndian.Uint32(sig) == l.signer.KeyHash() {
			return nil
		}
	}
	fresh, err := note.Sign(&note.Note{Text: string(text) + "\n"}, l.signer)
	if err != nil {
		return fmt.Errorf("failed to co-sign checkpoint: %w", err)
	}
	newSig := fresh[len(text)+2:]
	b := l.db.NewBatch()
	defer b.Close()
	b.Set(checkpointKey(size), append(bytes.Clone(stored), newSig...), nil)
	// Signed by an earlier key and the new one: a handover.
	b.Set(handoverKey(size), nil, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("failed to store co-signed checkpoint: %w", err)
	}
	return nil
}

// handoverPrefix keys the sizes of handover checkpoints: those signed by
// a signer key and the key that replaced it. A verifier pinned to the old
// key learns the new one from such a checkpoint (GET /v1/ledger/handovers).
const handoverPrefix = "ahandover/"

func handoverKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(handoverPrefix), size)
}

// Handovers returns the sizes of the handover checkpoints, oldest first.
func (l *Ledger) Handovers() ([]uint64, error) {
	var out []uint64
	err := l.scan([]byte(handoverPrefix), func(rest, _ []byte) error {
		if len(rest) == 8 {
			out = append(out, binary.BigEndian.Uint64(rest))
		}
		return nil
	})
	return out, err
}
