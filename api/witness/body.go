package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
)

// Limits of an add-checkpoint request.
const (
	// MaxProofLines is the most consistency proof lines a client may send
	// (tlog-witness: "The client MUST NOT send more than 63").
	MaxProofLines = 63
	// MaxBodySize caps an add-checkpoint body: a few short lines, up to
	// 63 hashes and a checkpoint with its signatures (an ML-DSA-44
	// cosignature line is about 3.3 KB; a note has at most 100).
	MaxBodySize = 512 << 10
	// hashSize is the size of an RFC 6962 (SHA-256) hash.
	hashSize = 32
)

// ErrMalformed is returned by ParseAddCheckpoint for a body that does not
// follow the tlog-witness grammar; a witness answers it with 400.
var ErrMalformed = errors.New("malformed add-checkpoint request")

// AddCheckpoint is the body of a tlog-witness add-checkpoint request: the
// size of the checkpoint the client believes the witness last cosigned, a
// consistency proof from that size to the new checkpoint's, and the new
// checkpoint, a signed note.
type AddCheckpoint struct {
	OldSize    uint64
	Proof      [][]byte
	Checkpoint []byte
}

// Marshal encodes the request body.
func (a AddCheckpoint) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("old ")
	b.WriteString(strconv.FormatUint(a.OldSize, 10))
	b.WriteByte('\n')
	for _, h := range a.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(a.Checkpoint)
	return b.Bytes()
}

// ParseAddCheckpoint parses an add-checkpoint body strictly: "old N" with
// N in canonical decimal, at most MaxProofLines lines each holding one
// base64 SHA-256 hash, an empty line, and a non-empty checkpoint. Every
// line ends in a newline. It checks nothing the checkpoint says; the
// caller opens it as a signed note.
func ParseAddCheckpoint(body []byte) (*AddCheckpoint, error) {
	if len(body) > MaxBodySize {
		return nil, ErrMalformed
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, ErrMalformed
	}
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return nil, ErrMalformed
	}
	old, err := ParseSize(num)
	if err != nil {
		return nil, ErrMalformed
	}
	var proof [][]byte
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, ErrMalformed
		}
		if len(line) == 0 {
			break
		}
		if len(proof) == MaxProofLines {
			return nil, ErrMalformed
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(h) != hashSize {
			return nil, ErrMalformed
		}
		proof = append(proof, h)
	}
	if len(rest) == 0 || rest[len(rest)-1] != '\n' {
		return nil, ErrMalformed
	}
	return &AddCheckpoint{OldSize: old, Proof: proof, Checkpoint: rest}, nil
}

// ParseSize parses a tree size in canonical ASCII decimal: no sign, no
// leading zeroes (except "0" itself), at most 2^64-1.
func ParseSize(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return 0, ErrMalformed
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, ErrMalformed
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, ErrMalformed
	}
	return n, nil
}
