package crypto

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func openMasterFile(t *testing.T, path string) *Master {
	t.Helper()
	m, err := OpenMaster(context.Background(), MasterConfig{URI: "file://" + path})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRewrapMaster(t *testing.T) {
	ctx := context.Background()
	k, dir, old := newTestKeysets(t)
	tokBefore, err := k.Tokenize(testPAN)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := newTestMaster(t)
	st, err := OpenKeysetDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := RewrapMaster(ctx, st, old, next); err != nil {
		t.Fatalf("RewrapMaster: %v", err)
	}
	if _, err := LoadKeysets(ctx, dir, old); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("old master after rewrap: %v, want ErrWrongMasterKey", err)
	}
	k2, err := LoadKeysets(ctx, dir, next)
	if err != nil {
		t.Fatalf("new master after rewrap: %v", err)
	}
	tokAfter, err := k2.Tokenize(testPAN)
	if err != nil {
		t.Fatal(err)
	}
	if tokAfter.Token != tokBefore.Token {
		t.Errorf("token changed across a rewrap: the keys inside must be the same")
	}
	for _, p := range []string{nextDir(dir), prevDir(dir)} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after rewrap", p)
		}
	}
	// Wrong current master: nothing is written.
	if err := RewrapMaster(ctx, st, old, next); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("rewrap with the wrong current master = %v, want ErrWrongMasterKey", err)
	}
}

// TestRewrapMasterCrash kills a child process running RewrapMaster after
// each of its steps and checks that the directory then holds either the
// old keysets (opened by the old master only) or the new ones (by the new
// master only), never a mix.
func TestRewrapMasterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		step    string
		wantNew bool
	}{
		{"first-file", false},
		{"written", false},
		{"old-moved", true},
		{"switched", true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "keysets")
			oldPath := filepath.Join(t.TempDir(), "old.key")
			newPath := filepath.Join(t.TempDir(), "new.key")
			for _, p := range []string{oldPath, newPath} {
				if err := CreateMasterFile(p); err != nil {
					t.Fatal(err)
				}
			}
			old, next := openMasterFile(t, oldPath), openMasterFile(t, newPath)
			if err := InitKeysets(ctx, dir, old); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, exe, "-test.run=^TestRewrapMasterChild$")
			cmd.Env = append(os.Environ(), "PAYTRAIL_TEST_REWRAP="+dir+"|"+oldPath+"|"+newPath+"|"+tc.step)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed at %s: %v\n%s", tc.step, err, out)
			}
			if _, err := OpenKeysetDir(dir); err != nil {
				t.Fatalf("recovery: %v", err)
			}
			_, errOld := LoadKeysets(ctx, dir, old)
			_, errNew := LoadKeysets(ctx, dir, next)
			if tc.wantNew {
				if errNew != nil || !errors.Is(errOld, ErrWrongMasterKey) {
					t.Fatalf("after a crash at %s: new master %v, old master %v; want the new state", tc.step, errNew, errOld)
				}
			} else if errOld != nil || !errors.Is(errNew, ErrWrongMasterKey) {
				t.Fatalf("after a crash at %s: old master %v, new master %v; want the old state", tc.step, errOld, errNew)
			}
			for _, p := range []string{nextDir(dir), prevDir(dir)} {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind after recovery", p)
				}
			}
		})
	}
}

// TestRewrapMasterChild is the child of TestRewrapMasterCrash: it rewraps
// and kills itself at the step named in PAYTRAIL_TEST_REWRAP.
func TestRewrapMasterChild(t *testing.T) {
	v := os.Getenv("PAYTRAIL_TEST_REWRAP")
	if v == "" {
		t.Skip("child of TestRewrapMasterCrash")
	}
	parts := strings.Split(v, "|")
	if len(parts) != 4 {
		t.Fatalf("PAYTRAIL_TEST_REWRAP = %q", v)
	}
	dir, oldPath, newPath, step := parts[0], parts[1], parts[2], parts[3]
	st, err := OpenKeysetDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.hook = func(s string) {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	if err := RewrapMaster(context.Background(), st, openMasterFile(t, oldPath), openMasterFile(t, newPath)); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("step %q never reached", step)
}

// After a datakey rotation, a data key re-wrapped under the new primary
// opens once the old key is retired; one that was not re-wrapped does not.
func TestRewrapDataKeyAndRetire(t *testing.T) {
	ctx := context.Background()
	k, dir, m := newTestKeysets(t)
	store := newMemKeyStore()
	dks := NewDataKeys(k, store, 0)
	var ids []string
	for range 3 {
		dk, w, err := dks.New()
		if err != nil {
			t.Fatal(err)
		}
		store.put(dk.ID(), w)
		ids = append(ids, dk.ID())
	}
	old := k.DataKeyPrimary()
	if err := k.Rotate(ctx, KeysetDataKey); err != nil {
		t.Fatal(err)
	}
	primary := k.DataKeyPrimary()
	for _, id := range ids[:2] {
		w, _, _ := store.Wrapped(ctx, id)
		if by, err := WrappedBy(w); err != nil || by != old {
			t.Fatalf("before the re-wrap %s is wrapped by %s (%v), want %s", id, by, err, old)
		}
		out, changed, err := dks.Rewrap(id, w)
		if err != nil || !changed {
			t.Fatalf("Rewrap(%s) = %v, %v", id, changed, err)
		}
		if by, _ := WrappedBy(out); by != primary {
			t.Fatalf("re-wrapped by %s, want %s", by, primary)
		}
		if _, changed, _ := dks.Rewrap(id, out); changed {
			t.Fatal("re-wrapping a key the primary wraps changed it")
		}
		store.put(id, out)
	}
	if _, err := k.RetireOldKeys(ctx, KeysetSigner); !errors.Is(err, ErrKeyNeeded) {
		t.Fatalf("retiring signer keys: %v, want ErrKeyNeeded", err)
	}
	retired, err := k.RetireOldKeys(ctx, KeysetDataKey)
	if err != nil || len(retired) != 1 || retired[0] != old {
		t.Fatalf("RetireOldKeys = %v, %v", retired, err)
	}
	// A fresh load of the stored keysets, as after a restart.
	k2, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	dks2 := NewDataKeys(k2, store, 0)
	for _, id := range ids[:2] {
		if _, err := dks2.Get(ctx, id); err != nil {
			t.Fatalf("re-wrapped key %s after retiring the old KEK: %v", id, err)
		}
	}
	if _, err := dks2.Get(ctx, ids[2]); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a key left under the retired KEK: %v, want ErrDecrypt", err)
	}
}

// Rotations swap the keysets while other goroutines tokenize, seal and
// unwrap (run with -race): every call sees one whole state, and keys made
// before a rotation still open after it.
func TestRotateUnderConcurrentUse(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeysets(t)
	store := newMemKeyStore()
	dks := NewDataKeys(k, store, 1)
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := k.Tokenize(testPAN); err != nil {
					errs <- err
					return
				}
				dk, w, err := dks.New()
				if err != nil {
					errs <- err
					return
				}
				store.put(dk.ID(), w)
				dks.Forget(dk.ID())
				if _, err := dks.Get(ctx, dk.ID()); err != nil {
					errs <- err
					return
				}
				_ = k.Status()
			}
		}()
	}
	for range 5 {
		for _, name := range KeysetNames() {
			if err := k.Rotate(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
