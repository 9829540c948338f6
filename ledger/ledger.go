package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Options configure [Open].
type Options struct {
	// Dir is the ledger's Pebble directory. Required.
	Dir string
	// Signer returns the checkpoint signer for the ledger's origin. It is
	// called once, after the ledger id is known. Nil opens the ledger
	// without a checkpointer (read-only tools such as verify).
	Signer func(origin string) (note.Signer, error)
	// CheckpointInterval is how often a checkpoint is signed while entries
	// arrive. The default value is one second.
	CheckpointInterval time.Duration
	// MaxBatch caps how many records one group commit holds. The default
	// value is 512.
	MaxBatch int
	// ReadOnly opens Pebble read-only; Append fails.
	ReadOnly bool
	// Logger receives operational messages, never entry contents. The
	// default discards them.
	Logger *slog.Logger
	// ID is the ledger id to give a new store (cluster mode: the
	// cluster's id, so that every node signs checkpoints of the same
	// origin). The default is a random id. Opening a store whose id
	// differs fails with [ErrWrongLedger].
	ID string
	// Sequenced opens the ledger as a node applying an ordered log
	// (cluster mode): checkpoints are signed only at the cut records of
	// the log ([Record].Cut), never on a timer or at Close, so that every
	// node signs the same checkpoints at the same sizes.
	Sequenced bool
	// Agree, if set, is called before a checkpoint cut from the log is
	// stored, with its size and root. An error wrapping [ErrForked] halts
	// the ledger: the checkpoint is not stored and every later append
	// fails. Any other error is retried at the next cut.
	Agree func(ctx context.Context, size uint64, root []byte) error
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("ledger: Options.Dir is required")
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	return nil
}

// Ledger is an open ledger. Its methods are safe for concurrent use.
type Ledger struct {
	opts   Options
	db     *pebble.DB
	guard  *DiskGuard // the store's writes wait out a full disk; nil when ReadOnly
	lock   *os.File
	id     string
	origin string
	signer note.Signer

	// signer is guarded by cp.mu once the checkpointer runs (see
	// RotateSigner); signing says whether Open was given one.
	signing bool
	history []OriginSpan // earlier origins, see NewOrigin

	queue   chan *request
	stop    chan struct{}
	stopped chan struct{}
	closeMu sync.Once

	// readMu is held (read) by every public read, and (write) by Close
	// before it closes the store, so a read never touches a closed store.
	readMu     sync.RWMutex
	readClosed bool

	// The appender's hot path reads these without locks: a goroutine
	// parked on a mutex here waited for the scheduler behind every caller.
	head atomic.Pointer[treeHead] // the durable tree, published after each sync
	// applied is the log position of the last durable record submitted
	// with one (cluster mode; see Submit).
	applied atomic.Uint64
	broken  atomic.Pointer[failure] // set when a commit failed; the ledger then refuses appends
	closed  atomic.Bool
	rng     *compact.Range // the tree at Open; then owned by the appender goroutine
	// lastAccess is the time of the latest access entry at Open; then the
	// appender keeps it (see appendState.lastAccess).
	lastAccess time.Time
	// applyHook, if set (by tests, before any append), runs in the
	// appender before it prepares each batch.
	applyHook func()

	mu       sync.Mutex // guards the fields below
	latestCP uint64     // size of the newest stored checkpoint, if hasCP
	hasCP    bool
	cpKnown  bool // latestCP and hasCP are set (found on first use)

	cp checkpointer

	// txStates caches decoded transaction states for the appender, which
	// is their only writer; see overlayBatch.txState.
	txStates *lru.Cache[string, *TxState]
	// cardCopiesFrom is the first sequence number whose entry has a card
	// copy, if a card entry (loadCardCopiesFrom).
	cardCopiesFrom uint64
}

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// treeHead is a durable tree: its size and its compact range, which is
// never mutated once published (the root is computed when needed).
type treeHead struct {
	size uint64
	tree *compact.Range
}

type failure struct{ err error }

// brokenErr returns why the ledger refuses appends until restart, or nil.
func (l *Ledger) brokenErr() error {
	if f := l.broken.Load(); f != nil {
		return f.err
	}
	return l.guard.failed()
}

