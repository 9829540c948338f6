package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"
)

// The value of a payment entry's 'e' index row is its foldInput in a small
// binary form, so that verify re-folds every transaction without decoding
// JSON:
//
//	version(1)=1 flags(1: bit 0 = card, bit 1 = card digest)
//	type merchant currency status    (uvarint length + bytes each)
//	amount                           (varint)
//	occurred_at                      (varint Unix seconds, uvarint nanoseconds, UTC)
//	len(alt_ids) alt_ids...          (uvarint count, then length + bytes each)
//	card digest                      (cardDigestSize bytes, if flag bit 1)
//
// The card digest is that of the entry's card copy (CardCopy), which the
// transaction's state row holds for its latest card entry; rows written
// before copies were kept have none.
const foldRowVersion = 1

const (
	foldFlagCard   = 1 << 0
	foldFlagDigest = 1 << 1
)

var errBadFoldRow = errors.New("malformed payment entry row")

func appendFoldRow(b []byte, in *foldInput) []byte {
	var flags byte
	if in.Card {
		flags |= foldFlagCard
	}
	if in.CardDigest != nil {
		flags |= foldFlagDigest
	}
	b = append(b, foldRowVersion, flags)
	for _, s := range [...]string{in.Type, in.Merchant, in.Currency, in.Status} {
		b = appendBytesField(b, s)
	}
	b = binary.AppendVarint(b, in.Amount)
	t := in.OccurredAt.UTC()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(len(in.AltIDs)))
	for _, id := range in.AltIDs {
		b = appendBytesField(b, id)
	}
	return append(b, in.CardDigest...)
}

func appendBytesField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// parseFoldRow decodes a row written by appendFoldRow; trailing or missing
// bytes are an error.
func parseFoldRow(b []byte) (*foldInput, error) {
	r := foldRowReader{b: b}
	if r.byte() != foldRowVersion {
		return nil, errBadFoldRow
	}
	flags := r.byte()
	in := &foldInput{Card: flags&foldFlagCard != 0}
	in.Type, in.Merchant, in.Currency, in.Status = r.string(), r.string(), r.string(), r.string()
	in.Amount = r.varint()
	sec, nsec := r.varint(), r.uvarint()
	if nsec >= 1e9 {
		r.bad = true
	}
	in.OccurredAt = time.Unix(sec, int64(nsec)).UTC()
	if n := r.uvarint(); n > 0 && n <= uint64(len(r.b)) {
		in.AltIDs = make([]string, n)
		for i := range in.AltIDs {
			in.AltIDs[i] = r.string()
		}
	} else if n > 0 {
		r.bad = true
	}
	if flags&foldFlagDigest != 0 {
		// Only a card entry has a card copy.
		if flags&foldFlagCard == 0 || len(r.b) != cardDigestSize {
			return nil, errBadFoldRow
		}
		in.CardDigest, r.b = bytes.Clone(r.b), nil // r.b may be an iterator's
	}
	if r.bad || flags&^(foldFlagCard|foldFlagDigest) != 0 || len(r.b) != 0 {
		return nil, errBadFoldRow
	}
	return in, nil
}

// foldRowReader consumes a fold row; any short read sets bad.
type foldRowReader struct {
	b   []byte
	bad bool
}

func (r *foldRowReader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *foldRowReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *foldRowReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *foldRowReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
