//go:build linux

package ledger

import (
	"bytes"
	"context"
	"errors"
	"github.com/paytrail/paytrail/ledger/disktest"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bufferLogger(b *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAcked reopens dir and checks that every acknowledged record is
// stored at the sequence number it was acknowledged with.
func checkAcked(t *testing.T, dir string, keys *testKeys, acked map[uint64]string) {
	t.Helper()
	l := openTest(t, dir, keys)
	defer l.Close()
	for seq, id := range acked {
		e, err := l.Entry(seq)
		if err != nil {
			t.Fatalf("acknowledged entry %d is missing after reopen: %v", seq, err)
		}
		if e.ID != id {
			t.Fatalf("entry %d is %s, acknowledged as %s", seq, e.ID, id)
		}
	}
}

// TestFullDiskRecoversWithoutRestart fills the ledger's disk: appends fail
// with ErrNoSpace (never success for a record that is not durable, and no
// crash), Healthy says so, and once space returns appends succeed again in
// the same process; every acknowledged record survives a reopen.
func TestFullDiskRecoversWithoutRestart(t *testing.T) {
	mnt := disktest.MountTmpfs(t, "8m")
	dir := filepath.Join(mnt, "ledger")
	var keys testKeys
	logs := &syncBuffer{}
	l := openTestLogged(t, dir, &keys, bufferLogger(logs))
	closed := false
	defer func() {
		if !closed {
			l.Close()
		}
	}()
	ctx := context.Background()
	acked := map[uint64]string{}
	appendOne := func(i int) error {
		rec := adminRecord(i)
		res, err := l.Append(ctx, rec)
		if err == nil {
			acked[res.Seq] = rec.ID
		}
		return err
	}
	for i := range 10 {
		if err := appendOne(i); err != nil {
			t.Fatal(err)
		}
	}

	ballast := disktest.Fill(t, mnt)
	var failed error
	for i := 10; i < 100000 && failed == nil; i++ {
		failed = appendOne(i)
	}
	if !errors.Is(failed, ErrNoSpace) || !errors.Is(failed, ErrUnavailable) {
		t.Fatalf("append on a full disk: got %v, want ErrNoSpace", failed)
	}
	var nse *NoSpaceError
	if err := l.Healthy(); !errors.As(err, &nse) || nse.Dir != dir {
		t.Fatalf("Healthy on a full disk = %v, want a *NoSpaceError for %s", err, dir)
	}
	// Later appends fail at once, without waiting for space.
	for i := range 20 {
		if err := appendOne(100000 + i); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("append %d on a full disk: got %v, want ErrNoSpace", i, err)
		}
	}
	if n := strings.Count(logs.String(), "disk full at "+dir); n != 1 {
		t.Errorf("%d \"disk full\" lines for one stall, want 1:\n%s", n, logs.String())
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ledger to accept appends again", func() bool { return l.Healthy() == nil })
	for i := range 10 {
		if err := appendOne(200000 + i); err != nil {
			t.Fatalf("append after space returned: %v", err)
		}
	}
	if !strings.Contains(logs.String(), "writes resumed") {
		t.Errorf("no line says writes resumed:\n%s", logs.String())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	checkAcked(t, dir, &keys, acked)
}

// TestCloseOnFullDisk: Close does not hang on a full disk; it returns a
// *NoSpaceError and finishes closing once space returns.
func TestCloseOnFullDisk(t *testing.T) {
	mnt := disktest.MountTmpfs(t, "8m")
	dir := filepath.Join(mnt, "ledger")
	var keys testKeys
	l := openTest(t, dir, &keys)
	ctx := context.Background()
	acked := map[uint64]string{}
	ballast := disktest.Fill(t, mnt)
	for i := 0; ; i++ {
		rec := adminRecord(i)
		res, err := l.Append(ctx, rec)
		if err != nil {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatal(err)
			}
			break
		}
		acked[res.Seq] = rec.ID
	}
	if err := l.Close(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Close on a full disk = %v, want ErrNoSpace", err)
	}
	if _, err := l.Append(ctx, adminRecord(0)); err == nil {
		t.Fatal("append after Close succeeded")
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	// The store closes in the background and releases its lock.
	waitFor(t, "the background close", func() bool {
		f, err := os.OpenFile(filepath.Join(dir, "PAYTRAIL.LOCK"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return false
		}
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return true
	})
	checkAcked(t, dir, &keys, acked)
}

// TestOpenOnFullDisk: a restart on a full disk neither crashes nor spins
// writing logs. Open waits, saying so in one line, and opens once space
// returns.
func TestOpenOnFullDisk(t *testing.T) {
	mnt := disktest.MountTmpfs(t, "8m")
	dir := filepath.Join(mnt, "ledger")
	var keys testKeys
	l := openTest(t, dir, &keys)
	acked := map[uint64]string{}
	for i := range 10 {
		rec := adminRecord(i)
		res, err := l.Append(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.Seq] = rec.ID
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	ballast := disktest.Fill(t, mnt)
	logs := &syncBuffer{}
	type opened struct {
		l   *Ledger
		err error
	}
	done := make(chan opened, 1)
	go func() {
		l, err := Open(context.Background(), Options{Dir: dir, Logger: bufferLogger(logs), CheckpointInterval: 10 * time.Millisecond})
		done <- opened{l, err}
	}()
	waitFor(t, "the disk full line", func() bool { return strings.Contains(logs.String(), "disk full at "+dir) })
	// Give a spinning retry loop time to show itself.
	time.Sleep(3 * DiskRetryInterval)
	if lines := strings.Count(logs.String(), "\n"); lines > 20 {
		t.Errorf("%d log lines while waiting for space, want a handful:\n%s", lines, logs.String())
	}
	if n := strings.Count(logs.String(), "disk full at"); n != 1 {
		t.Errorf("%d \"disk full\" lines, want 1", n)
	}
	select {
	case o := <-done:
		t.Fatalf("Open returned on a full disk: %v", o.err)
	default:
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("Open after space returned: %v", o.err)
	}
	rec := adminRecord(99)
	res, err := o.l.Append(context.Background(), rec)
	if err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	acked[res.Seq] = rec.ID
	if err := o.l.Close(); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, dir, &keys, acked)
}
