package ledger

import (
	"encoding/binary"
	"time"
)

// The ledger's Pebble keyspace. Every key starts with a one-byte table tag.
//
//	'a' name                      metadata: ledger id, the empty tree's checkpoint
//	'e' seq(8)                    entry bytes (immutable)
//	'e' seq(8) 'h'                tree hashes completed by leaf seq (immutable, see hashRowKey)
//	'e' seq(8) 'p'                signed checkpoint note of tree size seq+1 (see checkpointKey)
//	'i' ...                       derived index rows, rebuildable from entries (index.go)
//	's' ...                       subject rows: clear card tokens and blind indexes (mutable, erasable)
//	'w' size(8) keyhash(4) name   witness cosignatures of the checkpoint of size (outside the tree; cosig.go)
//	'x' ...                       mutable state outside the tree (principals, restrictions)
//
// The entry table, by far the largest, only ever grows at its end, and
// everything the tree needs (hashes, checkpoints) grows with it there, while
// metadata written once sorts before it. An append-only workload therefore
// writes one contiguous run of keys past every older key: Pebble flushes it
// into files that overlap no older file and moves them down the LSM
// instead of rewriting them. Rows written anywhere else (index rows of
// payments) do make flushes overlap the tables after 'e'.
const (
	tagMeta    = 'a'
	tagEntry   = 'e'
	tagIndex   = 'i'
	tagSubject = 's'
	tagWitness = 'w'
	tagState   = 'x'
)

var (
	metaLedgerID = []byte("aledger_id")
	// metaEmptyCheckpoint holds the checkpoint of the empty tree, which has
	// no entry to sit after.
	metaEmptyCheckpoint = []byte("aempty_checkpoint")
	// metaApplied holds the log position of the last record applied
	// (cluster mode), written in the batch that applies it.
	metaApplied = []byte("aapplied")
	// metaCardCopiesFrom holds the sequence number from which payment
	// entries have card copies (CardCopy) and 'e' rows their digests:
	// the size of the ledger when a build keeping them first opened it.
	metaCardCopiesFrom = []byte("acard_copies_from")
	// metaLegacyID marks a store of the pre-release layout, which kept
	// tree nodes and checkpoints in tables of their own.
	metaLegacyID = []byte("mledger_id")
)

// pendingCutKey is the row of a checkpoint cut point of the log whose
// checkpoint is not stored yet; its value is the seeded checkpoint note,
// if any.
func pendingCutKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("apending_cut/"), size)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func entryKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagEntry}, seq)
}

// hashRowKey is the key of the tree hashes that leaf seq completes: the
// leaf hash (level 0) and the hash of every perfect subtree whose last leaf
// is seq (levels 1..t, t the number of trailing one bits of seq), 32 bytes
// each, in level order. Node (level, index) is therefore found in the row of
// leaf (index+1)<<level - 1 at offset 32*level.
//
// The rows sit right after their entries, so everything an append writes
// to the tree is one contiguous run at the end of the 'e' table: Pebble
// flushes it into files that overlap no older file and moves them down the
// LSM without rewriting them. (A separate node table made every flush
// overlap all older nodes, and compaction rewrote them again and again.)
func hashRowKey(seq uint64) []byte {
	return append(entryKey(seq), 'h')
}

// nodeRow locates node (level, index) in the hash rows: the leaf whose row
// holds it and the byte offset within that row.
func nodeRow(level uint, index uint64) (seq uint64, off int) {
	return (index+1)<<level - 1, 32 * int(level)
}

// checkpointKey is the key of the checkpoint of tree size: right after the
// hash row of its last entry.
func checkpointKey(size uint64) []byte {
	if size == 0 {
		return metaEmptyCheckpoint
	}
	return append(entryKey(size-1), 'p')
}

// key joins a tag and parts into a key. String parts are terminated by 0x00
// so that a prefix scan for one value never matches a longer one; callers
// must not use values containing 0x00 (ids are validated at the edge).
func key(tag byte, parts ...any) []byte {
	n := 1
	for _, p := range parts {
		if v, ok := p.(string); ok {
			n += len(v) + 1
		} else {
			n += 8
		}
	}
	k := make([]byte, 1, n)
	k[0] = tag
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
