// Package witness speaks C2SP tlog-witness, both ways.
//
// [Submitter] is the log's side: it sends each new checkpoint of the
// ledger to every configured witness (POST <url>add-checkpoint, with a
// consistency proof from the size the witness last cosigned), checks each
// returned cosignature (C2SP tlog-cosignature) with the witness's key and
// stores it in the ledger beside, never inside, the checkpoint. It runs in
// goroutines of its own, one per witness with at most one request in
// flight each, under timeouts and a capped exponential backoff, so a slow,
// down or lying witness costs ingestion nothing. It only ever sends
// checkpoints the ledger signed and consistency proofs from the size the
// witness itself reported, so it never shows a witness a checkpoint
// inconsistent with one it saw.
//
// [Server] is the witness's side, for an auditor's own machine (paytrail
// witness serve): it verifies a submitted checkpoint with the log keys it
// was given, proves it consistent with the latest one it cosigned for that
// log, durably records the new one and only then answers with its
// cosignature. It refuses, for ever, a checkpoint inconsistent with one it
// cosigned, across restarts and crashes.
//
// Both use golang.org/x/mod/sumdb/note and
// github.com/transparency-dev/formats/note for signatures and
// github.com/transparency-dev/merkle for proofs; only the add-checkpoint
// request body ([AddCheckpoint]) is encoded and parsed here, because
// neither library has it.
package witness
