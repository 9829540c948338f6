package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// VerifyReport summarizes a successful [Ledger.Verify].
type VerifyReport struct {
	Entries     uint64
	Checkpoints int
	// Covered is the largest tree size a verified checkpoint commits to:
	// entries from Covered on are signed by no checkpoint (yet), and only
	// their hashes vouch for them.
	Covered      uint64
	Transactions int
	IndexRows    int
	Root         []byte

	payments     uint64   // payment entries with a transaction id
	expectedRows msetHash // per-entry index rows the entries produce
}

// ErrDamaged marks a store whose files fail Pebble's own checks, such as a
// block checksum: the damaged part cannot be read at all, so it can be
// neither verified nor trusted. Errors wrapping it wrap [ErrTampered] too.
var ErrDamaged = errors.New("ledger store is damaged")

// DamagedError reports a store that could not be read to the end.
type DamagedError struct {
	// File is the base name of the damaged store file, when known.
	File string
	// Checked is the number of entries verified before the damage was
	// found: sequence numbers from Checked on are unverified.
	Checked uint64
}

func (e *DamagedError) Error() string {
	msg := "ledger store is damaged"
	if e.File != "" {
		msg += " (" + e.File + " fails its checksums)"
	}
	return msg
}

func (e *DamagedError) Unwrap() []error { return []error{ErrDamaged, ErrTampered} }

// corruptPathRe finds the file in Pebble's corruption report. Only the
// base name is kept: the report also holds the table's key bounds, which
// are index keys (card tokens, blind indexes).
var corruptPathRe = regexp.MustCompile(`on-disk corruption: (\S+?)[;:]`)

// asDamaged returns a *DamagedError for an error Pebble marks as
// corruption, or err itself.
func asDamaged(err error, checked uint64) error {
	if err == nil || !pebble.IsCorruptionError(err) {
		return err
	}
	d := &DamagedError{Checked: checked}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		d.File = filepath.Base(info.Path)
	}
	return d
}

// damageFromPanic turns the panic Pebble raises through the ledger's
// logger (Fatalf) when it finds on-disk corruption into a *DamagedError.
// Other panics are not the store's damage and are raised again.
func damageFromPanic(v any, checked uint64) error {
	msg := fmt.Sprint(v)
	if !strings.Contains(msg, "on-disk corruption") && !strings.Contains(msg, "pebble: corruption") {
		panic(v)
	}
	d := &DamagedError{Checked: checked}
	if m := corruptPathRe.FindStringSubmatch(msg); m != nil {
		d.File = filepath.Base(m[1])
	}
	return d
}

// RecoverDamaged is deferred around code that reads the store, such as
// [Open]: a panic over on-disk corruption becomes a *DamagedError in
// *errp, so that a damaged store is reported, not a crash. A ledger whose
// store panicked must not be used further.
func RecoverDamaged(errp *error) {
	if v := recover(); v != nil {
		*errp = damageFromPanic(v, 0)
	}
}

// Verify streams the whole ledger and checks that it is self-consistent:
// every entry decodes and sits at its own sequence number with no gaps; every
// leaf and node hash recomputed from the entry bytes equals the stored one;
// every stored checkpoint is signed by one of verifiers, names this ledger's
// origin and commits to the root recomputed at its size (so all checkpoints
// are consistent with each other); and every derived index row agrees with
// the entries. Memory use is independent of the ledger's size.
//
// The first disagreement is returned as a [*TamperedError] naming the lowest
// bad sequence number (wrapping [ErrTampered]); I/O errors are returned as is.
//
// A store Pebble cannot read (a block that fails its checksum) gives a
// [*DamagedError] naming how many entries were verified before it.
func (l *Ledger) Verify(ctx context.Context, verifiers note.Verifiers, progress func(done uint64)) (_ *VerifyReport, err error) {
	rep := &VerifyReport{}
	defer func() {
		if v := recover(); v != nil {
			err = damageFromPanic(v, rep.Entries)
		}
		if err != nil {
			err = asDamaged(err, rep.Entries)
		}
	}()
	snap := l.db.NewSnapshot()
	defer snap.Close()
	// The two passes read disjoint key ranges of one snapshot, so they run
	// on two cores; their results meet in the final comparison.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := &indexReport{}
	idxErr := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				idxErr <- damageFromPanic(v, 0)
			}
		}()
		idxErr <- verifyIndexes(ctx, snap, idx)
	}()
	// A tampered entry is the more precise finding: it is reported before
	// any index finding, so an index failure does not stop the tree pass.
	treeErr := l.verifyTree(ctx, snap, verifiers, progress, rep)
	if treeErr != nil {
		cancel()
	}
	ierr := <-idxErr
	if treeErr != nil {
		return nil, treeErr
	}
	if d := (*DamagedError)(nil); errors.As(ierr, &d) {
		d.Checked = rep.Entries
	}
	if ierr != nil {
		return nil, ierr
	}
	rep.IndexRows, rep.Transactions = idx.rows, idx.transactions
	if idx.entryRows != rep.expectedRows {
		return nil, indexTampered("index rows (idempotency keys, access or run ids, payment entry rows) differ from what the entries produce")
	}
	// Every payment entry sits in exactly one transaction row: each listed
	// seq came from a payment entry row of that transaction, and the
	// totals agree.
	if idx.folded != rep.payments {
		return nil, indexTampered(fmt.Sprintf("transaction rows list %d payment entries, the ledger has %d", idx.folded, rep.payments))
	}
	return rep, nil
}