// The ledger store's block cache and memtable size, for writable opens.
// Pebble reserves its memtables' memory out of the block cache (up to two
// while one flushes), so the cache must be larger than that: at 64 MiB the
// reservations left it no room at all, and every filter and index block
// the appender looked at was read from disk again.
const (
	blockCacheSize = 128 << 20
	memTableSize   = 32 << 20
)

// txStateCacheSize bounds the appender's cache of transaction states
// (a few hundred bytes each).
const txStateCacheSize = 65536

// Open opens or creates the ledger in opts.Dir. Only one process may hold a
// ledger open; another gets [ErrLocked].
func Open(ctx context.Context, opts Options) (*Ledger, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	l := &Ledger{opts: opts}
	l.txStates, _ = lru.New[string, *TxState](txStateCacheSize)
	if !opts.ReadOnly {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create ledger dir: %w", err)
		}
	}
	lock, err := lockDir(opts.Dir, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	l.lock = lock
	popts := storeOptions(opts.ReadOnly, PebbleLogger(opts.Logger, "ledger"))
	popts.EventListener = StoreEventListener(opts.Logger, "ledger")
	if opts.ReadOnly {
		// Verify reports damage from this panic (damageFromPanic): some of
		// its scans take an iterator's end for the end of the data, which
		// would turn a corrupt block into "rows missing". The panic names
		// the file only, like the listener's log line.
		popts.EventListener.DataCorruption = func(info pebble.DataCorruptionInfo) {
			file := filepath.Base(info.Path)
			opts.Logger.Error("store file fails its checksums", "component", "ledger", "file", file)
			panic("ledger: on-disk corruption: " + file + ";")
		}
	}
	if !opts.ReadOnly {
		// On a full disk, Open itself waits (Pebble writes a MANIFEST, an
		// OPTIONS file and a WAL): one line says so, and it goes on once
		// space returns.
		l.guard = NewDiskGuard(opts.Dir, opts.Logger)
		popts.FS = l.guard.FS(popts.FS)
	}
	if popts.Cache != nil {
		defer popts.Cache.Unref()
	}
	db, err := pebble.Open(opts.Dir, popts)
	if err != nil {
		l.unlock()
		return nil, fmt.Errorf("failed to open ledger store: %w", err)
	}
	l.db = db
	if err := l.load(); err != nil {
		db.Close()
		l.unlock()
		return nil, err
	}
	if opts.ReadOnly {
		return l, nil
	}
	if opts.Signer != nil {
		if l.signer, err = opts.Signer(l.origin); err != nil {
			l.Close()
			return nil, fmt.Errorf("failed to get checkpoint signer: %w", err)
		}
	}
	l.queue = make(chan *request, 4*opts.MaxBatch)
	l.stop = make(chan struct{})
	l.stopped = make(chan struct{})
	l.cp.init()
	go l.run()
	l.signing = l.signer != nil
	if l.signing && (!opts.Sequenced || l.Size() == 0) {
		// A node of a cluster signs only at the log's cut points, which
		// the empty tree needs none of.
		if err := l.checkpointNow(); err != nil {
			l.Close()
			return nil, err
		}
	}
	if l.signer != nil && !opts.Sequenced {
		go l.checkpointLoop()
	}
	return l, nil
}

// loadCardCopiesFrom returns the sequence number from which entries have
// card copies. A writable open of a ledger without the row writes it:
// entries from its size on get them. A read-only open of such a ledger
// (written before card copies were kept) expects none.
func loadCardCopiesFrom(db *pebble.DB, size uint64, readOnly bool) (uint64, error) {
	v, ok, err := get(db, metaCardCopiesFrom)
	switch {
	case err != nil:
		return 0, fmt.Errorf("failed to read ledger layout: %w", err)
	case ok && len(v) == 8:
		return binary.BigEndian.Uint64(v), nil
	case ok:
		return 0, &TamperedError{Index: true, Reason: "malformed card copies row"}
	case readOnly:
		return math.MaxUint64, nil
	}
	if err := db.Set(metaCardCopiesFrom, u64(size), pebble.Sync); err != nil {
		return 0, fmt.Errorf("failed to write ledger layout: %w", err)
	}
	return size, nil
}

// noLockFS is a file system whose Lock takes no lock and touches no file.
type noLockFS struct{ vfs.FS }

