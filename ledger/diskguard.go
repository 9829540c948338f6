package ledger

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// # Out of disk
//
// Pebble cannot go on after it sees a write fail. A failed WAL write is
// sticky in its log writer (record/log_writer.go, flushLoop keeps f.err):
// every later sync fails, the next record written panics (db.go,
// commitWrite: "panic(err)"), and rotating the WAL panics with DB.mu
// released under a deferred Unlock, which is an unrecoverable runtime
// throw (db.go, rotateWAL). A failed MANIFEST write is a Fatalf
// (version_set.go, logAndApply), and a failed flush is retried at once, in
// a loop, without backoff (compaction.go, DB.flush: "TODO(peter): count
// consecutive flush errors and backoff").
//
// So a store's file system never returns ENOSPC to Pebble: a [DiskGuard]
// holds the write that hit it and retries it, every
// [DiskRetryInterval], until space returns, and reports the stall, so that
// the ledger answers callers at once instead of waiting with them. Pebble
// then simply continues, in the same process. Only writes (and file
// creation) wait; an fsync that fails is never retried, since a later
// successful fsync does not make the lost pages durable ("fsyncgate"): it
// reaches Pebble, and a failed WAL or MANIFEST fsync marks the guard
// failed until restart.

// DiskRetryInterval is how often a write held by a [DiskGuard] is retried.
const DiskRetryInterval = time.Second

// A DiskGuard wraps a Pebble store's file system so that writes wait out
// a full disk instead of failing, and tells the store's owner while they
// wait. Its methods are safe for concurrent use.
type DiskGuard struct {
	dir      string
	log      *slog.Logger
	interval time.Duration

	// Append reads waiting and begin on its hot path, without mu.
	waiting atomic.Int32                  // operations waiting for space
	begin   atomic.Pointer[chan struct{}] // closed when the next stall begins
	fatal   atomic.Pointer[failure]

	mu    sync.Mutex // serializes stalls' beginnings and ends
	since time.Time  // when the current stall began; guarded by mu
}

// NewDiskGuard returns a guard for the store in dir; it logs to logger
// (one line when a stall begins, one when it ends).
func NewDiskGuard(dir string, logger *slog.Logger) *DiskGuard {
	if logger == nil {
		logger = discardLogger()
	}
	g := &DiskGuard{dir: dir, log: logger, interval: DiskRetryInterval}
	begin := make(chan struct{})
	g.begin.Store(&begin)
	return g
}

// FS returns inner with every write guarded.
func (g *DiskGuard) FS(inner vfs.FS) vfs.FS { return guardFS{inner, g} }

// Err returns a [*NoSpaceError] while writes wait for space, an error
// wrapping [ErrUnavailable] after a WAL or MANIFEST fsync failed (the
// store must be reopened), or nil.
func (g *DiskGuard) Err() error {
	if g == nil {
		return nil
	}
	if f := g.fatal.Load(); f != nil {
		return f.err
	}
	return g.NoSpace()
}

// NoSpace returns a [*NoSpaceError] while writes wait for space, or nil.
func (g *DiskGuard) NoSpace() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting.Load() > 0 {
		return &NoSpaceError{Dir: g.dir, Since: g.since}
	}
	return nil
}

// Stalled returns a channel that is closed while writes wait for space:
// at once if they wait now, else when they next begin to. For a nil
// guard it is a nil channel.
func (g *DiskGuard) Stalled() <-chan struct{} {
	if g == nil {
		return nil
	}
	if g.waiting.Load() > 0 {
		return closedChan
	}
	// leave stores a new channel before it counts the last waiter out, so
	// this one is not that of a stall that already ended.
	return *g.begin.Load()
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// failed returns the error of a failed WAL or MANIFEST fsync, or nil; it
// is one atomic load, for the appender's hot path.
func (g *DiskGuard) failed() error {
	if g == nil {
		return nil
	}
	if f := g.fatal.Load(); f != nil {
		return f.err
	}
	return nil
}

// retry runs op until it does not fail for want of space.
func (g *DiskGuard) retry(op func() error) error {
	err := op()
	if !isNoSpace(err) {
		return err
	}
	g.enter(err)
	defer g.leave()
	for {
		time.Sleep(g.interval)
		if err = op(); !isNoSpace(err) {
			return err
		}
	}
}

func (g *DiskGuard) enter(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting.Add(1) > 1 {
		return
	}
	g.since = time.Now()
	close(*g.begin.Load())
	// One line per stall, however many writes wait and for how long.
	g.log.Error(fmt.Sprintf("disk full at %s: %v; writes wait, retrying every %s", g.dir, err, g.interval))
}

func (g *DiskGuard) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting.Load() > 1 {
		g.waiting.Add(-1)
		return
	}
	begin := make(chan struct{})
	g.begin.Store(&begin)
	g.waiting.Add(-1)
	g.log.Warn(fmt.Sprintf("disk space available again at %s; writes resumed", g.dir),
		"stalled", time.Since(g.since).Round(time.Millisecond).String())
}