// indexReport is what the index pass finds, compared with the tree pass's
// expectations once both are done.
type indexReport struct {
	rows, transactions int
	folded             uint64
	entryRows          msetHash
}

type snapReader interface {
	reader
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func prefixIter(r snapReader, prefix []byte) (*pebble.Iterator, error) {
	return r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
}

// verifyChunk is a run of consecutive entries of the tree pass. One
// goroutine reads chunks from the store, workers on every core hash their
// leaves and derive their expected index rows, and verifyTree folds the
// results into the tree in sequence order.
type verifyChunk struct {
	first      uint64         // sequence number of the first entry
	copiesFrom uint64         // the ledger's first sequence number with card copies
	buf        []byte         // entry bytes, back to back
	ends       []int          // end of each entry in buf
	rows       []byte         // stored hash rows, back to back
	rowEnds    []int          // end of each hash row in rows
	cps        map[int][]byte // checkpoint stored after entry i (tree size first+i+1)
	err        error          // what the reader found after the last entry

	// Set by a worker before done is closed.
	leaves   []byte   // 32-byte leaf hash of each entry
	expected msetHash // index rows the entries produce
	payments uint64
	bad      error // first bad entry; leaves stop before it
	done     chan struct{}
}

const (
	verifyChunkEntries = 256
	verifyChunkBytes   = 256 << 10
	verifyChunksAhead  = 8
)

func (l *Ledger) verifyTree(ctx context.Context, r snapReader, verifiers note.Verifiers, progress func(uint64), rep *VerifyReport) error {
	it, err := prefixIter(r, []byte{tagEntry})
	if err != nil {
		return err
	}
	rng := rangeFactory.NewEmptyRange(0)
	checkCheckpoint := func(signed []byte, size uint64) error {
		if err := l.checkCheckpoint(signed, size, rootOf(rng), verifiers); err != nil {
			return &TamperedError{Seq: size, Reason: err.Error()}
		}
		rep.Checkpoints++
		rep.Covered = max(rep.Covered, size)
		return nil
	}
	if cp, ok, err := get(r, metaEmptyCheckpoint); err != nil {
		it.Close()
		return err
	} else if ok {
		if err := checkCheckpoint(cp, 0); err != nil {
			it.Close()
			return err
		}
	}

	quit := make(chan struct{})
	ordered := make(chan *verifyChunk, verifyChunksAhead)
	work := make(chan *verifyChunk, verifyChunksAhead)
	// Chunks are recycled: the reader takes one from free, the tree
	// returns it when done, which also bounds the memory in flight.
	free := make(chan *verifyChunk, 2*verifyChunksAhead+2)
	for range cap(free) {
		free <- &verifyChunk{
			copiesFrom: l.cardCopiesFrom,
			buf:        make([]byte, 0, verifyChunkBytes+16<<10),
			ends:       make([]int, 0, verifyChunkEntries),
			rows:       make([]byte, 0, 32*8*verifyChunkEntries),
			rowEnds:    make([]int, 0, verifyChunkEntries),
			leaves:     make([]byte, 0, 32*verifyChunkEntries),
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(quit)
	// readErr is what stopped the reader other than the end of the table:
	// a panic over a damaged store block. It is set before ordered closes.
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer it.Close()
		defer close(work)
		defer close(ordered)
		defer func() {
			if v := recover(); v != nil {
				readErr = damageFromPanic(v, 0)
			}
		}()
		readChunks(it, free, ordered, work, quit)
	}()
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				select {
				case <-quit:
				default:
					c.check()
				}
				close(c.done)
			}
		}()
	}

	hashes := make([]byte, 0, 32*8)
	visit := func(_ compact.NodeID, hash []byte) { hashes = append(hashes, hash...) }
	var seq uint64
	for c := range ordered {
		if err := ctx.Err(); err != nil {
			return err
		}
		<-c.done
		rowStart := 0
		for i := range len(c.leaves) / 32 {
			hashes = hashes[:0]
			if err := rng.Append(c.leaves[32*i:32*i+32], visit); err != nil {
				return err
			}
			if !bytes.Equal(c.rows[rowStart:c.rowEnds[i]], hashes) {
				return &TamperedError{Seq: seq, Reason: "stored tree hashes do not match the entries"}
			}
			rowStart = c.rowEnds[i]
			seq++
			if cp, ok := c.cps[i]; ok {
				if err := checkCheckpoint(cp, seq); err != nil {
					return err
				}
			}
		}
		if c.bad != nil {
			return c.bad
		}
		rep.expectedRows.merge(c.expected)
		rep.payments += c.payments
		rep.Entries = seq
		if c.err != nil {
			return c.err
		}
		free <- c
		if progress != nil {
			progress(seq)
		}
	}
	if readErr != nil {
		if d := (*DamagedError)(nil); errors.As(readErr, &d) {
			d.Checked = seq
		}
		return readErr
	}
	rep.Entries = seq
	rep.Root = rootOf(rng)
	return nil
}