func (noLockFS) Lock(string) (io.Closer, error) { return noLock{}, nil }

type noLock struct{}

func (noLock) Close() error { return nil }

// storeOptions are the Pebble options of a ledger store. A writable
// store's options carry a new block cache, which the caller releases with
// Cache.Unref once the store is open.
func storeOptions(readOnly bool, logger pebble.Logger) *pebble.Options {
	o := &pebble.Options{ReadOnly: readOnly, Logger: logger, MaxOpenFiles: maxOpenFiles(fileLimit())}
	// Bloom filters on every level: the appender's idempotency and
	// transaction-state lookups are mostly for keys that do not exist yet
	// (a new event, a new transaction), which filters answer without
	// reading data blocks.
	o.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// 32 KiB blocks: verify's sequential scan reads and checksums an eighth
	// as many blocks as with the 4 KiB default; point reads mostly stop at
	// a filter or hit the cache.
	o.Levels[0].BlockSize = 32 << 10
	// Zstandard on every level (the later levels inherit Levels[0]):
	// entries are JSON around base64 ciphertext, which Snappy's LZ alone
	// cannot shrink but zstd's entropy coding takes back to the
	// ciphertext's own size, 6 bits per base64 character. At 200,000
	// events of the bench's mix it stored an entry in 1,040 bytes instead
	// of Snappy's 1,447, and the index rows in about half the bytes
	// (docs/operations.md, "Bytes per event"). Every level, L0 included:
	// the entry table's flushes are moved down the LSM, not rewritten,
	// so a table keeps the compression it was flushed with. Blocks that
	// do not shrink by 12% (tree hashes) are stored as they are. Stores
	// written with Snappy read as before; their tables turn zstd as
	// compactions rewrite them.
	o.Levels[0].Compression = func() *sstable.CompressionProfile { return sstable.ZstdCompression }
	if readOnly {
		// Read-only tools (verify) scan once: Pebble's defaults suffice.
		// They write nothing, so that they can check a copy on read-only
		// media and leave it as it was: Pebble's directory lock, the one
		// file it would still open for writing, is left to PAYTRAIL.LOCK.
		o.FS = noLockFS{vfs.Default}
		return o
	}
	// The appender's lookups read filter and index blocks of every table;
	// they must stay cached. The memtables below are carved out of it.
	o.Cache = pebble.NewCache(blockCacheSize)
	// Fewer, larger flushes: under a sustained webhook load (24,000 events,
	// 64 clients) ingest ran ~12% faster than with Pebble's 4 MiB
	// memtables, mostly from cheaper flushes and compactions.
	o.MemTableSize = memTableSize
	// Entries go to blob files as they are flushed, and stay there: the
	// tables that compactions rewrite at every level hold only a short
	// reference for each. An entry is never changed or deleted, so its
	// blob file never needs rewriting. Before, every entry's kilobyte was
	// read, decompressed and compressed again on each level on its way
	// down (2.2 bytes written per byte logged at 200,000 events, more as
	// the store grows); flushes and compactions took 40% of a server's
	// CPU under load, and now the server spends about 12% less CPU per
	// event (docs/operations.md, "Load testing"). The index rows stay in
	// their tables (entrySpanPolicy). A store written this way opens with
	// any options (TestEntriesInBlobFiles); blob files need the format
	// version below, to which Pebble moves an older store when it opens.
	o.FormatMajorVersion = pebble.FormatValueSeparation
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:     true,
			MinimumSize: separatedValueSize,
			// These matter only for blob files holding garbage (values
			// no table refers to), which entries never leave.
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	o.Experimental.SpanPolicyFunc = entrySpanPolicy
	o.FS = vfs.Default
	return o
}

// maxOpenFiles sizes the store's cache of open tables and blob files from
// the process's file limit (Go raises the soft limit to the hard one at
// start): a quarter of it, between Pebble's default of 1,000 and 16,384.
// A ledger holds about 1,200 files per million events; with a cache
// smaller than that, reads at random places reopened a file each time
// (14% of a server's CPU under list and search load at 10M events, and
// lists 12% slower than with 16,000).
func maxOpenFiles(limit uint64) int {
	return int(min(max(limit/4, 1000), 16384))
}

