package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"
)

// Witness cosignatures (C2SP tlog-cosignature) are kept apart from the
// checkpoints they cosign: the stored checkpoint note is the log's own
// statement, byte for byte what every node of a cluster signs at that size,
// while cosignatures arrive later, from outside, one witness at a time.
// They live in their own table, outside the Merkle tree and outside the
// entry table (whose end marks the tree size), one row per (size, key):
//
//	'w' size(8) keyhash(4) name   the signature line "— name base64\n"
//
// and are joined to the checkpoint only when it is served
// ([Ledger.CosignedCheckpoint]).

// MaxCosignatures caps the cosignatures stored for one checkpoint, so that
// a served checkpoint stays well under the 100 signatures a signed note
// may carry (golang.org/x/mod/sumdb/note refuses more).
const MaxCosignatures = 64

// ErrBadCosignature is returned by AddCosignatures for a signature line
// that is not one: an invalid key name or a key hash that disagrees with
// the signature's.
var ErrBadCosignature = errors.New("malformed cosignature")

func cosigPrefix(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagWitness}, size)
}

func cosigKey(size uint64, s note.Signature) []byte {
	return append(binary.BigEndian.AppendUint32(cosigPrefix(size), s.Hash), s.Name...)
}

// AddCosignatures durably stores witness cosignatures of the checkpoint of
// tree size, replacing any earlier one by the same key. The caller has
// verified them (the ledger does not know the witnesses' keys); the ledger
// checks only that each is a well-formed signature line and that the
// checkpoint was issued. At most [MaxCosignatures] keys are kept per size;
// further keys are refused.
func (l *Ledger) AddCosignatures(size uint64, sigs []note.Signature) error {
	if l.opts.ReadOnly {
		return errors.New("ledger is read-only")
	}
	release, err := l.acquire()
	if err != nil {
		return err
	}
	defer release()
	for _, s := range sigs {
		if err := checkSignature(s); err != nil {
			return err
		}
	}
	if _, err := l.checkpoint(size); err != nil {
		return err
	}
	have, err := l.cosignatures(size)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, s := range have {
		known[string(cosigKey(size, s))] = true
	}
	b := l.db.NewBatch()
	defer b.Close()
	for _, s := range sigs {
		k := cosigKey(size, s)
		if !known[string(k)] {
			if len(known) >= MaxCosignatures {
				return fmt.Errorf("failed to store cosignatures: checkpoint %d already has %d", size, MaxCosignatures)
			}
			known[string(k)] = true
		}
		if err := b.Set(k, []byte(signatureLine(s)), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("failed to store cosignatures: %w", err)
	}
	return nil
}

// Cosignatures returns the stored cosignatures of the checkpoint of tree
// size, ordered by key hash and name; none is not an error.
func (l *Ledger) Cosignatures(size uint64) ([]note.Signature, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return l.cosignatures(size)
}

func (l *Ledger) cosignatures(size uint64) ([]note.Signature, error) {
	it, err := prefixIter(l.db, cosigPrefix(size))
	if err != nil {
		return nil, fmt.Errorf("failed to read cosignatures: %w", err)
	}
	defer it.Close()
	var out []note.Signature
	for valid := it.First(); valid; valid = it.Next() {
		s, err := parseSignatureLine(it.Value())
		if err != nil {
			return nil, &TamperedError{Seq: size, Reason: "stored cosignature malformed"}
		}
		out = append(out, s)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("failed to read cosignatures: %w", err)
	}
	return out, nil
}

// CosignedCheckpoint returns the signed checkpoint of tree size with every
// stored cosignature appended as a further signature line, or
// [ErrNotFound] if no checkpoint of that size was issued. A cosignature by
// a key that already signed the note is left out.
func (l *Ledger) CosignedCheckpoint(size uint64) ([]byte, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	cp, err := l.checkpoint(size)
	if err != nil {
		return nil, err
	}
	sigs, err := l.cosignatures(size)
	if err != nil {
		return nil, err
	}
	return joinCosignatures(cp, sigs), nil
}

// LatestCosignedCheckpoint is [Ledger.LatestCheckpoint] with its
// cosignatures, as CosignedCheckpoint joins them.
func (l *Ledger) LatestCosignedCheckpoint() ([]byte, uint64, error) {
	cp, err := l.LatestCheckpoint()
	if err != nil {
		return nil, 0, err
	}
	size, err := checkpointSize(cp)
	if err != nil {
		return nil, 0, err
	}
	out, err := l.CosignedCheckpoint(size)
	return out, size, err
}

// WalkCosigned calls fn for each tree size that has cosignatures, newest
// first, with them, until fn returns false.
func (l *Ledger) WalkCosigned(fn func(size uint64, sigs []note.Signature) bool) error {
	release, err := l.acquire()
	if err != nil {
		return err
	}
	defer release()
	it, err := prefixIter(l.db, []byte{tagWitness})
	if err != nil {
		return fmt.Errorf("failed to read cosignatures: %w", err)
	}
	defer it.Close()
	var (
		cur  uint64
		sigs []note.Signature
	)
	for valid := it.Last(); valid; valid = it.Prev() {
		k := it.Key()
		if len(k) < 1+8+4 {
			return &TamperedError{Reason: "cosignature row with a short key", Index: true}
		}
		size := binary.BigEndian.Uint64(k[1:9])
		if sigs != nil && size != cur {
			if !fn(cur, sigs) {
				return nil
			}
			sigs = nil
		}
		s, err := parseSignatureLine(it.Value())
		if err != nil {
			return &TamperedError{Seq: size, Reason: "stored cosignature malformed"}
		}
		cur, sigs = size, append(sigs, s)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("failed to read cosignatures: %w", err)
	}
	if sigs != nil {
		fn(cur, sigs)
	}
	return nil
}

// joinCosignatures appends the signature lines of sigs to the signed note
// cp, leaving out keys that already signed it.
func joinCosignatures(cp []byte, sigs []note.Signature) []byte {
	if len(sigs) == 0 {
		return cp
	}
	_, existing, _ := bytes.Cut(cp, []byte("\n\n"))
	out := bytes.Clone(cp)
	for _, s := range sigs {
		line := signatureLine(s)
		if signedBy(existing, s) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// signedBy reports whether the signature block sigs has a line by s's key.
func signedBy(sigs []byte, s note.Signature) bool {
	for _, line := range strings.Split(string(sigs), "\n") {
		if o, err := parseSignatureLine([]byte(line + "\n")); err == nil && o.Name == s.Name && o.Hash == s.Hash {
			return true
		}
	}
	return false
}

func signatureLine(s note.Signature) string {
	return "\u2014 " + s.Name + " " + s.Base64 + "\n"
}

// parseSignatureLine parses one signed-note signature line, newline
// included.
func parseSignatureLine(line []byte) (note.Signature, error) {
	rest, ok := bytes.CutPrefix(line, []byte("\u2014 "))
	if !ok || !bytes.HasSuffix(rest, []byte("\n")) {
		return note.Signature{}, ErrBadCosignature
	}
	name, b64, ok := strings.Cut(string(rest[:len(rest)-1]), " ")
	if !ok {
		return note.Signature{}, ErrBadCosignature
	}
	s := note.Signature{Name: name, Base64: b64}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < 5 {
		return note.Signature{}, ErrBadCosignature
	}
	s.Hash = binary.BigEndian.Uint32(raw)
	return s, checkSignature(s)
}

// checkSignature checks that s is a well-formed signature: a valid key
// name (non-empty, no spaces or '+') and a signature whose first four
// bytes are its key hash.
func checkSignature(s note.Signature) error {
	if s.Name == "" || !utf8.ValidString(s.Name) || strings.IndexFunc(s.Name, unicode.IsSpace) >= 0 || strings.Contains(s.Name, "+") {
		return ErrBadCosignature
	}
	raw, err := base64.StdEncoding.DecodeString(s.Base64)
	if err != nil || len(raw) < 5 || binary.BigEndian.Uint32(raw) != s.Hash {
		return ErrBadCosignature
	}
	return nil
}

// checkpointSize reads the tree size line of a checkpoint note.
func checkpointSize(cp []byte) (uint64, error) {
	_, rest, ok := bytes.Cut(cp, []byte("\n"))
	if ok {
		var line []byte
		if line, _, ok = bytes.Cut(rest, []byte("\n")); ok {
			if n, err := strconv.ParseUint(string(line), 10, 64); err == nil {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("failed to parse stored checkpoint: %w", ErrTampered)
}