// readChunks reads the entry table into chunks and hands each to the
// workers and, in order, to the tree. The table holds, for each seq: the
// entry, its hash row, and the checkpoint of tree size seq+1 if one was
// signed.
func readChunks(it *pebble.Iterator, free <-chan *verifyChunk, ordered, work chan<- *verifyChunk, quit <-chan struct{}) {
	var seq uint64
	valid := it.First()
	for {
		var c *verifyChunk
		select {
		case c = <-free:
		case <-quit:
			return
		}
		c.reset(seq)
		for valid && len(c.ends) < verifyChunkEntries && len(c.buf) < verifyChunkBytes {
			k := it.Key()
			if len(k) != 9 || binary.BigEndian.Uint64(k[1:]) != seq {
				if len(k) >= 9 && binary.BigEndian.Uint64(k[1:9]) >= seq {
					c.err = &TamperedError{Seq: seq, Reason: "entry missing"}
				} else {
					c.err = &TamperedError{Seq: seq, Reason: "malformed entry key"}
				}
				break
			}
			// The value is valid only until Next.
			mark := len(c.buf)
			c.buf = append(c.buf, it.Value()...)
			if !it.Next() || !bytes.Equal(it.Key(), hashRowKey(seq)) {
				c.buf = c.buf[:mark]
				if err := it.Error(); err != nil {
					// A damaged block, not a missing row.
					c.err = err
				} else {
					c.err = &TamperedError{Seq: seq, Reason: "tree hashes of the entry missing"}
				}
				break
			}
			c.ends = append(c.ends, len(c.buf))
			c.rows = append(c.rows, it.Value()...)
			c.rowEnds = append(c.rowEnds, len(c.rows))
			seq++
			valid = it.Next()
			if valid && bytes.Equal(it.Key(), checkpointKey(seq)) {
				if c.cps == nil {
					c.cps = map[int][]byte{}
				}
				c.cps[len(c.ends)-1] = bytes.Clone(it.Value())
				valid = it.Next()
			}
		}
		if c.err == nil && !valid {
			c.err = it.Error()
		}
		if len(c.ends) == 0 && c.err == nil {
			return
		}
		select {
		case ordered <- c:
		case <-quit:
			return
		}
		select {
		case work <- c:
		case <-quit:
			return
		}
		if c.err != nil {
			return
		}
	}
}