// fileLimit is the process's soft limit on open files, or 0 if unknown.
func fileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return l.Cur
}

// separatedValueSize is the smallest entry stored in a blob file; payment
// entries are 1 to 2 KB, hash rows and checkpoints stay in their tables.
const separatedValueSize = 512

// entrySpanPolicy lets only the entry table's values go to blob files:
// the index rows are small, and some (transaction state) are rewritten
// often, which would leave garbage in blob files. Each table tag is its
// own span, so flushes and compactions also cut their output tables at
// the tags: a table of entries then overlaps no index table and can move
// down a level without being rewritten (measured before value
// separation: 38 of 62 compactions were such moves at 200,000 events,
// none without the spans).
func entrySpanPolicy(start []byte) (pebble.SpanPolicy, []byte, error) {
	if len(start) == 0 || start[0] == 0xff {
		return pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency}, nil, nil
	}
	end := []byte{start[0] + 1}
	if start[0] == tagEntry {
		return pebble.SpanPolicy{}, end, nil
	}
	return pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency}, end, nil
}

// lockDir takes an exclusive advisory lock so that a second process (a CLI
// command while the server runs) fails plainly instead of waiting.
func lockDir(dir string, readOnly bool) (*os.File, error) {
	path := filepath.Join(dir, "PAYTRAIL.LOCK")
	if readOnly {
		// A read-only open writes nothing, not even the lock file: it may
		// be an auditor's copy, on read-only media. No lock file means no
		// paytrail process ever wrote this copy, so none holds it.
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("failed to open lock file: %w", err)
		}
		return flockDir(f, dir)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock file: %w", err)
	}
	return flockDir(f, dir)
}

// flockDir takes the exclusive lock on f, the lock file of dir, or closes
// it.
func flockDir(f *os.File, dir string) (*os.File, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("failed to lock %s: %w", dir, err)
	}
	return f, nil
}

func (l *Ledger) unlock() {
	if l.lock != nil {
		l.lock.Close()
		l.lock = nil
	}
}

// load reads the ledger id and tree size and rebuilds the compact range of
// the tree's right border from stored node hashes.
func (l *Ledger) load() error {
	if err := checkLayout(l.db, l.opts.Dir); err != nil {
		return err
	}
	if _, legacy, err := get(l.db, metaLegacyID); err != nil {
		return fmt.Errorf("failed to read ledger layout: %w", err)
	} else if legacy {
		return fmt.Errorf("failed to open ledger: %s was written by a pre-release build with another key layout; start with a new data dir", l.opts.Dir)
	}
	id, ok, err := get(l.db, metaLedgerID)
	if err != nil {
		return fmt.Errorf("failed to read ledger id: %w", err)
	}
	if ok && l.opts.ID != "" && string(id) != l.opts.ID {
		return fmt.Errorf("%w: %s holds ledger %s, not %s", ErrWrongLedger, l.opts.Dir, id, l.opts.ID)
	}
	if !ok {
		if l.opts.ReadOnly {
			return fmt.Errorf("failed to open ledger: %w (no ledger in %s)", ErrNotFound, l.opts.Dir)
		}
		id = []byte(l.opts.ID)
		if l.opts.ID == "" {
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			id = []byte(hex.EncodeToString(b[:]))
		}
		if err := l.db.Set(metaLedgerID, id, pebble.Sync); err != nil {
			return fmt.Errorf("failed to write ledger id: %w", err)
		}
	}
	l.id = string(id)
	if err := l.loadOrigin(); err != nil {
		return err
	}
	size, stray, err := storedSize(l.db)
	if err != nil {
		return err
	}
	// A read-only open (verify) goes on whatever it finds: verify checks
	// everything itself and names the first bad sequence number. Appending
	// to a tampered store would bury the evidence, so a writable open
	// refuses.
	if stray && !l.opts.ReadOnly {
		return &TamperedError{Seq: size, Reason: "rows after the last entry"}
	}
	if l.cardCopiesFrom, err = loadCardCopiesFrom(l.db, size, l.opts.ReadOnly); err != nil {
		return err
	}
	l.rng, err = loadTree(l.db, size)
	if err != nil && !l.opts.ReadOnly {
		return err
	}
	if l.lastAccess, err = latestAccessTime(l.db, size); err != nil && !l.opts.ReadOnly {
		return err
	}
	l.head.Store(&treeHead{size: size, tree: l.rng})
	if v, ok, err := get(l.db, metaApplied); err != nil {
		return fmt.Errorf("failed to read applied position: %w", err)
	} else if ok && len(v) == 8 {
		l.applied.Store(binary.BigEndian.Uint64(v))
		if !l.opts.Sequenced && !l.opts.ReadOnly {
			// Written directly, this node's copy would part from the
			// cluster's: every node must apply the same records.
			return ErrClusterNode
		}
	}
	return nil
}

