package ledger

import (
	"encoding/binary"
	"time"
)

// The ledger's Pebble keyspace. Every key starts with a one-byte table tag.
//
//	'e' seq(8)                    entry bytes (immutable)
//	'n' level(1) index(8)         Merkle node hash of a perfect subtree (immutable)
//	'c' size(8)                   signed checkpoint note (immutable)
//	'm' name                      metadata: ledger id, tree size, latest checkpoint size
//	'i' ...                       derived index rows, rebuildable from entries (index.go)
//	's' ...                       subject rows: clear card tokens and blind indexes (mutable, erasable)
//	'x' ...                       mutable state outside the tree (principals, restrictions)
const (
	tagEntry      = 'e'
	tagNode       = 'n'
	tagCheckpoint = 'c'
	tagMeta       = 'm'
	tagIndex      = 'i'
	tagSubject    = 's'
	tagState      = 'x'
)

var (
	metaLedgerID   = []byte("mledger_id")
	metaSize       = []byte("msize")
	metaCheckpoint = []byte("mcheckpoint")
)

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func entryKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagEntry}, seq)
}

func nodeKey(level uint, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagNode, byte(level)}, index)
}

func checkpointKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagCheckpoint}, size)
}

// key joins a tag and parts into a key. String parts are terminated by 0x00
// so that a prefix scan for one value never matches a longer one; callers
// must not use values containing 0x00 (ids are validated at the edge).
func key(tag byte, parts ...any) []byte {
	k := []byte{tag}
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			k = append(append(k, v...), 0)
		case uint64:
			k = binary.BigEndian.AppendUint64(k, v)
		case time.Time:
			k = binary.BigEndian.AppendUint64(k, uint64(v.UnixNano()))
		default:
			panic("ledger: bad key part")
		}
	}
	return k
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