func (c *verifyChunk) reset(first uint64) {
	*c = verifyChunk{
		first: first, copiesFrom: c.copiesFrom, buf: c.buf[:0], ends: c.ends[:0], rows: c.rows[:0], rowEnds: c.rowEnds[:0],
		leaves: c.leaves[:0], done: make(chan struct{}),
	}
}

// check hashes the chunk's leaves and derives its expected index rows.
func (c *verifyChunk) check() {
	h := sha256.New()
	prefix := make([]byte, 0, 64)
	start := 0
	for i, end := range c.ends {
		seq, b := c.first+uint64(i), c.buf[start:end]
		start = end
		if !bytes.HasPrefix(b, entryPrefix(prefix[:0], seq)) {
			// Not our canonical encoding of this seq: decode for the reason.
			if _, err := DecodeEntry(seq, bytes.Clone(b)); err != nil {
				c.bad = err
			} else {
				c.bad = &TamperedError{Seq: seq, Reason: "entry is not canonically encoded"}
			}
			return
		}
		isPayment, err := expectEntryIndexes(&c.expected, seq, b, seq >= c.copiesFrom)
		if err != nil {
			c.bad = err
			return
		}
		if isPayment {
			c.payments++
		}
		h.Reset()
		h.Write([]byte{0})
		h.Write(b)
		c.leaves = h.Sum(c.leaves)
	}
}

// checkCheckpoint opens a signed checkpoint note and checks its origin, size
// and root.
func (l *Ledger) checkCheckpoint(signed []byte, size uint64, root []byte, verifiers note.Verifiers) error {
	n, err := note.Open(signed, verifiers)
	var unknown *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unknown):
		// Signed, but by no key among verifiers: after a signer rotation,
		// by the key the caller did not pass.
		return fmt.Errorf("checkpoint of size %d: not signed by the given key(s)", size)
	case err != nil:
		return fmt.Errorf("checkpoint of size %d: bad signature", size)
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return fmt.Errorf("checkpoint of size %d: malformed", size)
	}
	if !l.originAt(cp.Origin, size) || cp.Size != size {
		return fmt.Errorf("checkpoint of size %d: wrong origin or size", size)
	}
	if !bytes.Equal(cp.Hash, root) {
		return fmt.Errorf("checkpoint of size %d: root does not match the entries", size)
	}
	return nil
}

// entryPrefix appends the canonical start of entry seq's encoding.
func entryPrefix(b []byte, seq uint64) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, FormatVersion, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, ',')
}

// verifyView is the part of an entry that verify needs for index checks.
// Decoding only this is several times faster than decoding the entry.
type verifyView struct {
	Kind   Kind         `json:"kind"`
	ID     string       `json:"id"`
	Time   time.Time    `json:"time"`
	Unique *Unique      `json:"unique"`
	Body   borrowedJSON `json:"body"`
}

// borrowedJSON keeps a JSON value as a sub-slice of the input, without a
// copy; it is valid only as long as the input is.
type borrowedJSON []byte

func (b *borrowedJSON) UnmarshalJSON(v []byte) error {
	*b = v
	return nil
}

var (
	kindNeedsIndex = [][]byte{[]byte(`"kind":"payment"`), []byte(`"kind":"access"`), []byte(`"kind":"reconciliation"`), []byte(`"kind":"subject_request"`)}
	uniqueMarker   = []byte(`"unique":{`)
)

// expectEntryIndexes adds the per-entry index rows of the canonical entry
// bytes b to expected. It reports whether b is a payment entry with a
// transaction id; transaction rows are checked by verifyIndexes. copies
// says whether the entry was appended since card copies were kept, so
// that its 'e' row has the digest of its card copy if it has a card.
func expectEntryIndexes(expected *msetHash, seq uint64, b []byte, copies bool) (bool, error) {
	// The kind first: it is in the first bytes, and a payment entry
	// needs indexing whatever follows (the unique marker is near the end).
	need := false
	for _, k := range kindNeedsIndex {
		need = need || bytes.Contains(b[:min(len(b), 64)], k)
	}
	need = need || bytes.Contains(b, uniqueMarker)
	if !need {
		return false, nil
	}
	if ok, isPayment, err := expectPaymentFast(expected, seq, b, copies); ok {
		return isPayment, err
	}
	return expectEntryIndexesDecoded(expected, seq, b, copies)
}