// loadTree rebuilds the compact range of the tree of size entries from the
// stored hashes of its right border.
func loadTree(r reader, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, n := range ids {
		h, err := readNode(r, n)
		if err != nil {
			return nil, fmt.Errorf("failed to load tree: %w", err)
		}
		hashes[i] = h
	}
	rng, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("failed to load tree: %w", err)
	}
	return rng, nil
}

// latestCheckpointSize finds the newest stored checkpoint by walking the
// entry table back from its end. A checkpoint is signed at least every
// second while entries arrive and at every close, so the walk is short
// unless signing failed for a long time; it runs once per open, on the
// first LatestCheckpoint, and not at all for verify.
func latestCheckpointSize(r snapReader) (uint64, bool, error) {
	it, err := prefixIter(r, []byte{tagEntry})
	if err != nil {
		return 0, false, fmt.Errorf("failed to find the latest checkpoint: %w", err)
	}
	defer it.Close()
	for valid := it.Last(); valid; valid = it.Prev() {
		if k := it.Key(); len(k) == 10 && k[9] == 'p' {
			return binary.BigEndian.Uint64(k[1:9]) + 1, true, nil
		}
	}
	if err := it.Error(); err != nil {
		return 0, false, fmt.Errorf("failed to find the latest checkpoint: %w", err)
	}
	_, ok, err := get(r, metaEmptyCheckpoint)
	if err != nil {
		return 0, false, fmt.Errorf("failed to find the latest checkpoint: %w", err)
	}
	return 0, ok, nil
}

// storedSize returns the number of entries in r, and whether the entry
// table goes on past its last entry in a way no honest ledger leaves it.
// Batches are atomic, so the table ends with the last entry, its hash row
// and perhaps the checkpoint of that size. Keys after that were written by
// someone else; the size is then that of the last entry with its hash row,
// and verify names what follows.
func storedSize(r snapReader) (size uint64, stray bool, err error) {
	it, err := prefixIter(r, []byte{tagEntry})
	if err != nil {
		return 0, false, fmt.Errorf("failed to read tree size: %w", err)
	}
	defer it.Close()
	var last, next []byte // the table's last key; the key after the current one
	walked := 0           // keys after the current one
	for valid := it.Last(); valid; valid = it.Prev() {
		k := it.Key()
		if len(k) == 9 && next != nil {
			if seq := binary.BigEndian.Uint64(k[1:]); bytes.Equal(next, hashRowKey(seq)) {
				stray := walked > 2 || walked == 2 && !bytes.Equal(last, checkpointKey(seq+1))
				return seq + 1, stray, nil
			}
		}
		if last == nil {
			last = bytes.Clone(k)
		}
		next = bytes.Clone(k)
		walked++
	}
	if err := it.Error(); err != nil {
		return 0, false, fmt.Errorf("failed to read tree size: %w", err)
	}
	return 0, walked > 0, nil
}

func rootOf(r *compact.Range) []byte {
	root, err := r.GetRootHash(nil)
	if err != nil || root == nil {
		return emptyRoot
	}
	return root
}

// ID returns the ledger's random id, fixed at first start.
func (l *Ledger) ID() string { return l.id }

// Origin returns the checkpoint origin line, "paytrail/<ledger id>" (or,
// for a restored ledger, the one NewOrigin chose).
func (l *Ledger) Origin() string { return l.origin }

// Size returns the number of committed entries.
func (l *Ledger) Size() uint64 {
	return l.head.Load().size
}