// syncFailed records a failed fsync of file name. Pebble cannot go on
// after a failed WAL or MANIFEST sync; a table's is a failed flush or
// compaction, which Pebble retries.
func (g *DiskGuard) syncFailed(name string, err error) {
	base := filepath.Base(name)
	if !strings.HasSuffix(base, ".log") && !strings.HasPrefix(base, "MANIFEST-") {
		return
	}
	f := &failure{fmt.Errorf("%w: failed to sync %s: %w (restart once the disk is healthy)", ErrUnavailable, base, err)}
	if g.fatal.CompareAndSwap(nil, f) {
		g.log.Error("store fsync failed; refusing writes until restart", "dir", g.dir, "file", base, "err", err)
	}
}

func isNoSpace(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT))
}

// guardFS is a vfs.FS whose writes go through a DiskGuard.
type guardFS struct {
	vfs.FS
	g *DiskGuard
}

func (fs guardFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if f == nil {
		return nil, err
	}
	return guardFile{f, name, fs.g}, err
}

func (fs guardFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	var f vfs.File
	err := fs.g.retry(func() (err error) {
		f, err = fs.FS.Create(name, category)
		return err
	})
	return fs.wrap(name, f, err)
}

func (fs guardFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	var f vfs.File
	err := fs.g.retry(func() (err error) {
		f, err = fs.FS.OpenReadWrite(name, category, opts...)
		return err
	})
	return fs.wrap(name, f, err)
}

func (fs guardFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	// Not retried: the rename may have happened before the open failed.
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

func (fs guardFS) Link(oldname, newname string) error {
	return fs.g.retry(func() error { return fs.FS.Link(oldname, newname) })
}

func (fs guardFS) Rename(oldname, newname string) error {
	return fs.g.retry(func() error { return fs.FS.Rename(oldname, newname) })
}

func (fs guardFS) MkdirAll(dir string, perm os.FileMode) error {
	return fs.g.retry(func() error { return fs.FS.MkdirAll(dir, perm) })
}

// guardFile is a vfs.File whose writes go through a DiskGuard. A write
// that fails with some bytes written resumes after them.
type guardFile struct {
	vfs.File
	name string
	g    *DiskGuard
}

func (f guardFile) Write(p []byte) (int, error) {
	var n int
	err := f.g.retry(func() error {
		m, err := f.File.Write(p[n:])
		n += m
		return err
	})
	return n, err
}

func (f guardFile) WriteAt(p []byte, off int64) (int, error) {
	var n int
	err := f.g.retry(func() error {
		m, err := f.File.WriteAt(p[n:], off+int64(n))
		n += m
		return err
	})
	return n, err
}

func (f guardFile) Sync() error {
	err := f.File.Sync()
	if err != nil {
		f.g.syncFailed(f.name, err)
	}
	return err
}

func (f guardFile) SyncData() error {
	err := f.File.SyncData()
	if err != nil {
		f.g.syncFailed(f.name, err)
	}
	return err
}

func (f guardFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	if err != nil {
		f.g.syncFailed(f.name, err)
	}
	return full, err
}

// StoreEventListener returns the Pebble event listener of a store named
// component. Background errors (a failed flush or compaction, which Pebble
// retries at once) are logged at most once per [logInterval]. On-disk
// corruption is logged naming the file only, never the key bounds Pebble
// reports with it (index keys: card tokens, blind indexes); the read that
// found it fails with an error Pebble marks as corruption, instead of the
// default listener's Fatalf.
func StoreEventListener(logger *slog.Logger, component string) *pebble.EventListener {
	if logger == nil {
		logger = discardLogger()
	}
	var bg, dc logLimiter
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			if n, ok := bg.allow(); ok {
				if info := pebble.ExtractDataCorruptionInfo(err); info != nil || pebble.IsCorruptionError(err) {
					file := ""
					if info != nil {
						file = filepath.Base(info.Path)
					}
					logger.Error("store background job found on-disk corruption", "component", component, "file", file, "suppressed", n)
					return
				}
				logger.Error("store background error", "component", component, "err", err, "suppressed", n)
			}
		},
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			if n, ok := dc.allow(); ok {
				logger.Error("store file fails its checksums", "component", component, "file", filepath.Base(info.Path), "suppressed", n)
			}
		},
	}
}

// logInterval is the shortest interval between two lines of a repeated
// store error.
const logInterval = 10 * time.Second

// logLimiter lets one line through per logInterval and counts the others.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *logLimiter) allow() (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); l.last.IsZero() || now.Sub(l.last) >= logInterval {
		n := l.suppressed
		l.last, l.suppressed = now, 0
		return n, true
	}
	l.suppressed++
	return 0, false
}