// expectEntryIndexesDecoded is expectEntryIndexes by decoding the entry:
// the reference expectPaymentFast is tested against, and its fallback.
func expectEntryIndexesDecoded(expected *msetHash, seq uint64, b []byte, copies bool) (bool, error) {
	var v verifyView
	if err := json.Unmarshal(b, &v); err != nil {
		return false, &TamperedError{Seq: seq, Reason: "entry bytes do not decode"}
	}
	e := &Entry{Seq: seq, Kind: v.Kind, ID: v.ID, Time: v.Time, Unique: v.Unique}
	keys, vals := indexRowsOf(e)
	for i, k := range keys {
		expected.add(k, vals[i])
	}
	if v.Kind != KindPayment {
		return false, nil
	}
	var lp lightPayment
	if err := json.Unmarshal(v.Body, &lp); err != nil {
		return false, &TamperedError{Seq: seq, Reason: "payment body does not decode"}
	}
	if lp.TransactionID == "" {
		return false, nil
	}
	p, err := lp.payment()
	if err != nil {
		return false, &TamperedError{Seq: seq, Reason: "payment body does not decode"}
	}
	k, val, _ := txEntryRow(seq, v.ID, &p, copies)
	expected.add(k, val)
	return true, nil
}

// verifyIndexes checks every transaction state row against a re-fold of its
// entries, and that the other derived rows are exactly the ones the entries
// produce: pass one summed the rows each entry should have into a multiset
// hash, this pass sums the rows that exist, and the two must be equal. That
// catches missing, altered and extra rows without a random read per row.
func verifyIndexes(ctx context.Context, r snapReader, rep *indexReport) error {
	it, err := prefixIter(r, []byte{tagIndex})
	if err != nil {
		return err
	}
	defer it.Close()
	var actualEntryRows, actualTxRows, expectedTxRows msetHash
	folds, err := newFoldScanner(r)
	if err != nil {
		return err
	}
	defer folds.close()
	for valid := it.First(); valid; valid = it.Next() {
		if rep.rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rep.rows++
		k := it.Key()
		if len(k) < 4 || k[2] != 0 {
			return indexTampered("malformed index key")
		}
		switch string(k[1:2]) {
		case idxTx:
			got, err := folds.fold(string(k[3 : len(k)-1]))
			if err != nil {
				return err
			}
			// The appender writes the state's JSON, so the stored bytes
			// must be exactly the re-folded state's, with the card
			// copy the card entry's row has the digest of.
			want, err := marshalTxState(got)
			if err != nil {
				return err
			}
			if !txStateMatches(it.Value(), want, got.cardDigest) {
				return indexTampered(fmt.Sprintf("state of transaction %q does not match its payment entry rows", got.TransactionID))
			}
			rep.folded += uint64(len(got.Seqs))
			for _, lk := range listKeys(got) {
				expectedTxRows.add(lk, nil)
			}
			for _, id := range got.AltIDs {
				expectedTxRows.add(altKey(id), []byte(got.TransactionID))
			}
			rep.transactions++
		case idxList, idxMerchant, idxCaptured, idxAlt:
			actualTxRows.add(k, it.Value())
		default:
			actualEntryRows.add(k, it.Value())
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := folds.finish(); err != nil {
		return err
	}
	if actualTxRows != expectedTxRows {
		return indexTampered("transaction list or alternative id rows differ from the transaction states")
	}
	rep.entryRows = actualEntryRows
	return nil
}

var cardMember = []byte(`,"card":`)

// txStateMatches reports whether a stored state row is want, the JSON of
// a state re-folded from 'e' rows (which has no card copy), with the card
// copy whose digest is digest as its last member, or without one if
// digest is nil.
func txStateMatches(stored, want, digest []byte) bool {
	if digest == nil {
		return bytes.Equal(stored, want)
	}
	head := want[:len(want)-1] // without the closing brace
	rest, ok := bytes.CutPrefix(stored, head)
	if !ok {
		return false
	}
	card, ok := bytes.CutPrefix(rest, cardMember)
	if !ok || len(card) < 2 || card[len(card)-1] != '}' {
		return false
	}
	return bytes.Equal(cardDigest(card[:len(card)-1]), digest)
}

// msetHash is an additive multiset hash: the sum modulo 2^256 of
// SHA-256(len(key) || key || value) over a set of rows. Equal sums mean
// equal sets, except with negligible probability for rows not chosen by
// an adversary who can also pick SHA-256 outputs.
type msetHash [4]uint64

func (m *msetHash) merge(o msetHash) {
	var carry uint64
	for i := 3; i >= 0; i-- {
		m[i], carry = bits.Add64(m[i], o[i], carry)
	}
}

func (m *msetHash) add(k, v []byte) {
	h := sha256.New()
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(k)))
	h.Write(l[:])
	h.Write(k)
	h.Write(v)
	var sum [32]byte
	h.Sum(sum[:0])
	var carry uint64
	for i := 3; i >= 0; i-- {
		m[i], carry = bits.Add64(m[i], binary.BigEndian.Uint64(sum[i*8:]), carry)
	}
}