// Healthy reports an error when the ledger cannot append now: after
// Close, when read-only, while its disk is full (a [*NoSpaceError], until
// space returns), or after a failed commit (wrapping [ErrUnavailable],
// until restart).
func (l *Ledger) Healthy() error {
	switch {
	case l.closed.Load():
		return ErrClosed
	case l.opts.ReadOnly:
		return errors.New("ledger is read-only")
	}
	if err := l.brokenErr(); err != nil {
		return err
	}
	return l.guard.Err()
}

// noSpace is the error of an append answered because the disk filled
// while it waited.
func (l *Ledger) noSpace() error {
	if err := l.guard.NoSpace(); err != nil {
		return err
	}
	return &NoSpaceError{Dir: l.opts.Dir}
}

// Close stops accepting appends, waits for queued appends to commit, signs a
// last checkpoint and closes the store.
//
// While the disk is full, Close does not wait for writes that wait for
// space: it returns a [*NoSpaceError] at once, and finishes closing in the
// background once space returns. Everything acknowledged before is
// durable.
func (l *Ledger) Close() error {
	var err error
	l.closeMu.Do(func() {
		if l.guard == nil {
			err = l.close()
			return
		}
		done := make(chan error, 1)
		go func() { done <- l.close() }()
		err = waitOrStall(done, l.guard)
		if errors.Is(err, ErrNoSpace) {
			l.opts.Logger.Error("ledger closed while the disk is full; the store closes once space returns", "err", err)
		}
	})
	return err
}

// waitOrStall waits for done's error, unless writes to g's store wait for
// disk space: it then returns g's error without waiting further.
func waitOrStall(done <-chan error, g *DiskGuard) error {
	for {
		select {
		case err := <-done:
			return err
		case <-g.Stalled():
			if err := g.NoSpace(); err != nil {
				return err
			}
			// The stall ended meanwhile; wait for the next one.
		}
	}
}

func (l *Ledger) close() error {
	var err error
	if l.stop != nil {
		close(l.stop)
		<-l.stopped
		if l.signing && !l.opts.Sequenced {
			l.cp.stop()
			if cerr := l.checkpointNow(); cerr != nil && l.brokenErr() == nil {
				err = cerr
			}
		}
	}
	l.closed.Store(true)
	l.readMu.Lock()
	l.readClosed = true
	l.readMu.Unlock()
	if cerr := l.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("failed to close ledger store: %w", cerr)
	}
	l.unlock()
	return err
}

// acquire holds the store open for one read; it fails with ErrClosed after
// Close. Call the returned release when the read is done.
func (l *Ledger) acquire() (release func(), err error) {
	l.readMu.RLock()
	if l.readClosed {
		l.readMu.RUnlock()
		return nil, ErrClosed
	}
	return l.readMu.RUnlock, nil
}

// Entry returns the entry with sequence number seq, or [ErrNotFound].
func (l *Ledger) Entry(seq uint64) (*Entry, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	if seq >= l.Size() {
		return nil, ErrNotFound
	}
	v, ok, err := get(l.db, entryKey(seq))
	if err != nil {
		return nil, fmt.Errorf("failed to read entry %d: %w", seq, err)
	}
	if !ok {
		return nil, &TamperedError{Seq: seq, Reason: "entry missing"}
	}
	return DecodeEntry(seq, v)
}

// Transaction returns the derived state of a transaction by its id or an
// alternative id (a Stripe charge id), or [ErrNotFound].
func (l *Ledger) Transaction(id string) (*TxState, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return l.transaction(id)
}

func (l *Ledger) transaction(id string) (*TxState, error) {
	s, err := readTxState(l.db, id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		alt, ok, err := get(l.db, altKey(id))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotFound
		}
		if s, err = readTxState(l.db, string(alt)); err != nil {
			return nil, err
		}
		if s == nil {
			return nil, ErrNotFound
		}
	}
	return s, nil
}

// PebbleLogger adapts l for a Pebble instance named component: Pebble's
// informational chatter (WAL replay, ...) goes to debug level, errors stay
// errors, and a fatal error is logged and then panics, as Pebble requires
// Fatalf not to return. Pebble logs keys and file names, never values.
func PebbleLogger(l *slog.Logger, component string) pebble.Logger {
	return pebbleLogger{l, component}
}

type pebbleLogger struct {
	l         *slog.Logger
	component string
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", p.component)
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", p.component)
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", p.component)
	panic(p.component + ": " + msg)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
