package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/paytrail/paytrail/api"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// runCLI runs the command in-process with an empty environment.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), env{args: args, getenv: func(string) string { return "" }, stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

// newLedgerDir makes a data dir whose ledger holds n admin entries, all
// flushed to sstables (so that a flipped byte lands in a table, not in
// the write-ahead log).
func newLedgerDir(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	node, err := datadir.Open(ctx, datadir.Config{Dir: dir, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const writers = 16
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				_, err := node.Ledger.Append(ctx, ledger.Record{
					Kind: ledger.KindAdmin, ID: ledger.NewRecordID(), Time: time.Now().UTC(), Policy: api.PolicyVersion,
					Body: ledger.AdminBody{ActorID: "test", ActorName: "test", Action: "test.entry",
						Details: map[string]string{"n": fmt.Sprint(i), "pad": strings.Repeat("p", 400)}},
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(filepath.Join(dir, "ledger"), &pebble.Options{Logger: testLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

type testLogger struct{ t *testing.T }

func (l testLogger) Infof(format string, args ...any)  { l.t.Logf("pebble: "+format, args...) }
func (l testLogger) Errorf(format string, args ...any) { l.t.Logf("pebble: "+format, args...) }
func (l testLogger) Fatalf(format string, args ...any) { l.t.Fatalf("pebble: "+format, args...) }

// flipTableByte flips one bit at frac of the way into the largest sstable
// of the ledger and returns the table's name.
func flipTableByte(t *testing.T, dir string, frac float64) string {
	t.Helper()
	tables, err := filepath.Glob(filepath.Join(dir, "ledger", "*.sst"))
	if err != nil || len(tables) == 0 {
		t.Fatalf("no sstable in %s: %v", dir, err)
	}
	size := func(p string) int64 { fi, _ := os.Stat(p); return fi.Size() }
	sort.Slice(tables, func(i, j int) bool { return size(tables[i]) > size(tables[j]) })
	b, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	b[int(float64(len(b))*frac)] ^= 0x10
	if err := os.WriteFile(tables[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Base(tables[0])
}

// TestVerifyDamagedTable: one flipped byte in an sstable is a failed check
// (exit 1, one FAIL line naming the table and what could be checked),
// never a panic, whether the damage is found while the ledger opens or
// while entries are verified.
func TestVerifyDamagedTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		frac float64
		want string
	}{
		// The first data blocks hold entries the open does not read.
		{"entries", 0.25, `entries 0 to \d+ agree; sequence numbers from \d+ on could not be checked`},
		// The end of the table is its index and footer: read at open.
		{"index", 0.995, `nothing could be checked`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newLedgerDir(t, 3000)
			table := flipTableByte(t, dir, tc.frac)
			code, stdout, stderr := runCLI(t, "verify", "--data", dir)
			if code != exitFailure {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, stdout, stderr)
			}
			want := `^FAIL: ledger store is damaged \(` + regexp.QuoteMeta(table) + ` fails its checksums\): ` + tc.want + "\n$"
			if !regexp.MustCompile(want).MatchString(stdout) {
				t.Errorf("stdout %q does not match %q", stdout, want)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stderr has a stack trace:\n%s", stderr)
			}
		})
	}
}

// TestBenchBytes checks `paytrail bench bytes` on a stopped data dir: the
// ledger's entries counted by kind, per event, and the usage error
// without --data.
func TestBenchBytes(t *testing.T) {
	dir := newLedgerDir(t, 200)
	code, out, errOut := runCLI(t, "bench", "bytes", "--data", dir, "--events", "200")
	if code != 0 {
		t.Fatalf("bench bytes: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"ledger rows:", "keys rows:", "ledger sstables: files=", "keys sstables: files="} {
		if !strings.Contains(out, want) {
			t.Errorf("bench bytes output lacks %q:\n%s", want, out)
		}
	}
	var rows int
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "e" && f[1] == "entry" {
			fmt.Sscan(f[2], &rows)
		}
	}
	if rows < 200 {
		t.Errorf("bench bytes counted %d entry rows, want at least 200:\n%s", rows, out)
	}
	if code, _, _ := runCLI(t, "bench", "bytes"); code != 2 {
		t.Errorf("bench bytes without --data: exit %d, want 2", code)
	}
}