// foldScanner re-folds transactions from the 'e' index rows, which are
// sorted by (transaction id, seq) like the 't' rows are by transaction id,
// so verify walks both in step without a random read. The 'e' rows
// themselves are checked against the entries by the multiset hash.
type foldScanner struct {
	it    *pebble.Iterator
	valid bool
}

func newFoldScanner(r snapReader) (*foldScanner, error) {
	it, err := prefixIter(r, key(tagIndex, idxTxEntry))
	if err != nil {
		return nil, err
	}
	return &foldScanner{it: it, valid: it.First()}, nil
}

func (f *foldScanner) close() { f.it.Close() }

// current parses the 'e' row under the iterator.
func (f *foldScanner) current() (txid string, seq uint64, err error) {
	k := f.it.Key()
	if len(k) < 3+1+9 || k[len(k)-9] != 0 {
		return "", 0, indexTampered("malformed transaction entry row")
	}
	return string(k[3 : len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

// fold consumes the 'e' rows of txid and returns the state they fold to.
// Rows of smaller transaction ids have no transaction row: tampering.
func (f *foldScanner) fold(txid string) (*TxState, error) {
	s := &TxState{}
	for ; f.valid; f.valid = f.it.Next() {
		id, seq, err := f.current()
		if err != nil {
			return nil, err
		}
		if id > txid {
			break
		}
		if id < txid {
			return nil, &TamperedError{Seq: seq, Reason: "payment entry row of a transaction with no transaction row"}
		}
		in, err := parseFoldRow(f.it.Value())
		if err != nil {
			return nil, &TamperedError{Seq: seq, Reason: "malformed transaction entry row"}
		}
		s.fold(seq, txid, in)
	}
	if len(s.Seqs) == 0 {
		return nil, indexTampered("transaction row with no payment entry rows")
	}
	return s, nil
}

// finish fails if 'e' rows remain after the last transaction row.
func (f *foldScanner) finish() error {
	if f.valid {
		_, seq, _ := f.current()
		return &TamperedError{Seq: seq, Reason: "payment entry row of a transaction with no transaction row"}
	}
	return f.it.Error()
}

var (
	paymentKindPrefix = []byte(`"kind":"payment",`)
	bodyMarker        = []byte(`"body":{`)
	sealedMarker      = []byte(`,"sealed":{`)
)

// expectPaymentFast is expectEntryIndexes for payment entries without
// decoding their ciphertexts: in the canonical encoding every field a fold
// needs precedes "sealed", and "unique" is the entry's last field, so it
// decodes just those two small slices. ok is false when b does not have
// the expected shape; the caller then decodes the whole entry.
//
// The markers cannot occur inside JSON strings (their quotes would be
// escaped), and every byte of b is covered by the leaf hash, so only the
// ledger's own writer decides what these slices hold.
func expectPaymentFast(expected *msetHash, seq uint64, b []byte, copies bool) (ok, isPayment bool, err error) {
	rest := b[len(entryPrefix(nil, seq)):]
	if !bytes.HasPrefix(rest, paymentKindPrefix) {
		return false, false, nil
	}
	i := bytes.Index(b, bodyMarker)
	if i < 0 {
		return false, false, nil
	}
	j := bytes.Index(b[i:], sealedMarker)
	if j < 0 {
		return false, false, nil
	}
	p, ok := scanPaymentHead(b[i+len(bodyMarker)-1 : i+j])
	if !ok {
		return false, false, nil
	}
	if k := bytes.LastIndex(b, uniqueMarker); k > i+j {
		u, ok := scanUnique(b[k+len(uniqueMarker)-1 : len(b)-1])
		if !ok {
			return false, false, nil
		}
		expected.add(uniqueKey(u.Key), append(u64(seq), u.Digest...))
	}
	if p.TransactionID == "" {
		return true, false, nil
	}
	// Sealed is non-empty here (the marker was found); the fold needs to
	// know whether it holds card fields, the card copy their values.
	id, ok := scanEntryID(rest[len(paymentKindPrefix):])
	if !ok {
		return false, false, nil
	}
	card, ok := scanCardFields(b[i+j+len(sealedMarker)-1:])
	if !ok {
		return false, false, nil
	}
	in := foldInputOf(&p)
	in.Card = card.has()
	if in.Card && copies {
		// The card copy's stored form holds the entry's base64 text as
		// it is: no need to decode it and encode it again.
		in.CardDigest = cardDigest(appendCardCopyOf(make([]byte, 0, 512), id, p.Brand, p.DataKey, card, appendQuoted))
	}
	expected.add(txEntryKey(p.TransactionID, seq), appendFoldRow(nil, in))
	return true, true, nil
}

var idMarker = []byte(`"id":"`)

// scanEntryID returns the id at the start of b, the rest of an entry
// after its kind: `"id":"...",`.
func scanEntryID(b []byte) (string, bool) {
	if !bytes.HasPrefix(b, idMarker) {
		return "", false
	}
	s, n, ok := scanString(b[len(idMarker)-1:])
	if !ok || len(b) <= len(idMarker)-1+n || b[len(idMarker)-1+n] != ',' {
		return "", false
	}
	return string(s), true
}

// cardText are the sealed card fields of an entry as its JSON holds
// them, in the order of cardFields: base64 text, nil where the entry has
// none.
type cardText [len(cardFields)][]byte

// has reports whether the entry has a card: a token or a last 4, as
// foldInputOf decides.
func (c *cardText) has() bool { return c[1] != nil || c[2] != nil }

// scanCardFields returns the card fields of the sealed object at the
// start of b (the rest of the entry) as base64 text; the other sealed
// fields it leaves out, as no row depends on them. It walks the members
// once: names and ciphertexts (base64) are strings without escapes, so
// each ends at the next quote. A card field that is not base64 as
// encoding/json writes it, or anything else unexpected, is left to the
// decoding path (ok false), so that the text is what the card copy's
// stored form holds.
func scanCardFields(b []byte) (card cardText, ok bool) {
	if len(b) < 2 || b[0] != '{' {
		return card, false
	}
	i := 1
	if b[i] == '}' {
		return card, true
	}
	for {
		name, n, ok := plainString(b[i:])
		if !ok || i+n >= len(b) || b[i+n] != ':' {
			return card, false
		}
		i += n + 1
		val, n, ok := plainString(b[i:])
		if !ok || i+n >= len(b) {
			return card, false
		}
		i += n
		for f, fname := range cardFields {
			if string(name) == fname {
				if !canonicalBase64(val) {
					return card, false
				}
				card[f] = val
			}
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return card, true
		default:
			return card, false
		}
	}
}

// base64Values maps each character of the standard base64 alphabet to
// its 6-bit value, and every other byte to 0xff.
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = byte(i)
	}
	return t
}()

// canonicalBase64 reports whether s is base64.StdEncoding's encoding of
// some bytes: that decoding it and encoding the result gives s back
// (padded, no line breaks, zero bits after the last byte).
func canonicalBase64(s []byte) bool {
	if len(s)%4 != 0 {
		return false
	}
	if len(s) == 0 {
		return true
	}
	pad := 0
	if s[len(s)-1] == '=' {
		pad++
		if s[len(s)-2] == '=' {
			pad++
		}
	}
	body := s[:len(s)-pad]
	for _, c := range body {
		if base64Values[c] == 0xff {
			return false
		}
	}
	switch last := base64Values[body[len(body)-1]]; pad {
	case 1:
		return last&0x3 == 0
	case 2:
		return last&0xf == 0
	}
	return true
}

// plainString returns the contents of the string at the start of b and
// the bytes it takes, if it has no escapes.
func plainString(b []byte) ([]byte, int, bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, 0, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 || bytes.IndexByte(b[1:1+end], '\\') >= 0 {
		return nil, 0, false
	}
	return b[1 : 1+end], end + 2, true
}
