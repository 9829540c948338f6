// Package ledger is paytrail's append-only, tamper-evident store of payment
// events, access records and administrative actions, kept in Pebble.
//
// # Entries and sequence numbers
//
// Every entry is a self-contained, deterministically encoded JSON document
// (see [Entry]) holding its format version, sequence number, kind, the time it
// was received, the policy version in force and a kind-specific body. Sequence
// numbers start at 0, have no gaps and are the leaf indexes of an RFC 6962
// Merkle tree whose leaf hash is SHA-256(0x00 || stored entry bytes). There is
// no API that changes or deletes an entry.
//
// # Group commit
//
// All writes go through one appender goroutine. Callers of [Ledger.Append]
// queue a [Record]; the appender takes everything pending, assigns sequence
// numbers, computes leaf and tree hashes, writes entries, Merkle nodes and
// derived index rows into one Pebble batch, commits it with [pebble.Sync], and
// only then answers the waiting callers. A crash loses at most unacknowledged
// records and never leaves a partial batch: a batch is atomic in Pebble's WAL.
//
// Applying a sequence of records is deterministic: every random value (entry
// ids, nonces inside ciphertexts, wrapped data keys) is decided before a
// record is queued, so replicas fed the same ordered records compute the same
// entries and the same Merkle root.
//
// # Checkpoints
//
// While entries arrive, a checkpoint (a C2SP tlog-checkpoint signed note whose
// origin is "paytrail/<ledger id>") is signed at least every
// [Options.CheckpointInterval] and every checkpoint is kept, so consistency
// between any two can be proved. Checkpoints are only ever signed over the
// ledger's own append-only tree, so two inconsistent ones cannot be issued.
//
// # Witness cosignatures
//
// Cosignatures of checkpoints by witnesses (C2SP tlog-cosignature) are
// stored beside the checkpoints, in a table of their own, never inside
// the signed note and never as entries ([Ledger.AddCosignatures]): a
// stored checkpoint stays byte for byte what the ledger signed, the same
// on every replica, and cosignatures are joined to it only when it is
// served ([Ledger.CosignedCheckpoint]).
//
// # Keyspace
//
// The Pebble keyspace is documented in keys.go. Entries, Merkle nodes and
// checkpoints are immutable; index rows are derived from entries and can be
// rebuilt; subject rows (clear card tokens and email blind indexes) are
// mutable and are deleted when a cardholder's data is erased.
package ledger
