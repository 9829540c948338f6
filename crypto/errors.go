package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
)

var (
	// ErrWrongMasterKey means a keyset could not be decrypted with the master
	// key: either the master is not the one the keysets were written with, or
	// the keyset file was altered (an AEAD cannot tell the two apart).
	ErrWrongMasterKey = errors.New("wrong master key")

	// ErrNoKeysets means a keyset file does not exist; InitKeysets creates
	// it. errors.Is(err, fs.ErrNotExist) also holds.
	ErrNoKeysets = fmt.Errorf("no keysets: %w", fs.ErrNotExist)

	// ErrCorruptKeyset means a keyset file decrypted (or failed to parse)
	// but does not hold what paytrail wrote: wrong format, wrong name, or
	// keys of the wrong type.
	ErrCorruptKeyset = errors.New("corrupt keyset")

	// ErrInvalidPAN means a card number is malformed. Its message, and the
	// message of every error wrapping it in this package, never contains the
	// number or any digit of it.
	ErrInvalidPAN = errors.New("invalid card number")

	// ErrDecrypt means a ciphertext (or a wrapped data key) did not
	// authenticate: wrong key, wrong associated data, or altered bytes. The
	// message contains neither plaintext nor ciphertext.
	ErrDecrypt = errors.New("failed to decrypt")

	// ErrDataKeyDestroyed means the key store has no wrapped key for a data
	// key id: it was destroyed (crypto-shredded) or never stored.
	ErrDataKeyDestroyed = errors.New("data key destroyed")
)

// appendPart appends one length-prefixed part: len(p) as a 4-byte big-endian
// integer, then p. Every PRF input and associated data in this package is a
// sequence of such parts starting with a domain label, which makes the
// encoding injective: ("ab","c") and ("a","bc") never collide.
func appendPart[T ~string | ~[]byte](dst []byte, p T) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
	return append(dst, p...)
}

// encodeParts encodes label followed by parts with appendPart.
func encodeParts(label string, parts ...string) []byte {
	n := 4 + len(label)
	for _, p := range parts {
		n += 4 + len(p)
	}
	b := make([]byte, 0, n)
	b = appendPart(b, label)
	for _, p := range parts {
		b = appendPart(b, p)
	}
	return b
}
